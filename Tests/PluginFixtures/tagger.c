/*
 * A working plugin for the integration tests. Config: {"tag": "p1", "deny_path": "/forbidden"}, and
 * optionally "deny_bytes": "N" (the 403's body is then N bytes of 'x' instead of "denied by <tag>").
 * - on_request_headers: appends its tag to the request header x-chain (so order is visible to the backend),
 *   copies the client subject into x-<tag>-subject, answers 403 for deny_path.
 * - on_response_headers: adds x-<tag>-response: 1.
 * - on_connection / on_complete: log what they saw (the tests read the gateway's log); create and destroy log
 *   "tagger <tag> created|destroyed"; the counter tagger_requests counts on_request_headers calls.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gateway_plugin.h"

static const gw_host_api *host;

typedef struct {
    uint64_t tag_id;
    uint32_t requests_metric;
    char tag[32];
    char deny_path[128];
    size_t deny_bytes;
} tagger;

/* Finds "key": "value" in flat JSON; good enough for a fixture, not a JSON parser. */
static int json_string(gw_str json, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *hit = memmem(json.ptr, json.len, pattern, strlen(pattern));
    if (!hit) return 0;
    const char *end = json.ptr + json.len;
    const char *p = hit + strlen(pattern);
    while (p < end && (*p == ' ' || *p == ':')) p++;
    if (p >= end || *p != '"') return 0;
    p++;
    size_t n = 0;
    while (p < end && *p != '"' && n + 1 < cap) out[n++] = *p++;
    out[n] = 0;
    return 1;
}

static void logf_(uint64_t tag, const char *line) {
    host->log(tag, GW_LOG_INFO, (gw_str){line, strlen(line)});
}

static int32_t create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    host = h;
    tagger *t = calloc(1, sizeof *t);
    if (!json_string(args->config_json, "tag", t->tag, sizeof t->tag)) {
        snprintf(error, cap, "missing string key 'tag'");
        free(t);
        return 1;
    }
    json_string(args->config_json, "deny_path", t->deny_path, sizeof t->deny_path);
    char bytes[32];
    if (json_string(args->config_json, "deny_bytes", bytes, sizeof bytes)) t->deny_bytes = strtoull(bytes, NULL, 10);
    t->tag_id = args->instance_tag;
    const char *metric = "tagger_requests", *help = "Requests the tagger saw.";
    host->metric_define(t->tag_id, GW_METRIC_COUNTER, (gw_str){metric, strlen(metric)}, (gw_str){help, strlen(help)}, &t->requests_metric);
    char line[96];
    snprintf(line, sizeof line, "tagger %s created", t->tag);
    logf_(t->tag_id, line);
    *instance = t;
    return 0;
}

static void destroy(void *instance) {
    tagger *t = instance;
    char line[96];
    snprintf(line, sizeof line, "tagger %s destroyed", t->tag);
    logf_(t->tag_id, line);
    free(t);
}

static void on_connection(void *instance, gw_handle connection) {
    tagger *t = instance;
    gw_str verify = {0, 0}, reason = {"-", 1};
    host->get_attribute(connection, GW_ATTR_CLIENT_VERIFY, 0, &verify);
    host->get_attribute(connection, GW_ATTR_VERIFY_ERROR, 0, &reason);
    char line[512];
    snprintf(line, sizeof line, "connection %s verify=%.*s error=%.*s", t->tag, (int)verify.len, verify.ptr, (int)reason.len, reason.ptr);
    logf_(t->tag_id, line);
}

static gw_action on_request_headers(void *instance, gw_handle request) {
    tagger *t = instance;
    host->metric_record(t->tag_id, t->requests_metric, 1);
    char chain[256] = "";
    gw_str previous;
    if (host->get_header(request, (gw_str){"x-chain", 7}, 0, &previous) == GW_OK) {
        snprintf(chain, sizeof chain, "%.*s,%s", (int)previous.len, previous.ptr, t->tag);
    } else {
        snprintf(chain, sizeof chain, "%s", t->tag);
    }
    if (host->set_header(request, (gw_str){"x-chain", 7}, (gw_str){chain, strlen(chain)}) != GW_OK) return GW_FAILED;

    gw_str subject;
    if (host->get_attribute(request, GW_ATTR_CLIENT_SUBJECT, 0, &subject) == GW_OK) {
        char name[64];
        int n = snprintf(name, sizeof name, "x-%s-subject", t->tag);
        host->set_header(request, (gw_str){name, (size_t)n}, subject);
    }
    host->set_var(request, (gw_str){"last_tag", 8}, (gw_str){t->tag, strlen(t->tag)});

    gw_str path;
    if (t->deny_path[0] && host->get_attribute(request, GW_ATTR_PATH, 0, &path) == GW_OK &&
        path.len == strlen(t->deny_path) && memcmp(path.ptr, t->deny_path, path.len) == 0) {
        gw_header headers[1] = {{{"x-denied-by", 11}, {t->tag, strlen(t->tag)}}};
        if (t->deny_bytes > 0) {
            char *big = malloc(t->deny_bytes);
            if (!big) return GW_FAILED;
            memset(big, 'x', t->deny_bytes);
            int32_t status = host->respond(request, 403, headers, 1, (gw_str){big, t->deny_bytes});
            free(big);
            return status == GW_OK ? GW_STOP : GW_FAILED;
        }
        char body[64];
        int n = snprintf(body, sizeof body, "denied by %s\n", t->tag);
        host->respond(request, 403, headers, 1, (gw_str){body, (size_t)n});
        return GW_STOP;
    }
    return GW_CONTINUE;
}

static gw_action on_response_headers(void *instance, gw_handle request) {
    tagger *t = instance;
    char name[64];
    int n = snprintf(name, sizeof name, "x-%s-response", t->tag);
    return host->add_header(request, (gw_str){name, (size_t)n}, (gw_str){"1", 1}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static void on_complete(void *instance, gw_handle request) {
    tagger *t = instance;
    int64_t status = 0;
    host->get_attribute_int(request, GW_ATTR_RESPONSE_STATUS, &status);
    gw_str by = {"-", 1};
    host->get_attribute(request, GW_ATTR_ANSWERED_BY, 0, &by);
    char line[256];
    snprintf(line, sizeof line, "complete %s status=%lld answered_by=%.*s", t->tag, (long long)status, (int)by.len, by.ptr);
    logf_(t->tag_id, line);
}

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC,
    .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR,
    .abi_minor = GW_PLUGIN_ABI_MINOR,
    .flags = 0,
    .name = "tagger",
    .version = "1.2.3",
    .create = create,
    .destroy = destroy,
    .on_connection = on_connection,
    .on_request_headers = on_request_headers,
    .on_response_headers = on_response_headers,
    .on_complete = on_complete,
};

const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    host = h;
    return &descriptor;
}
