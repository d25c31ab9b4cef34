/* A blocking plugin: sleeps {"sleep_ms": N} in on_request_headers, then sets x-blocking: done. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gateway_plugin.h"

static const gw_host_api *host;

static int32_t create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)error; (void)cap;
    host = h;
    long ms = 0;
    const char *hit = memmem(args->config_json.ptr, args->config_json.len, "\"sleep_ms\":", 11);
    if (hit) ms = strtol(hit + 11, 0, 10);
    *instance = (void *)(intptr_t)ms;
    return 0;
}

static void destroy(void *instance) { (void)instance; }

static gw_action on_request_headers(void *instance, gw_handle request) {
    long ms = (long)(intptr_t)instance;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, 0);
    return host->set_header(request, (gw_str){"x-blocking", 10}, (gw_str){"done", 4}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR, .flags = GW_PLUGIN_FLAG_BLOCKING,
    .name = "slow_blocking", .version = "1.0.0", .create = create, .destroy = destroy,
    .on_request_headers = on_request_headers,
};

const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) { host = h; return &descriptor; }
