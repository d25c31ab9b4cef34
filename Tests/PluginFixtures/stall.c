/* A misbehaving plugin: sleeps {"sleep_ms": N} in on_request_headers on the event loop (it does not declare
 * GW_PLUGIN_FLAG_BLOCKING). Used to show that the admin listener still answers while it stalls every loop. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gateway_plugin.h"

static int32_t create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)h; (void)error; (void)cap;
    long ms = 0;
    const char *hit = memmem(args->config_json.ptr, args->config_json.len, "\"sleep_ms\":", 11);
    if (hit) ms = strtol(hit + 11, 0, 10);
    *instance = (void *)(intptr_t)ms;
    return 0;
}

static void destroy(void *instance) { (void)instance; }

static gw_action on_request_headers(void *instance, gw_handle request) {
    (void)request;
    long ms = (long)(intptr_t)instance;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, 0);
    return GW_CONTINUE;
}

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR,
    .name = "stall", .version = "1.0.0", .create = create, .destroy = destroy,
    .on_request_headers = on_request_headers,
};

const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) { (void)h; return &descriptor; }
