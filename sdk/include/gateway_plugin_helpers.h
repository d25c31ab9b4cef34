/*
 * gateway_plugin_helpers.h -- optional helpers for C plugins of mtls-gateway (ABI 1.x).
 *
 * Everything here is `static inline` C99 over gateway_plugin.h and the standard headers: no library to link, no
 * symbol exported, nothing that a plugin could not write itself. Include it after or instead of
 * gateway_plugin.h; use what you need and ignore the rest.
 *
 * Threads. Every helper is reentrant: it keeps no state and only touches what it is given, so it may run on any
 * event-loop or worker thread at once. Helpers that take a handle call host functions with it, so they follow
 * the host's rule: only from within the hook that received the handle, on the thread running it.
 *
 * Memory. Helpers never allocate. A gw_str a helper returns points into memory the caller passed in (or into a
 * view the host returned, valid until the hook returns); the caller's buffers are written, never kept.
 */
#ifndef GATEWAY_PLUGIN_HELPERS_H
#define GATEWAY_PLUGIN_HELPERS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gateway_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GW_PLUGIN_EXPORT (the entry point's export marker) is defined by gateway_plugin.h. */
#if defined(__GNUC__) || defined(__clang__)
#define GW_PRINTF_LIKE(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define GW_PRINTF_LIKE(fmt, first)
#endif

/** A gw_str view of a string literal, without strlen: `GW_STR_LIT("content-type")`. Only for literals (arrays):
 *  with a `const char *` variable, sizeof would measure the pointer; use gw_str_from_cstr for those. A C99
 *  compound literal, so C only (in C++ write `gw_str{"x", 1}`). */
#define GW_STR_LIT(literal) ((gw_str){(literal), sizeof(literal) - 1})

/** A view of a NUL-terminated string (not copied: valid as long as `s` is). NULL gives the empty view. */
static inline gw_str gw_str_from_cstr(const char *s) {
    gw_str out;
    out.ptr = s;
    out.len = s ? strlen(s) : 0;
    return out;
}

/** 1 if `a` and `b` hold the same bytes, else 0. Views need not be NUL-terminated. */
static inline int gw_str_equals(gw_str a, gw_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/** ASCII lower case of one byte; other bytes unchanged (no locale: safe on any thread). */
static inline unsigned char gw_ascii_lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/** 1 if `a` and `b` are equal ignoring ASCII case (header names, DNS names, hex), else 0. Bytes >= 0x80 must
 *  match exactly: this is not Unicode case folding. */
static inline int gw_str_equals_nocase(gw_str a, gw_str b) {
    size_t i;
    if (a.len != b.len) return 0;
    for (i = 0; i < a.len; i++) {
        if (gw_ascii_lower((unsigned char)a.ptr[i]) != gw_ascii_lower((unsigned char)b.ptr[i])) return 0;
    }
    return 1;
}

/** 1 if `s` starts with the bytes of `prefix` (an empty prefix matches everything), else 0. */
static inline int gw_str_has_prefix(gw_str s, gw_str prefix) {
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.ptr, prefix.ptr, prefix.len) == 0);
}

/**
 * Reads a string attribute into the caller's `buf` of `cap` bytes and NUL-terminates it, for code that wants a
 * C string (printf, strtol). Returns the attribute's full length like snprintf does: a result >= `cap` means
 * the copy was truncated (to cap - 1 bytes, still NUL-terminated). Returns -1 when the host returned an error
 * (e.g. GW_ERR_NOT_FOUND: no such attribute, or `index` past the last value); `buf` then holds "" if cap > 0.
 * An attribute may contain NUL bytes (DER): then use the length, or get_attribute's view directly.
 * Same thread and handle rules as get_attribute; `buf` is only written during the call.
 */
static inline long gw_attr_copy(const gw_host_api *host, gw_handle handle, gw_attribute attribute, uint32_t index,
                                char *buf, size_t cap) {
    gw_str value;
    size_t n;
    if (cap > 0) buf[0] = '\0';
    if (host->get_attribute(handle, attribute, index, &value) != GW_OK) return -1;
    if (cap > 0) {
        n = value.len < cap - 1 ? value.len : cap - 1;
        if (n > 0) memcpy(buf, value.ptr, n);
        buf[n] = '\0';
    }
    return (long)value.len;
}

/**
 * Logs one printf-style line through host->log (tagged by the host with plugin and listener). The line is
 * formatted into a 1024-byte stack buffer and truncated beyond it. `instance_tag` is the tag from
 * gw_create_args, or 0 for process-wide lines. Any thread, never blocks; formatting costs time even when the
 * gateway's log level drops the line, so keep per-request lines cheap.
 */
static inline void gw_logf(const gw_host_api *host, uint64_t instance_tag, gw_log_level level, const char *format, ...)
    GW_PRINTF_LIKE(4, 5);
static inline void gw_logf(const gw_host_api *host, uint64_t instance_tag, gw_log_level level, const char *format, ...) {
    char line[1024];
    va_list args;
    gw_str message;
    int n;
    va_start(args, format);
    n = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (n < 0) return;
    message.ptr = line;
    message.len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    host->log(instance_tag, level, message);
}

/**
 * Writes `s` as the inside of a JSON string (quotes not included) into `out` of `cap` bytes, NUL-terminated:
 * `"` and `\` escaped, control characters as \n, \t or \u00XX; other bytes (UTF-8) copied. Returns the length
 * the full escaped text needs (excluding the NUL), like snprintf: a result >= `cap` means `out` was truncated
 * (never in the middle of an escape). For building JSON bodies from values such as paths or subjects.
 */
static inline size_t gw_json_escape(char *out, size_t cap, gw_str s) {
    static const char hex[] = "0123456789abcdef";
    size_t need = 0, used = 0, i, k, n;
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        char piece[7];
        n = 0;
        if (c == '"' || c == '\\') { piece[n++] = '\\'; piece[n++] = (char)c; }
        else if (c == '\n') { piece[n++] = '\\'; piece[n++] = 'n'; }
        else if (c == '\r') { piece[n++] = '\\'; piece[n++] = 'r'; }
        else if (c == '\t') { piece[n++] = '\\'; piece[n++] = 't'; }
        else if (c < 0x20 || c == 0x7F) {
            piece[n++] = '\\'; piece[n++] = 'u'; piece[n++] = '0'; piece[n++] = '0';
            piece[n++] = hex[c >> 4]; piece[n++] = hex[c & 0xF];
        } else piece[n++] = (char)c;
        need += n;
        if (cap > 0 && used == need - n && used + n < cap) {
            for (k = 0; k < n; k++) out[used++] = piece[k];
        }
    }
    if (cap > 0) out[used] = '\0';
    return need;
}

/**
 * Answers the request with `status` (200..599), `content-type: application/json` and `json_body` (copied by
 * the host; the caller builds valid JSON). Returns respond's status. On GW_OK the hook must return GW_STOP for
 * the answer to be sent; on an error return GW_FAILED (or go on without answering). on_request_headers only.
 */
static inline gw_status gw_respond_json(const gw_host_api *host, gw_handle request, uint32_t status, gw_str json_body) {
    gw_header content_type;
    content_type.name.ptr = "content-type";
    content_type.name.len = 12;
    content_type.value.ptr = "application/json";
    content_type.value.len = 16;
    return host->respond(request, status, &content_type, 1, json_body);
}

/* ---- Typed config getters (create only) ----------------------------------------------------------------- */

/*
 * Over the host's config reader (config_get): read the instance's config by key path, e.g. "rules[0].allow.ou",
 * with the gateway's own error wording. Each getter returns
 *    1  the value is there and of the type: written to *out;
 *    0  the value is absent (or null): *out is left as it was, so set the default first;
 *   -1  the value has another type, the path is malformed, or the host has no config reader (not in create):
 *       "<path>: expected <type>" is written to `error` (NUL-terminated, cut to `cap`), ready for create's
 *       error buffer.
 * `path` is NUL-terminated. Strings are views valid until create returns: copy what you keep. Call
 * config_check_keys on every object you read, so that a misspelt key is an error, not a silent default.
 */
static inline int gw_config__typed(const gw_host_api *host, uint64_t tag, const char *path, gw_config_type want,
                                   const char *what, gw_config_value *value, char *error, size_t cap) {
    gw_status status;
    if (!GW_HOST_HAS(host, config_get)) {
        if (cap > 0) snprintf(error, cap, "%s: this host has no config reader", path);
        return -1;
    }
    status = host->config_get(tag, gw_str_from_cstr(path), value);
    if (status != GW_OK) {
        if (cap > 0) snprintf(error, cap, "%s: cannot be read (status %d)", path, (int)status);
        return -1;
    }
    if (value->type == GW_CONFIG_MISSING || value->type == GW_CONFIG_NULL) return 0;
    /* An integer is also a number. */
    if (value->type == want || (want == GW_CONFIG_NUMBER && value->type == GW_CONFIG_INT)) return 1;
    if (cap > 0) snprintf(error, cap, "%s: expected %s", path[0] ? path : "config", what);
    return -1;
}

/** A string (a view valid until create returns). */
static inline int gw_config_string(const gw_host_api *host, uint64_t tag, const char *path, gw_str *out, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_STRING, "a string", &value, error, cap);
    if (found == 1) *out = value.string;
    return found;
}

/** An integer (a number without a fractional part that fits int64_t). */
static inline int gw_config_int(const gw_host_api *host, uint64_t tag, const char *path, int64_t *out, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_INT, "an integer", &value, error, cap);
    if (found == 1) *out = value.integer;
    return found;
}

/** Any number. */
static inline int gw_config_number(const gw_host_api *host, uint64_t tag, const char *path, double *out, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_NUMBER, "a number", &value, error, cap);
    if (found == 1) *out = value.number;
    return found;
}

/** true or false, as 1 or 0. */
static inline int gw_config_bool(const gw_host_api *host, uint64_t tag, const char *path, int *out, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_BOOL, "true or false", &value, error, cap);
    if (found == 1) *out = value.integer != 0;
    return found;
}

/** An array: its element count (read the elements as "<path>[i]"). */
static inline int gw_config_array(const gw_host_api *host, uint64_t tag, const char *path, uint32_t *count, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_ARRAY, "an array", &value, error, cap);
    if (found == 1) *count = value.count;
    return found;
}

/** An object: its key count (enumerate the keys with host->config_key_at). */
static inline int gw_config_object(const gw_host_api *host, uint64_t tag, const char *path, uint32_t *count, char *error, size_t cap) {
    gw_config_value value;
    int found = gw_config__typed(host, tag, path, GW_CONFIG_OBJECT, "a mapping", &value, error, cap);
    if (found == 1) *count = value.count;
    return found;
}

#ifdef __cplusplus
}
#endif

#endif /* GATEWAY_PLUGIN_HELPERS_H */
