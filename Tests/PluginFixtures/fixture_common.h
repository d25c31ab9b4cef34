#define _GNU_SOURCE
/* Shared by the fixtures: a descriptor with everything right, that each fixture then breaks in one way. */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "gateway_plugin.h"

static const gw_host_api *host;

static int32_t fixture_create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)error; (void)cap;
    host = h;
    *instance = (void *)(uintptr_t)args->instance_tag;
    return 0;
}

static void fixture_destroy(void *instance) { (void)instance; }

static gw_action fixture_continue(void *instance, gw_handle request) { (void)instance; (void)request; return GW_CONTINUE; }

#define FIXTURE_DESCRIPTOR(NAME)                                                    \
    static gw_plugin_descriptor descriptor = {                                      \
        .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),     \
        .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR,        \
        .name = NAME, .version = "1.0.0",                                           \
        .create = fixture_create, .destroy = fixture_destroy,                      \
        .on_request_headers = fixture_continue,                                    \
    }

#define FIXTURE_ENTRY(...)                                                          \
    const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {          \
        host = h;                                                                   \
        __VA_ARGS__;                                                                \
        return &descriptor;                                                         \
    }
