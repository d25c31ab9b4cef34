/*
 * Reads its whole config through the host's config reader and the typed getters of gateway_plugin_helpers.h,
 * as a C plugin author would (no JSON parser of its own), and refuses a bad config with the gateway's wording.
 * Config:
 *   greeting: string (default "hi")      limit: integer (default 10)     strict: bool (default false)
 *   ratio: number (default 1)            tags: [string]                  labels: { name: string, ... }
 *   rules: [ { path: string (required), allow: [string] } ]
 * on_request_headers adds an `x-config` header with what it read, e.g.
 *   greeting=hello limit=5 strict=1 ratio=0.50 tags=a,b rules=/x:alice+bob labels=team:blue late=-5
 * where late is what config_get returns outside create (GW_ERR_WRONG_PHASE).
 */
#include <stdlib.h>
#include "gateway_plugin_helpers.h"

static const gw_host_api *host;

typedef struct {
    uint64_t tag;
    char summary[1024];
} instance_state;

/* Appends printf-style text to the summary; stops quietly at its end. */
static void append(instance_state *s, const char *format, const char *a, int alen) {
    size_t used = strlen(s->summary);
    if (used + 1 < sizeof s->summary) snprintf(s->summary + used, sizeof s->summary - used, format, alen, a);
}

static int read_string_list(uint64_t tag, const char *path, instance_state *s, const char *separator, char *error, size_t cap) {
    uint32_t count = 0, i;
    int found = gw_config_array(host, tag, path, &count, error, cap);
    if (found <= 0) return found;
    for (i = 0; i < count; i++) {
        char item[128];
        gw_str value;
        snprintf(item, sizeof item, "%s[%u]", path, (unsigned)i);
        found = gw_config_string(host, tag, item, &value, error, cap);
        if (found == 0) snprintf(error, cap, "%s: expected a string", item); /* null */
        if (found != 1) return -1;
        append(s, "%.*s", value.ptr, (int)value.len);
        if (i + 1 < count) append(s, "%.*s", separator, (int)strlen(separator));
    }
    return 1;
}

static gw_status cr_create(const gw_host_api *h, const gw_create_args *args, void **out, char *error, size_t cap) {
    static const char *const known[] = {"greeting", "limit", "strict", "ratio", "tags", "rules", "labels"};
    static const char *const rule_keys[] = {"path", "allow"};
    uint64_t tag = args->instance_tag;
    gw_str greeting = GW_STR_LIT("hi");
    int64_t limit = 10;
    int strict = 0;
    double ratio = 1;
    uint32_t count = 0, i;
    instance_state *s;
    char number[64];
    if (h->config_check_keys(tag, GW_STR_LIT(""), known, 7, error, cap) != GW_OK) return GW_ERR_INVALID_ARGUMENT;
    if (gw_config_string(h, tag, "greeting", &greeting, error, cap) < 0) return GW_ERR_INVALID_ARGUMENT;
    if (gw_config_int(h, tag, "limit", &limit, error, cap) < 0) return GW_ERR_INVALID_ARGUMENT;
    if (gw_config_bool(h, tag, "strict", &strict, error, cap) < 0) return GW_ERR_INVALID_ARGUMENT;
    if (gw_config_number(h, tag, "ratio", &ratio, error, cap) < 0) return GW_ERR_INVALID_ARGUMENT;
    s = calloc(1, sizeof *s);
    if (!s) return GW_ERR_INTERNAL;
    s->tag = tag;
    append(s, "greeting=%.*s", greeting.ptr, (int)greeting.len);
    snprintf(number, sizeof number, " limit=%lld strict=%d ratio=%.2f tags=", (long long)limit, strict, ratio);
    append(s, "%.*s", number, (int)strlen(number));
    if (read_string_list(tag, "tags", s, ",", error, cap) < 0) goto fail;
    append(s, "%.*s", " rules=", 7);
    if (gw_config_array(h, tag, "rules", &count, error, cap) < 0) goto fail;
    for (i = 0; i < count; i++) {
        char path[64], item[80];
        gw_str value;
        snprintf(path, sizeof path, "rules[%u]", (unsigned)i);
        {
            uint32_t keys = 0;
            int found = gw_config_object(h, tag, path, &keys, error, cap);
            if (found == 0) snprintf(error, cap, "%s: expected a mapping", path); /* null */
            if (found != 1) goto fail;
        }
        if (h->config_check_keys(tag, gw_str_from_cstr(path), rule_keys, 2, error, cap) != GW_OK) goto fail;
        snprintf(item, sizeof item, "%s.path", path);
        switch (gw_config_string(h, tag, item, &value, error, cap)) {
        case 1: break;
        case 0: snprintf(error, cap, "%s: missing required key", item); goto fail;
        default: goto fail;
        }
        if (i) append(s, "%.*s", ";", 1);
        append(s, "%.*s:", value.ptr, (int)value.len);
        snprintf(item, sizeof item, "%s.allow", path);
        if (read_string_list(tag, item, s, "+", error, cap) < 0) goto fail;
    }
    append(s, "%.*s", " labels=", 8);
    if (gw_config_object(h, tag, "labels", &count, error, cap) < 0) goto fail;
    for (i = 0; i < count; i++) {
        gw_str key, value;
        char path[128];
        if (h->config_key_at(tag, GW_STR_LIT("labels"), i, &key) != GW_OK) { snprintf(error, cap, "labels: key %u unreadable", (unsigned)i); goto fail; }
        snprintf(path, sizeof path, "labels.%.*s", (int)key.len, key.ptr);
        {
            int found = gw_config_string(h, tag, path, &value, error, cap);
            if (found == 0) snprintf(error, cap, "%s: expected a string", path); /* null */
            if (found != 1) goto fail;
        }
        if (i) append(s, "%.*s", ",", 1);
        append(s, "%.*s:", key.ptr, (int)key.len);
        append(s, "%.*s", value.ptr, (int)value.len);
    }
    *out = s;
    return GW_OK;
fail:
    free(s);
    return GW_ERR_INVALID_ARGUMENT;
}

static void cr_destroy(void *instance) { free(instance); }

static gw_action cr_request(void *instance, gw_handle request) {
    instance_state *s = instance;
    gw_config_value value;
    char header[1100];
    gw_status late = host->config_get(s->tag, GW_STR_LIT("greeting"), &value);
    int n = snprintf(header, sizeof header, "%s late=%d", s->summary, (int)late);
    return host->add_header(request, GW_STR_LIT("x-config"), (gw_str){header, (size_t)n}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR, .flags = 0,
    .name = "configread", .version = "1.0.0",
    .create = cr_create, .destroy = cr_destroy,
    .on_request_headers = cr_request,
};

GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    host = h;
    return &descriptor;
}
