/*
 * authz.c -- a rules-based authorization plugin for mtls-gateway: which client certificates may use which paths
 * and methods. Depends on nothing but libc. README.md documents the config and the semantics.
 *
 * Layout, top to bottom: a small strict JSON parser (the host hands the config over as JSON text); validation
 * that compiles the parsed config into read-only rules, naming every problem by its key path; an RFC 2253
 * distinguished-name parser; the request hook; the descriptor and entry point.
 *
 * Threads. create and destroy run on the main thread. on_request_headers runs concurrently on every event-loop
 * thread for the same instance, so the instance is never written after create: everything a decision needs is
 * computed at create (including the deny bodies and reasons), and per-request state lives on the stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_plugin.h"
#include "gateway_plugin_helpers.h"

static const gw_host_api *host; /* set once by the entry point, before any create */

/* ------------------------------------------------------------------------------------------------------------
 * Errors: every problem found in the config, joined with "; " into create's error buffer.
 */

typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    unsigned count;
} errors;

static void err_add(errors *e, const char *format, ...) GW_PRINTF_LIKE(2, 3);
static void err_add(errors *e, const char *format, ...) {
    va_list args;
    int n;
    e->count++;
    if (e->cap == 0 || e->len + 1 >= e->cap) return;
    if (e->count > 1) {
        n = snprintf(e->buf + e->len, e->cap - e->len, "; ");
        e->len += (size_t)n < e->cap - e->len ? (size_t)n : e->cap - e->len - 1;
    }
    va_start(args, format);
    n = vsnprintf(e->buf + e->len, e->cap - e->len, format, args);
    va_end(args);
    if (n > 0) e->len += (size_t)n < e->cap - e->len ? (size_t)n : e->cap - e->len - 1;
}

/* A config string made printable for an error message: at most 48 bytes, bytes outside ASCII 0x20..0x7E as '?'. */
static const char *shown(const char *s, size_t len, char out[56]) {
    size_t i, n = len < 48 ? len : 48;
    for (i = 0; i < n; i++) out[i] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (len > n) { memcpy(out + n, "...", 3); n += 3; }
    out[n] = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------------------------
 * JSON: RFC 8259, strictly (no comments, no trailing commas, UTF-8 validated, \uXXXX decoded to UTF-8 with
 * surrogate pairs), into a tree that validation then walks. Nesting is limited to JSON_MAX_DEPTH.
 */

#define JSON_MAX_DEPTH 32

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype;

typedef struct jmember jmember;
typedef struct {
    jtype type;
    int boolean;
    int is_integer; /* J_NUMBER without fraction or exponent that fits in a long long */
    long long integer;
    char *str; /* J_STRING: decoded, NUL-terminated; may contain NUL, so use len */
    size_t len;
    jmember *members; /* J_ARRAY (key NULL) and J_OBJECT, in document order */
    size_t count;
} jvalue;

struct jmember {
    char *key;
    size_t key_len;
    jvalue value;
};

typedef struct {
    const char *start, *p, *end;
    errors *errors;
} jparser;

static void jfree(jvalue *v) {
    size_t i;
    for (i = 0; i < v->count; i++) {
        free(v->members[i].key);
        jfree(&v->members[i].value);
    }
    free(v->members);
    free(v->str);
    memset(v, 0, sizeof *v);
}

static int jfail(jparser *jp, const char *what) {
    err_add(jp->errors, "config: invalid JSON at byte %lu: %s", (unsigned long)(jp->p - jp->start), what);
    return -1;
}

static void jskip_space(jparser *jp) {
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')) jp->p++;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" (at jp->p, before `limit`). */
static int jhex4(jparser *jp, const char *limit, unsigned *out) {
    int i, h;
    *out = 0;
    if (limit - jp->p < 4) return jfail(jp, "invalid \\u escape");
    for (i = 0; i < 4; i++) {
        if ((h = hex_value(jp->p[i])) < 0) return jfail(jp, "invalid \\u escape");
        *out = *out << 4 | (unsigned)h;
    }
    jp->p += 4;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | (cp >> 6 & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18); out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s (before limit), or 0 (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_length(const unsigned char *s, const unsigned char *limit) {
    size_t n, i;
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        if (s[0] == 0xE0) lo = 0xA0;
        if (s[0] == 0xED) hi = 0x9F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        if (s[0] == 0xF0) lo = 0x90;
        if (s[0] == 0xF4) hi = 0x8F;
    } else return 0;
    if ((size_t)(limit - s) < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (i = 2; i < n; i++) if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* Parses the string at jp->p (on its opening quote) into a new NUL-terminated buffer. */
static int jstring(jparser *jp, char **out, size_t *out_len) {
    const char *q = jp->p + 1, *close;
    char *buf;
    size_t n = 0;
    while (q < jp->end && *q != '"') q += (*q == '\\' && q + 1 < jp->end) ? 2 : 1;
    if (q >= jp->end) return jfail(jp, "unterminated string");
    close = q; /* decoding never grows the text: allocate the raw span */
    if (!(buf = malloc((size_t)(close - jp->p)))) return jfail(jp, "out of memory");
    jp->p++;
    while (jp->p < close) {
        unsigned char c = (unsigned char)*jp->p;
        if (c < 0x20) { free(buf); return jfail(jp, "control character in string"); }
        if (c >= 0x80) {
            size_t k = utf8_length((const unsigned char *)jp->p, (const unsigned char *)close);
            if (k == 0) { free(buf); return jfail(jp, "invalid UTF-8 in string"); }
            memcpy(buf + n, jp->p, k);
            n += k;
            jp->p += k;
            continue;
        }
        if (c != '\\') { buf[n++] = (char)c; jp->p++; continue; }
        jp->p++; /* the escape: the scan above guarantees a byte before `close` */
        switch (*jp->p++) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp, low;
            if (jhex4(jp, close, &cp) != 0) { free(buf); return -1; }
            if (cp >= 0xDC00 && cp <= 0xDFFF) { free(buf); return jfail(jp, "unpaired surrogate in \\u escape"); }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (close - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u') { free(buf); return jfail(jp, "unpaired surrogate in \\u escape"); }
                jp->p += 2;
                if (jhex4(jp, close, &low) != 0) { free(buf); return -1; }
                if (low < 0xDC00 || low > 0xDFFF) { free(buf); return jfail(jp, "unpaired surrogate in \\u escape"); }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default:
            jp->p -= 2;
            free(buf);
            return jfail(jp, "invalid escape in string");
        }
    }
    buf[n] = '\0'; /* n < close - opening quote: room for the NUL */
    jp->p = close + 1;
    *out = buf;
    *out_len = n;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int jnumber(jparser *jp, jvalue *v) {
    int negative = 0, overflow = 0;
    long long acc = 0;
    v->type = J_NUMBER;
    v->is_integer = 1;
    if (jp->p < jp->end && *jp->p == '-') { negative = 1; jp->p++; }
    if (jp->p >= jp->end || !is_digit(*jp->p)) return jfail(jp, "invalid number");
    if (*jp->p == '0') jp->p++;
    else while (jp->p < jp->end && is_digit(*jp->p)) {
        int d = *jp->p++ - '0';
        if (acc > (999999999999999999LL - d) / 10) overflow = 1; else acc = acc * 10 + d;
    }
    if (jp->p < jp->end && *jp->p == '.') {
        v->is_integer = 0;
        if (++jp->p >= jp->end || !is_digit(*jp->p)) return jfail(jp, "invalid number");
        while (jp->p < jp->end && is_digit(*jp->p)) jp->p++;
    }
    if (jp->p < jp->end && (*jp->p == 'e' || *jp->p == 'E')) {
        v->is_integer = 0;
        jp->p++;
        if (jp->p < jp->end && (*jp->p == '+' || *jp->p == '-')) jp->p++;
        if (jp->p >= jp->end || !is_digit(*jp->p)) return jfail(jp, "invalid number");
        while (jp->p < jp->end && is_digit(*jp->p)) jp->p++;
    }
    if (overflow) v->is_integer = 0;
    v->integer = negative ? -acc : acc;
    return 0;
}

static int jliteral(jparser *jp, const char *word, jvalue *v, jtype type, int boolean) {
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0) return jfail(jp, "expected a value");
    jp->p += n;
    v->type = type;
    v->boolean = boolean;
    return 0;
}

static int jvalue_parse(jparser *jp, jvalue *v, int depth);

/* Parses an array or object (jp->p on '[' or '{'); members are added to v as they are parsed, so jfree
 * releases a partial result. */
static int jcontainer(jparser *jp, jvalue *v, int depth) {
    int object = *jp->p == '{';
    char close = object ? '}' : ']';
    size_t cap = 0;
    v->type = object ? J_OBJECT : J_ARRAY;
    if (depth >= JSON_MAX_DEPTH) return jfail(jp, "nested too deeply");
    jp->p++;
    jskip_space(jp);
    if (jp->p < jp->end && *jp->p == close) { jp->p++; return 0; }
    for (;;) {
        jmember *m;
        if (v->count == cap) {
            size_t next = cap ? cap * 2 : 4;
            jmember *grown = realloc(v->members, next * sizeof *grown);
            if (!grown) return jfail(jp, "out of memory");
            v->members = grown;
            cap = next;
        }
        m = &v->members[v->count++];
        memset(m, 0, sizeof *m);
        if (object) {
            if (jp->p >= jp->end || *jp->p != '"') return jfail(jp, "expected a string key");
            if (jstring(jp, &m->key, &m->key_len) != 0) return -1;
            jskip_space(jp);
            if (jp->p >= jp->end || *jp->p != ':') return jfail(jp, "expected ':'");
            jp->p++;
            jskip_space(jp);
        }
        if (jvalue_parse(jp, &m->value, depth + 1) != 0) return -1;
        jskip_space(jp);
        if (jp->p < jp->end && *jp->p == ',') { jp->p++; jskip_space(jp); continue; }
        if (jp->p < jp->end && *jp->p == close) { jp->p++; return 0; }
        return jfail(jp, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jvalue_parse(jparser *jp, jvalue *v, int depth) {
    if (jp->p >= jp->end) return jfail(jp, "expected a value");
    switch (*jp->p) {
    case '{': case '[': return jcontainer(jp, v, depth);
    case '"': v->type = J_STRING; return jstring(jp, &v->str, &v->len);
    case 't': return jliteral(jp, "true", v, J_BOOL, 1);
    case 'f': return jliteral(jp, "false", v, J_BOOL, 0);
    case 'n': return jliteral(jp, "null", v, J_NULL, 0);
    default: return (*jp->p == '-' || is_digit(*jp->p)) ? jnumber(jp, v) : jfail(jp, "expected a value");
    }
}

/* Parses all of `text` as one JSON value. On failure adds the error and leaves *out empty. */
static int json_parse(gw_str text, jvalue *out, errors *e) {
    static const char empty[] = "";
    jparser jp;
    jp.start = jp.p = text.len ? text.ptr : empty;
    jp.end = jp.start + text.len;
    jp.errors = e;
    memset(out, 0, sizeof *out);
    jskip_space(&jp);
    if (jvalue_parse(&jp, out, 0) == 0) {
        jskip_space(&jp);
        if (jp.p == jp.end) return 0;
        jfail(&jp, "unexpected text after the value");
    }
    jfree(out);
    return -1;
}

/* ------------------------------------------------------------------------------------------------------------
 * The compiled config: read-only after create.
 */

typedef enum {
    COND_SUBJECT_CN, COND_SUBJECT_OU, COND_SUBJECT_O, COND_ISSUER_CN, COND_ISSUER_O,
    COND_SPIFFE_ID, COND_DNS_SAN, COND_SERIAL, COND_FINGERPRINT, COND_LISTS
} condition;

static const char *const condition_names[COND_LISTS] = {
    "subject_cn", "subject_ou", "subject_o", "issuer_cn", "issuer_o", "spiffe_id", "dns_san", "serial",
    "fingerprint_sha256",
};

typedef struct {
    char *ptr; /* owned, NUL-terminated */
    size_t len;
} text;

typedef struct {
    text *items;
    size_t count;
} text_list;

typedef struct {
    text path_prefix;
    text_list methods; /* empty: any method */
    text_list lists[COND_LISTS];
    int any_verified_client;
    text label, deny_body, allow_reason, deny_reason; /* "rules[N]", the JSON answer, decision_reason values */
} rule;

typedef struct {
    uint64_t tag;
    int default_allow;
    uint32_t deny_status;
    rule *rules;
    size_t rule_count;
} authz;

/* Answers that do not depend on the config. */
#define DEFAULT_BODY "{\"error\":\"forbidden\",\"rule\":\"default\"}"
#define PATH_BODY "{\"error\":\"forbidden\",\"rule\":\"path\",\"reason\":\"non-canonical path\"}"

static gw_str view(const text *t) { return (gw_str){t->ptr, t->len}; }

static void text_list_free(text_list *l) {
    size_t i;
    for (i = 0; i < l->count; i++) free(l->items[i].ptr);
    free(l->items);
}

static void authz_free(authz *a) {
    size_t i, k;
    if (!a) return;
    for (i = 0; i < a->rule_count; i++) {
        rule *r = &a->rules[i];
        free(r->path_prefix.ptr);
        text_list_free(&r->methods);
        for (k = 0; k < COND_LISTS; k++) text_list_free(&r->lists[k]);
        free(r->label.ptr); free(r->deny_body.ptr); free(r->allow_reason.ptr); free(r->deny_reason.ptr);
    }
    free(a->rules);
    free(a);
}

/* Builds "<prefix><json-escaped or raw value><suffix>" into a new text; ptr NULL when out of memory. */
static text text_join(const char *prefix, gw_str value, int json_escape, const char *suffix) {
    text t;
    size_t plen = strlen(prefix), slen = strlen(suffix);
    size_t vlen = json_escape ? gw_json_escape(NULL, 0, value) : value.len;
    t.len = plen + vlen + slen;
    if (!(t.ptr = malloc(t.len + 1))) return t;
    memcpy(t.ptr, prefix, plen);
    if (json_escape) gw_json_escape(t.ptr + plen, vlen + 1, value);
    else if (value.len) memcpy(t.ptr + plen, value.ptr, value.len);
    memcpy(t.ptr + plen + vlen, suffix, slen + 1);
    return t;
}

/* ------------------------------------------------------------------------------------------------------------
 * Validation: walks the parsed config, reports every problem by key path, and fills the authz.
 */

static const jvalue *jget(const jvalue *object, const char *key) {
    size_t i, n = strlen(key);
    for (i = 0; i < object->count; i++) {
        if (object->members[i].key_len == n && memcmp(object->members[i].key, key, n) == 0) return &object->members[i].value;
    }
    return NULL;
}

/* Reports keys of `object` that are not in `known` (NULL-terminated), and duplicates. */
static void check_keys(const jvalue *object, const char *const *known, const char *path, const char *what, errors *e) {
    size_t i, j, k;
    char buf[56];
    for (i = 0; i < object->count; i++) {
        const jmember *m = &object->members[i];
        for (k = 0; known[k] && !(strlen(known[k]) == m->key_len && memcmp(known[k], m->key, m->key_len) == 0); k++) {}
        if (!known[k]) err_add(e, "%s: unknown %s '%s'", path, what, shown(m->key, m->key_len, buf));
        for (j = 0; j < i; j++) {
            if (object->members[j].key_len == m->key_len && memcmp(object->members[j].key, m->key, m->key_len) == 0) {
                err_add(e, "%s: duplicate key '%s'", path, shown(m->key, m->key_len, buf));
                break;
            }
        }
    }
}

static int is_hex_text(const char *s, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) if (hex_value(s[i]) < 0) return 0;
    return len > 0;
}

/* Serials and fingerprints are compared in one canonical form: colons removed, lower case; serials also
 * without leading zeros ("0A1B" and "a1b" are the same serial; zero is "0"). */
static size_t canonical_hex(const char *s, size_t len, char *out, int strip_zeros) {
    size_t i, n = 0, start = 0;
    for (i = 0; i < len; i++) if (s[i] != ':') out[n++] = (char)gw_ascii_lower((unsigned char)s[i]);
    if (strip_zeros) {
        while (start + 1 < n && out[start] == '0') start++;
        memmove(out, out + start, n - start);
        n -= start;
    }
    out[n] = '\0';
    return n;
}

/* Compiles a list of strings (`methods`, or one allow condition) at `path` into `out`. */
static void compile_strings(const jvalue *v, const char *path, int kind, text_list *out, errors *e) {
    size_t i;
    if (v->type != J_ARRAY) { err_add(e, "%s: expected an array of strings", path); return; }
    if (v->count == 0) { err_add(e, "%s: must not be empty", path); return; }
    if (!(out->items = calloc(v->count, sizeof *out->items))) { err_add(e, "out of memory"); return; }
    for (i = 0; i < v->count; i++) {
        const jvalue *item = &v->members[i].value;
        text *t = &out->items[out->count];
        const char *star;
        if (item->type != J_STRING) {
            err_add(e, "%s[%lu]: expected a string%s", path, (unsigned long)i,
                    item->type == J_NUMBER ? ", got a number (quote it in YAML)" : "");
            continue;
        }
        if (item->len == 0) { err_add(e, "%s[%lu]: must not be empty", path, (unsigned long)i); continue; }
        star = memchr(item->str, '*', item->len);
        if ((kind == COND_SPIFFE_ID || kind == COND_DNS_SAN) && star && star != item->str + item->len - 1) {
            err_add(e, "%s[%lu]: '*' is only allowed at the end", path, (unsigned long)i);
            continue;
        }
        if (!(t->ptr = malloc(item->len + 1))) { err_add(e, "out of memory"); return; }
        out->count++;
        if (kind == COND_SERIAL || kind == COND_FINGERPRINT) {
            t->len = canonical_hex(item->str, item->len, t->ptr, kind == COND_SERIAL);
            if (kind == COND_SERIAL && !is_hex_text(t->ptr, t->len)) {
                err_add(e, "%s[%lu]: must be hex digits (colons allowed)", path, (unsigned long)i);
            } else if (kind == COND_FINGERPRINT && (t->len != 64 || !is_hex_text(t->ptr, t->len))) {
                err_add(e, "%s[%lu]: must be 64 hex digits (colons allowed)", path, (unsigned long)i);
            }
        } else {
            memcpy(t->ptr, item->str, item->len + 1);
            t->len = item->len;
        }
    }
}

static void compile_allow(const jvalue *allow, const char *rule_path, rule *r, errors *e) {
    static const char *const known[] = {
        "subject_cn", "subject_ou", "subject_o", "issuer_cn", "issuer_o", "spiffe_id", "dns_san", "serial",
        "fingerprint_sha256", "any_verified_client", NULL,
    };
    char path[96];
    const jvalue *v;
    int k;
    snprintf(path, sizeof path, "%s.allow", rule_path);
    if (allow->type != J_OBJECT) { err_add(e, "%s: expected an object", path); return; }
    if (allow->count == 0) { err_add(e, "%s: needs at least one condition", path); return; }
    check_keys(allow, known, path, "condition", e);
    for (k = 0; k < COND_LISTS; k++) {
        if (!(v = jget(allow, condition_names[k]))) continue;
        snprintf(path, sizeof path, "%s.allow.%s", rule_path, condition_names[k]);
        compile_strings(v, path, k, &r->lists[k], e);
    }
    if ((v = jget(allow, "any_verified_client"))) {
        if (v->type == J_BOOL && v->boolean) r->any_verified_client = 1;
        else err_add(e, "%s.allow.any_verified_client: must be true", rule_path);
    }
}

static void compile_rule(const jvalue *v, size_t index, rule *r, errors *e) {
    static const char *const known[] = {"path_prefix", "methods", "allow", NULL};
    char path[32], sub[64], head[128];
    const jvalue *prefix, *methods, *allow;
    snprintf(path, sizeof path, "rules[%lu]", (unsigned long)index);
    if (v->type != J_OBJECT) { err_add(e, "%s: expected an object", path); return; }
    check_keys(v, known, path, "key", e);
    if (!(prefix = jget(v, "path_prefix"))) err_add(e, "%s: needs path_prefix", path);
    else if (prefix->type != J_STRING || prefix->len == 0 || prefix->str[0] != '/') {
        err_add(e, "%s.path_prefix: must be a string starting with '/'", path);
    } else if (!(r->path_prefix.ptr = malloc(prefix->len + 1))) err_add(e, "out of memory");
    else {
        memcpy(r->path_prefix.ptr, prefix->str, prefix->len + 1);
        r->path_prefix.len = prefix->len;
    }
    if ((methods = jget(v, "methods"))) {
        snprintf(sub, sizeof sub, "%s.methods", path);
        compile_strings(methods, sub, -1, &r->methods, e);
    }
    if (!(allow = jget(v, "allow"))) err_add(e, "%s: needs allow", path);
    else compile_allow(allow, path, r, e);
    if (e->count == 0) { /* the texts this rule answers with, built once */
        gw_str p = view(&r->path_prefix);
        r->label = text_join(path, (gw_str){NULL, 0}, 0, "");
        snprintf(head, sizeof head, "{\"error\":\"forbidden\",\"rule\":\"%s\",\"path_prefix\":\"", path);
        r->deny_body = text_join(head, p, 1, "\"}");
        snprintf(head, sizeof head, "%s (", path);
        r->allow_reason = text_join(head, p, 0, "): allow");
        r->deny_reason = text_join(head, p, 0, "): deny");
        if (!r->label.ptr || !r->deny_body.ptr || !r->allow_reason.ptr || !r->deny_reason.ptr) err_add(e, "out of memory");
    }
}

static void compile_config(const jvalue *root, authz *a, errors *e) {
    static const char *const known[] = {"default", "rules", "deny_status", NULL};
    const jvalue *v;
    size_t i;
    if (root->type != J_OBJECT) { err_add(e, "config: expected an object"); return; }
    check_keys(root, known, "config", "key", e);
    if ((v = jget(root, "default"))) {
        if (v->type == J_STRING && strcmp(v->str, "allow") == 0 && v->len == 5) a->default_allow = 1;
        else if (!(v->type == J_STRING && strcmp(v->str, "deny") == 0 && v->len == 4)) err_add(e, "default: must be \"allow\" or \"deny\"");
    }
    if ((v = jget(root, "deny_status"))) {
        if (v->type != J_NUMBER || !v->is_integer || v->integer < 400 || v->integer > 599) {
            err_add(e, "deny_status: must be an integer 400..599");
        } else a->deny_status = (uint32_t)v->integer;
    }
    if (!(v = jget(root, "rules"))) err_add(e, "config: needs rules");
    else if (v->type != J_ARRAY) err_add(e, "rules: expected an array");
    else if (v->count > 0) {
        if (!(a->rules = calloc(v->count, sizeof *a->rules))) { err_add(e, "out of memory"); return; }
        a->rule_count = v->count;
        for (i = 0; i < v->count; i++) compile_rule(&v->members[i].value, i, &a->rules[i], e);
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * RFC 2253 distinguished names, as the host prints them ("CN=a\,b,OU=ops+OU=dev,O=Corp"): RDNs separated by
 * ',' (or ';'), attributes of a multi-valued RDN by '+'; values unescaped (\, \+ \" \\ \< \> \; \= \# \space
 * and \XX hex pairs, e.g. UTF-8 bytes), quoted values accepted, '#'-hex values kept as written.
 */

#define DN_MAX_ATTRIBUTES 64

typedef struct {
    gw_str type, value; /* value: unescaped, in the dn's buffer */
} dn_attribute;

typedef struct {
    dn_attribute attributes[DN_MAX_ATTRIBUTES];
    size_t count;
    char *heap; /* the buffer when the DN is longer than `stack` */
    char stack[1024];
} dn;

/* Reads one escape (s[*i] is the byte after '\') into out; -1 if malformed. */
static int dn_unescape(const char *s, size_t n, size_t *i, char *out) {
    int hi, lo;
    if (*i >= n) return -1;
    if (s[*i] != '\0' && strchr(",+\"\\<>;=# ", s[*i])) { *out = s[(*i)++]; return 0; }
    if (*i + 1 < n && (hi = hex_value(s[*i])) >= 0 && (lo = hex_value(s[*i + 1])) >= 0) {
        *out = (char)(hi << 4 | lo);
        *i += 2;
        return 0;
    }
    return -1;
}

/* Parses `raw` into d (call dn_release after). Returns 0, or -1 if it is not a well-formed DN. */
static int dn_parse(gw_str raw, dn *d) {
    const char *s = raw.ptr;
    size_t n = raw.len, i = 0, w = 0;
    char *buf = d->stack;
    d->count = 0;
    d->heap = NULL;
    if (n == 0) return 0;
    if (n > sizeof d->stack && !(buf = d->heap = malloc(n))) return -1;
    for (;;) {
        dn_attribute *a;
        size_t start, keep;
        if (d->count == DN_MAX_ATTRIBUTES) return -1;
        a = &d->attributes[d->count++];
        while (i < n && s[i] == ' ') i++;
        for (start = i; i < n && s[i] != '='; i++) if (s[i] == '\0' || strchr(",+;\\\"", s[i])) return -1;
        if (i >= n) return -1;
        a->type.ptr = s + start;
        for (a->type.len = i - start; a->type.len > 0 && s[start + a->type.len - 1] == ' '; a->type.len--) {}
        if (a->type.len == 0) return -1;
        for (i++; i < n && s[i] == ' '; i++) {}
        start = keep = w;
        if (i < n && s[i] == '#') { /* BER hex: kept as written */
            buf[w++] = s[i++];
            while (i < n && hex_value(s[i]) >= 0) buf[w++] = s[i++];
            keep = w;
        } else if (i < n && s[i] == '"') { /* quoted (RFC 1779 style) */
            for (i++; i < n && s[i] != '"'; ) {
                if (s[i] == '\\') { i++; if (dn_unescape(s, n, &i, &buf[w++]) != 0) return -1; }
                else buf[w++] = s[i++];
            }
            if (i >= n) return -1;
            i++;
            keep = w;
        } else {
            while (i < n && s[i] != ',' && s[i] != '+' && s[i] != ';') {
                if (s[i] == '\\') { i++; if (dn_unescape(s, n, &i, &buf[w++]) != 0) return -1; keep = w; }
                else { if (s[i] != ' ') keep = w + 1; buf[w++] = s[i++]; }
            }
        }
        while (i < n && s[i] == ' ') i++; /* unescaped trailing spaces are not part of the value */
        a->value.ptr = buf + start;
        a->value.len = keep - start;
        w = keep;
        if (i >= n) return 0;
        if (s[i] != ',' && s[i] != '+' && s[i] != ';') return -1;
        if (++i >= n) return -1; /* a separator must be followed by an attribute */
    }
}

static void dn_release(dn *d) {
    free(d->heap);
    d->heap = NULL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Decisions.
 */

/* What one request's client is: fetched from the host lazily, at most once per request. */
typedef struct {
    gw_handle request;
    int verified; /* GW_ATTR_CLIENT_VERIFY is "SUCCESS" */
    int subject_state, issuer_state; /* 0: not read yet, 1: parsed, -1: absent or malformed */
    dn subject, issuer;
} client;

/* Does any value of attribute `type` (short name, or its OID) in the subject or issuer equal one in `values`? */
static int dn_matches(client *c, int issuer, const char *type, const char *oid, const text_list *values) {
    int *state = issuer ? &c->issuer_state : &c->subject_state;
    dn *d = issuer ? &c->issuer : &c->subject;
    size_t i, k;
    if (*state == 0) {
        gw_str raw;
        *state = -1;
        if (host->get_attribute(c->request, issuer ? GW_ATTR_CLIENT_ISSUER : GW_ATTR_CLIENT_SUBJECT, 0, &raw) == GW_OK) {
            if (dn_parse(raw, d) == 0) *state = 1;
            else dn_release(d);
        }
    }
    if (*state != 1) return 0;
    for (i = 0; i < d->count; i++) {
        const dn_attribute *a = &d->attributes[i];
        if (!gw_str_equals_nocase(a->type, gw_str_from_cstr(type)) && !gw_str_equals(a->type, gw_str_from_cstr(oid))) continue;
        for (k = 0; k < values->count; k++) {
            if (gw_str_equals(a->value, view(&values->items[k]))) return 1;
        }
    }
    return 0;
}

/* A pattern ending in '*' matches by prefix, any other exactly (ignoring ASCII case if nocase). */
static int glob_matches(const text *pattern, gw_str value, int nocase) {
    gw_str p = view(pattern);
    if (p.len > 0 && p.ptr[p.len - 1] == '*') {
        p.len--;
        if (value.len < p.len) return 0;
        value.len = p.len;
    }
    return nocase ? gw_str_equals_nocase(value, p) : gw_str_equals(value, p);
}

/* Does any value of the indexed SAN attribute match one of `patterns`? */
static int san_matches(const client *c, gw_attribute attribute, const text_list *patterns, int nocase) {
    uint32_t index;
    size_t k;
    gw_str value;
    for (index = 0; index < 4096 && host->get_attribute(c->request, attribute, index, &value) == GW_OK; index++) {
        for (k = 0; k < patterns->count; k++) if (glob_matches(&patterns->items[k], value, nocase)) return 1;
    }
    return 0;
}

/* Compares a hex attribute (serial, fingerprint) with values already in canonical form. */
static int hex_matches(const client *c, gw_attribute attribute, const text_list *values, int strip_zeros) {
    gw_str value;
    char canonical[130];
    size_t k, n;
    if (host->get_attribute(c->request, attribute, 0, &value) != GW_OK || value.len >= sizeof canonical) return 0;
    n = canonical_hex(value.ptr, value.len, canonical, strip_zeros);
    for (k = 0; k < values->count; k++) {
        if (gw_str_equals((gw_str){canonical, n}, view(&values->items[k]))) return 1;
    }
    return 0;
}

/* Does the client satisfy any condition of the rule's allow? Unverified clients never do. */
static int client_allowed(client *c, const rule *r) {
    const text_list *l = r->lists;
    if (!c->verified) return 0;
    if (r->any_verified_client) return 1;
    return (l[COND_SERIAL].count && hex_matches(c, GW_ATTR_CLIENT_SERIAL, &l[COND_SERIAL], 1)) ||
           (l[COND_FINGERPRINT].count && hex_matches(c, GW_ATTR_CLIENT_FINGERPRINT_SHA256, &l[COND_FINGERPRINT], 0)) ||
           (l[COND_SPIFFE_ID].count && san_matches(c, GW_ATTR_CLIENT_SAN_URI, &l[COND_SPIFFE_ID], 0)) ||
           (l[COND_DNS_SAN].count && san_matches(c, GW_ATTR_CLIENT_SAN_DNS, &l[COND_DNS_SAN], 1)) ||
           (l[COND_SUBJECT_CN].count && dn_matches(c, 0, "CN", "2.5.4.3", &l[COND_SUBJECT_CN])) ||
           (l[COND_SUBJECT_OU].count && dn_matches(c, 0, "OU", "2.5.4.11", &l[COND_SUBJECT_OU])) ||
           (l[COND_SUBJECT_O].count && dn_matches(c, 0, "O", "2.5.4.10", &l[COND_SUBJECT_O])) ||
           (l[COND_ISSUER_CN].count && dn_matches(c, 1, "CN", "2.5.4.3", &l[COND_ISSUER_CN])) ||
           (l[COND_ISSUER_O].count && dn_matches(c, 1, "O", "2.5.4.10", &l[COND_ISSUER_O]));
}

static int rule_applies(const rule *r, gw_str method, gw_str path) {
    size_t k;
    if (!gw_str_has_prefix(path, view(&r->path_prefix))) return 0;
    if (r->methods.count == 0) return 1;
    for (k = 0; k < r->methods.count; k++) {
        if (gw_str_equals(method, view(&r->methods.items[k]))) return 1;
    }
    return 0;
}

/* The gateway matches the path as received (not percent-decoded, not normalised), while a backend may normalise
 * it: "/x/../admin/" or "/%61dmin/" would slip past a "/admin/" rule. Such paths are denied before any rule:
 * a "." or ".." segment (also as %2e), "//", a backslash, and %-escapes of '/', '\' or unreserved characters. */
static int path_is_canonical(gw_str path) {
    size_t i, seg = 0, dots = 0, other = 0;
    for (i = 0; i <= path.len; i++) {
        char c = i < path.len ? path.ptr[i] : '/';
        if (c == '/') {
            if (i > 0 && other == 0 && (dots == 1 || dots == 2)) return 0;
            if (i > 0 && i < path.len && seg == i) return 0; /* empty segment: "//" */
            seg = i + 1; dots = 0; other = 0;
            continue;
        }
        if (c == '\\') return 0;
        if (c == '%') {
            int hi, lo, decoded;
            if (i + 2 >= path.len || (hi = hex_value(path.ptr[i + 1])) < 0 || (lo = hex_value(path.ptr[i + 2])) < 0) return 0;
            decoded = hi << 4 | lo;
            if (decoded == '/' || decoded == '\\' || decoded == '-' || decoded == '.' || decoded == '_' || decoded == '~' ||
                (decoded >= '0' && decoded <= '9') || (decoded >= 'a' && decoded <= 'z') || (decoded >= 'A' && decoded <= 'Z')) return 0;
            i += 2;
            other++;
            continue;
        }
        if (c == '.') dots++; else other++;
    }
    return 1;
}

static gw_action on_request_headers(void *instance, gw_handle request) {
    const authz *a = instance;
    const rule *hit = NULL;
    const char *label;
    gw_str method, path, verify, value, reason, body;
    client c;
    int allow, has_subject;
    size_t i;

    if (host->get_attribute(request, GW_ATTR_METHOD, 0, &method) != GW_OK ||
        host->get_attribute(request, GW_ATTR_PATH, 0, &path) != GW_OK) {
        gw_logf(host, a->tag, GW_LOG_ERROR, "authz: cannot read the request's method or path");
        return GW_FAILED;
    }
    c.request = request;
    c.verified = host->get_attribute(request, GW_ATTR_CLIENT_VERIFY, 0, &verify) == GW_OK &&
                 gw_str_equals(verify, GW_STR_LIT("SUCCESS"));
    c.subject_state = c.issuer_state = 0;
    c.subject.heap = c.issuer.heap = NULL;

    if (!path_is_canonical(path)) {
        label = "path";
        allow = 0;
        reason = GW_STR_LIT("path: non-canonical: deny");
        body = GW_STR_LIT(PATH_BODY);
    } else {
        for (i = 0; i < a->rule_count && !hit; i++) if (rule_applies(&a->rules[i], method, path)) hit = &a->rules[i];
        if (hit) {
            allow = client_allowed(&c, hit);
            label = hit->label.ptr;
            reason = view(allow ? &hit->allow_reason : &hit->deny_reason);
            body = view(&hit->deny_body);
        } else {
            label = "default";
            allow = a->default_allow;
            reason = allow ? GW_STR_LIT("default: allow") : GW_STR_LIT("default: deny");
            body = GW_STR_LIT(DEFAULT_BODY);
        }
    }
    dn_release(&c.subject);
    dn_release(&c.issuer);

    has_subject = host->get_attribute(request, GW_ATTR_CLIENT_SUBJECT, 0, &value) == GW_OK;
    if (!has_subject) value = GW_STR_LIT("-");
    gw_logf(host, a->tag, GW_LOG_DEBUG, "authz: %s %.*s %.*s subject=%.*s%s: %.*s", allow ? "allow" : "deny",
            (int)(method.len > 16 ? 16 : method.len), method.ptr, (int)(path.len > 256 ? 256 : path.len), path.ptr,
            (int)(value.len > 256 ? 256 : value.len), value.ptr, has_subject && !c.verified ? " (not verified)" : "",
            (int)reason.len, reason.ptr);

    if (host->set_var(request, GW_STR_LIT("authz.decision"), allow ? GW_STR_LIT("allow") : GW_STR_LIT("deny")) != GW_OK ||
        host->set_var(request, GW_STR_LIT("authz.rule"), gw_str_from_cstr(label)) != GW_OK ||
        host->set_var(request, GW_STR_LIT("decision_reason"), reason) != GW_OK) {
        return GW_FAILED;
    }
    if (allow) return GW_CONTINUE;
    if (gw_respond_json(host, request, a->deny_status, body) != GW_OK) return GW_FAILED;
    return GW_STOP;
}

/* ------------------------------------------------------------------------------------------------------------
 * Lifecycle.
 */

static gw_status create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    errors e = {0, 0, 0, 0};
    jvalue root;
    authz *a;
    e.buf = error;
    e.cap = cap;
    if (cap > 0) error[0] = '\0';
    (void)h;
    if (!(a = calloc(1, sizeof *a))) { err_add(&e, "out of memory"); return GW_ERR_INTERNAL; }
    a->tag = args->instance_tag;
    a->deny_status = 403;
    if (json_parse(args->config_json, &root, &e) == 0) {
        compile_config(&root, a, &e);
        jfree(&root);
    }
    if (e.count > 0) {
        authz_free(a);
        return GW_ERR_INVALID_ARGUMENT;
    }
    gw_logf(host, a->tag, GW_LOG_INFO, "authz: %lu rules, default %s, deny status %u", (unsigned long)a->rule_count,
            a->default_allow ? "allow" : "deny", (unsigned)a->deny_status);
    *instance = a;
    return GW_OK;
}

static void destroy(void *instance) { authz_free(instance); }

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC,
    .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR,
    .abi_minor = GW_PLUGIN_ABI_MINOR,
    .flags = 0, /* never blocks: decisions only read attributes */
    .name = "authz",
    .version = "1.0.0",
    .create = create,
    .destroy = destroy,
    .on_request_headers = on_request_headers,
};

GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    if (!h || h->abi_major != GW_PLUGIN_ABI_MAJOR) return NULL;
    host = h;
    return &descriptor;
}
