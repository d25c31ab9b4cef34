/*
 * authz.c -- a rules-based authorization plugin for mtls-gateway: which client certificates may use which paths
 * and methods. Depends on nothing but libc and the SDK headers. README.md documents the config and the semantics.
 *
 * Layout, top to bottom: the compiled config (read-only rules); validation, which reads the config by key path
 * through the host's config reader (config_get, config_check_keys: no JSON parser here) and compiles it, naming
 * every problem by its key path; the request hook, which reads the certificate's names value by value with
 * get_dn_value (no RFC 2253 parser here); the descriptor and entry point.
 *
 * Threads. create and destroy run on a thread that is not an event loop. on_request_headers runs concurrently on
 * every event-loop thread for the same instance, so the instance is never written after create: everything a
 * decision needs is computed at create (including the deny bodies and reasons), and per-request state lives on
 * the stack.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_plugin.h"
#include "gateway_plugin_helpers.h"

static const gw_host_api *host; /* set once by the entry point, before any create */

/* ------------------------------------------------------------------------------------------------------------
 * The compiled config: read-only after create.
 */

typedef enum {
    COND_SUBJECT_CN, COND_SUBJECT_OU, COND_SUBJECT_O, COND_ISSUER_CN, COND_ISSUER_O,
    COND_SPIFFE_ID, COND_DNS_SAN, COND_SERIAL, COND_FINGERPRINT, COND_LISTS
} condition;

/* The allow conditions that take a list, in the order of `condition`; then the one that does not. */
static const char *const condition_names[COND_LISTS + 1] = {
    "subject_cn", "subject_ou", "subject_o", "issuer_cn", "issuer_o", "spiffe_id", "dns_san", "serial",
    "fingerprint_sha256", "any_verified_client",
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

/* Copies a view (a config string, valid only until create returns) into a new text; ptr NULL when out of memory. */
static text text_copy(gw_str s) { return text_join("", s, 0, ""); }

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_hex_text(const char *s, size_t len) {
    size_t i;
    for (i = 0; i < len; i++) if (hex_value(s[i]) < 0) return 0;
    return len > 0;
}

/* Serials and fingerprints are compared in one canonical form: colons removed, lower case; serials also
 * without leading zeros ("0A1B" and "a1b" are the same serial; zero is "0"). `out` has room for len + 1. */
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

/* ------------------------------------------------------------------------------------------------------------
 * Validation: reads the config by key path with the host's config reader (from create only), reports every
 * problem by its key path, joined with "; " into create's error buffer, and fills the authz.
 *
 * The typed getters of gateway_plugin_helpers.h (gw_config_string, ...) read null as absent and word every
 * wrong type as "expected <type>". No key of this config may be null, and its messages say more (e.g. "got a
 * number (quote it in YAML)"), so it switches on config_get's type itself.
 */

/* Key paths: "rules[4294967295]" fits RULE_PATH_CAP, "rules[4294967295].allow.fingerprint_sha256" PATH_CAP, with
 * room to spare (the sizes also let the compiler prove that no snprintf below truncates). */
#define RULE_PATH_CAP 32
#define PATH_CAP 128

typedef struct {
    uint64_t tag;
    char *buf; /* create's error buffer */
    size_t cap, len;
    unsigned count; /* problems found */
} compiler;

static void err_add(compiler *c, const char *format, ...) GW_PRINTF_LIKE(2, 3);
static void err_add(compiler *c, const char *format, ...) {
    va_list args;
    int n;
    c->count++;
    if (c->cap == 0 || c->len + 1 >= c->cap) return;
    if (c->count > 1) {
        n = snprintf(c->buf + c->len, c->cap - c->len, "; ");
        c->len += (size_t)n < c->cap - c->len ? (size_t)n : c->cap - c->len - 1;
    }
    va_start(args, format);
    n = vsnprintf(c->buf + c->len, c->cap - c->len, format, args);
    va_end(args);
    if (n > 0) c->len += (size_t)n < c->cap - c->len ? (size_t)n : c->cap - c->len - 1;
}

/* Reads the value at `path`. Returns 1 if it is there (null included), 0 if absent, -1 if unreadable (reported). */
static int lookup(compiler *c, const char *path, gw_config_value *v) {
    gw_status status = host->config_get(c->tag, gw_str_from_cstr(path), v);
    if (status != GW_OK) {
        err_add(c, "%s: cannot be read (status %d)", path[0] ? path : "config", (int)status);
        return -1;
    }
    return v->type != GW_CONFIG_MISSING;
}

/* Reports a key of the object at `path` that is not in `known`, in the host's wording:
 * "<path>: unknown key 'x'; known: a, b" (the host names the first such key). */
static void check_keys(compiler *c, const char *path, const char *const *known, uint32_t count) {
    char message[512];
    gw_status status;
    message[0] = '\0';
    status = host->config_check_keys(c->tag, gw_str_from_cstr(path), known, count, message, sizeof message);
    if (status == GW_OK) return;
    if (message[0]) err_add(c, "%s", message);
    else err_add(c, "%s: cannot be checked (status %d)", path[0] ? path : "config", (int)status);
}

/* Compiles the list of strings `v` at `path` (`methods`, or one allow condition) into `out`. */
static void compile_strings(compiler *c, const char *path, const gw_config_value *v, int kind, text_list *out) {
    uint32_t i;
    if (v->type != GW_CONFIG_ARRAY) { err_add(c, "%s: expected an array of strings", path); return; }
    if (v->count == 0) { err_add(c, "%s: must not be empty", path); return; }
    if (!(out->items = calloc(v->count, sizeof *out->items))) { err_add(c, "out of memory"); return; }
    for (i = 0; i < v->count; i++) {
        char item_path[PATH_CAP + 16];
        gw_config_value item;
        gw_str s;
        text *t = &out->items[out->count];
        const char *star;
        snprintf(item_path, sizeof item_path, "%s[%lu]", path, (unsigned long)i);
        if (lookup(c, item_path, &item) < 0) continue;
        if (item.type != GW_CONFIG_STRING) {
            err_add(c, "%s: expected a string%s", item_path,
                    item.type == GW_CONFIG_INT || item.type == GW_CONFIG_NUMBER ? ", got a number (quote it in YAML)" : "");
            continue;
        }
        s = item.string;
        if (s.len == 0) { err_add(c, "%s: must not be empty", item_path); continue; }
        star = memchr(s.ptr, '*', s.len);
        if ((kind == COND_SPIFFE_ID || kind == COND_DNS_SAN) && star && star != s.ptr + s.len - 1) {
            err_add(c, "%s: '*' is only allowed at the end", item_path);
            continue;
        }
        if (kind == COND_SERIAL || kind == COND_FINGERPRINT) {
            if (!(t->ptr = malloc(s.len + 1))) { err_add(c, "out of memory"); return; }
            out->count++;
            t->len = canonical_hex(s.ptr, s.len, t->ptr, kind == COND_SERIAL);
            if (kind == COND_SERIAL && !is_hex_text(t->ptr, t->len)) {
                err_add(c, "%s: must be hex digits (colons allowed)", item_path);
            } else if (kind == COND_FINGERPRINT && (t->len != 64 || !is_hex_text(t->ptr, t->len))) {
                err_add(c, "%s: must be 64 hex digits (colons allowed)", item_path);
            }
        } else {
            if (!(*t = text_copy(s)).ptr) { err_add(c, "out of memory"); return; }
            out->count++;
        }
    }
}

static void compile_allow(compiler *c, const char *rule_path, const gw_config_value *allow, rule *r) {
    char path[PATH_CAP], sub[PATH_CAP];
    gw_config_value v;
    int k;
    snprintf(path, sizeof path, "%s.allow", rule_path);
    if (allow->type != GW_CONFIG_OBJECT) { err_add(c, "%s: expected an object", path); return; }
    if (allow->count == 0) { err_add(c, "%s: needs at least one condition", path); return; }
    check_keys(c, path, condition_names, COND_LISTS + 1);
    for (k = 0; k < COND_LISTS; k++) {
        snprintf(sub, sizeof sub, "%s.allow.%s", rule_path, condition_names[k]);
        if (lookup(c, sub, &v) == 1) compile_strings(c, sub, &v, k, &r->lists[k]);
    }
    snprintf(sub, sizeof sub, "%s.allow.any_verified_client", rule_path);
    if (lookup(c, sub, &v) == 1) {
        if (v.type == GW_CONFIG_BOOL && v.integer) r->any_verified_client = 1;
        else err_add(c, "%s: must be true", sub);
    }
}

static void compile_rule(compiler *c, uint32_t index, rule *r) {
    static const char *const known[] = {"path_prefix", "methods", "allow"};
    char path[RULE_PATH_CAP], sub[PATH_CAP], head[RULE_PATH_CAP + 64];
    gw_config_value v;
    snprintf(path, sizeof path, "rules[%lu]", (unsigned long)index);
    if (lookup(c, path, &v) < 0) return;
    if (v.type != GW_CONFIG_OBJECT) { err_add(c, "%s: expected an object", path); return; }
    check_keys(c, path, known, 3);
    snprintf(sub, sizeof sub, "%s.path_prefix", path);
    switch (lookup(c, sub, &v)) {
    case 0: err_add(c, "%s: needs path_prefix", path); break;
    case 1:
        if (v.type != GW_CONFIG_STRING || v.string.len == 0 || v.string.ptr[0] != '/') {
            err_add(c, "%s: must be a string starting with '/'", sub);
        } else if (!(r->path_prefix = text_copy(v.string)).ptr) err_add(c, "out of memory");
        break;
    default: break;
    }
    snprintf(sub, sizeof sub, "%s.methods", path);
    if (lookup(c, sub, &v) == 1) compile_strings(c, sub, &v, -1, &r->methods);
    snprintf(sub, sizeof sub, "%s.allow", path);
    switch (lookup(c, sub, &v)) {
    case 0: err_add(c, "%s: needs allow", path); break;
    case 1: compile_allow(c, path, &v, r); break;
    default: break;
    }
    if (c->count == 0) { /* the texts this rule answers with, built once */
        gw_str p = view(&r->path_prefix);
        r->label = text_copy(gw_str_from_cstr(path));
        snprintf(head, sizeof head, "{\"error\":\"forbidden\",\"rule\":\"%s\",\"path_prefix\":\"", path);
        r->deny_body = text_join(head, p, 1, "\"}");
        snprintf(head, sizeof head, "%s (", path);
        r->allow_reason = text_join(head, p, 0, "): allow");
        r->deny_reason = text_join(head, p, 0, "): deny");
        if (!r->label.ptr || !r->deny_body.ptr || !r->allow_reason.ptr || !r->deny_reason.ptr) err_add(c, "out of memory");
    }
}

static void compile_config(compiler *c, authz *a) {
    static const char *const known[] = {"default", "rules", "deny_status"};
    gw_config_value v;
    uint32_t i;
    if (lookup(c, "", &v) < 0) return;
    if (v.type != GW_CONFIG_OBJECT) { err_add(c, "config: expected an object"); return; }
    check_keys(c, "", known, 3);
    if (lookup(c, "default", &v) == 1) {
        if (v.type == GW_CONFIG_STRING && gw_str_equals(v.string, GW_STR_LIT("allow"))) a->default_allow = 1;
        else if (!(v.type == GW_CONFIG_STRING && gw_str_equals(v.string, GW_STR_LIT("deny")))) {
            err_add(c, "default: must be \"allow\" or \"deny\"");
        }
    }
    if (lookup(c, "deny_status", &v) == 1) {
        if (v.type != GW_CONFIG_INT || v.integer < 400 || v.integer > 599) err_add(c, "deny_status: must be an integer 400..599");
        else a->deny_status = (uint32_t)v.integer;
    }
    switch (lookup(c, "rules", &v)) {
    case 0: err_add(c, "config: needs rules"); return;
    case 1: break;
    default: return;
    }
    if (v.type != GW_CONFIG_ARRAY) { err_add(c, "rules: expected an array"); return; }
    if (v.count == 0) return;
    if (!(a->rules = calloc(v.count, sizeof *a->rules))) { err_add(c, "out of memory"); return; }
    a->rule_count = v.count;
    for (i = 0; i < v.count; i++) compile_rule(c, i, &a->rules[i]);
}

/* ------------------------------------------------------------------------------------------------------------
 * Decisions.
 */

/* The most values of one kind (SANs, one type of DN attribute) a decision looks at. */
#define MAX_VALUES 4096

/* What one request's client is. */
typedef struct {
    gw_handle request;
    int verified; /* GW_ATTR_CLIENT_VERIFY is "SUCCESS" */
} client;

/* Does any value of attribute `type` ("CN", "OU", "O") of the subject or issuer equal one in `values`? The host
 * decodes the values from the certificate (unescaped, every value of a multi-valued RDN), so there is no
 * RFC 2253 text to parse here. */
static int dn_matches(const client *c, gw_dn which, gw_str type, const text_list *values) {
    uint32_t index;
    size_t k;
    gw_str value;
    for (index = 0; index < MAX_VALUES && host->get_dn_value(c->request, which, type, index, &value) == GW_OK; index++) {
        for (k = 0; k < values->count; k++) if (gw_str_equals(value, view(&values->items[k]))) return 1;
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
    for (index = 0; index < MAX_VALUES && host->get_attribute(c->request, attribute, index, &value) == GW_OK; index++) {
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
static int client_allowed(const client *c, const rule *r) {
    const text_list *l = r->lists;
    if (!c->verified) return 0;
    if (r->any_verified_client) return 1;
    return (l[COND_SERIAL].count && hex_matches(c, GW_ATTR_CLIENT_SERIAL, &l[COND_SERIAL], 1)) ||
           (l[COND_FINGERPRINT].count && hex_matches(c, GW_ATTR_CLIENT_FINGERPRINT_SHA256, &l[COND_FINGERPRINT], 0)) ||
           (l[COND_SPIFFE_ID].count && san_matches(c, GW_ATTR_CLIENT_SAN_URI, &l[COND_SPIFFE_ID], 0)) ||
           (l[COND_DNS_SAN].count && san_matches(c, GW_ATTR_CLIENT_SAN_DNS, &l[COND_DNS_SAN], 1)) ||
           (l[COND_SUBJECT_CN].count && dn_matches(c, GW_DN_SUBJECT, GW_STR_LIT("CN"), &l[COND_SUBJECT_CN])) ||
           (l[COND_SUBJECT_OU].count && dn_matches(c, GW_DN_SUBJECT, GW_STR_LIT("OU"), &l[COND_SUBJECT_OU])) ||
           (l[COND_SUBJECT_O].count && dn_matches(c, GW_DN_SUBJECT, GW_STR_LIT("O"), &l[COND_SUBJECT_O])) ||
           (l[COND_ISSUER_CN].count && dn_matches(c, GW_DN_ISSUER, GW_STR_LIT("CN"), &l[COND_ISSUER_CN])) ||
           (l[COND_ISSUER_O].count && dn_matches(c, GW_DN_ISSUER, GW_STR_LIT("O"), &l[COND_ISSUER_O]));
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

    /* The subject as text, for the log line only: never parsed. */
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
    compiler c;
    authz *a;
    (void)h; /* the same table as `host` */
    c.tag = args->instance_tag;
    c.buf = error;
    c.cap = cap;
    c.len = 0;
    c.count = 0;
    if (cap > 0) error[0] = '\0';
    if (!(a = calloc(1, sizeof *a))) { err_add(&c, "out of memory"); return GW_ERR_INTERNAL; }
    a->tag = args->instance_tag;
    a->deny_status = 403;
    compile_config(&c, a);
    if (c.count > 0) {
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
    .abi_minor = 0, /* uses nothing newer than ABI 1.0: loads on every 1.x gateway */
    .flags = 0, /* never blocks: decisions only read attributes */
    .name = "authz",
    .version = "1.0.0",
    .create = create,
    .destroy = destroy,
    .on_request_headers = on_request_headers,
};

GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    /* get_dn_value and the config reader are ABI 1.0: any 1.x host has them. */
    if (!h || h->abi_major != GW_PLUGIN_ABI_MAJOR || h->struct_size < GW_HOST_API_SIZE_1_0) return NULL;
    host = h;
    return &descriptor;
}
