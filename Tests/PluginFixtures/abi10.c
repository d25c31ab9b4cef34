/*
 * Built like a plugin author's C file against the frozen ABI 1.0 header: -std=c99 -Wall -Wextra -Werror
 * -pedantic -fvisibility=hidden, so only GW_PLUGIN_EXPORT makes the entry point visible. It checks the header's
 * promises at compile time (sizes, no padding) and at run time, and reports them to the backend:
 * on_request_headers sets `x-abi: has_get_header_at=1 late_metric=<status> create_metric=<status>`, where
 * late_metric is what metric_define returns outside create (GW_ERR_WRONG_PHASE, -5) and create_metric what it
 * returned inside create (GW_OK, 0). With a client certificate it also sets `x-dn` from get_dn_value:
 * `cn=<subject CN>|ou=<subject OU #0>,<OU #1>|o=<subject 2.5.4.10>|issuer_cn=<issuer cn>|missing=<status>`.
 */
#include <stdio.h>
#include <string.h>
#include "gateway_plugin.h"

/* C99 has no _Static_assert: an array of negative size fails the build instead. */
#define ABI_ASSERT(name, condition) typedef char abi_assert_##name[(condition) ? 1 : -1]
ABI_ASSERT(status_width, sizeof(gw_status) == 4);
ABI_ASSERT(attribute_width, sizeof(gw_attribute) == 4);
ABI_ASSERT(descriptor_1_0, GW_PLUGIN_DESCRIPTOR_SIZE_1_0 == sizeof(gw_plugin_descriptor));
/* The host table grew at its end: by one function pointer in 1.2 and in 1.3, by two in 1.4, by three in 1.5,
 * by one in 1.6. */
ABI_ASSERT(host_api_1_0, GW_HOST_API_SIZE_1_0 == offsetof(gw_host_api, add_headers));
ABI_ASSERT(host_api_1_2, GW_HOST_API_SIZE_1_0 + sizeof(void (*)(void)) == offsetof(gw_host_api, set_ready));
ABI_ASSERT(host_api_1_3, GW_HOST_API_SIZE_1_0 + 2 * sizeof(void (*)(void)) == offsetof(gw_host_api, set_connection_data));
ABI_ASSERT(host_api_1_4, GW_HOST_API_SIZE_1_0 + 4 * sizeof(void (*)(void)) == offsetof(gw_host_api, header_set_create));
ABI_ASSERT(host_api_1_5_add, GW_HOST_API_SIZE_1_0 + 5 * sizeof(void (*)(void)) == offsetof(gw_host_api, header_set_add));
ABI_ASSERT(host_api_1_5_release, GW_HOST_API_SIZE_1_0 + 6 * sizeof(void (*)(void)) == offsetof(gw_host_api, header_set_release));
ABI_ASSERT(host_api_1_6_get_attributes, GW_HOST_API_SIZE_1_0 + 7 * sizeof(void (*)(void)) == offsetof(gw_host_api, get_attributes));
ABI_ASSERT(host_api_1_6, sizeof(gw_host_api) == GW_HOST_API_SIZE_1_0 + 8 * sizeof(void (*)(void)));
ABI_ASSERT(attribute_value_unpadded, sizeof(gw_attribute_value) == 4 + 4 + 4 + 4 + sizeof(gw_str) + 8);
ABI_ASSERT(attribute_value_text, offsetof(gw_attribute_value, text) == 16);
ABI_ASSERT(create_args_1_0, GW_CREATE_ARGS_SIZE_1_0 == sizeof(gw_create_args));
ABI_ASSERT(create_args_unpadded, sizeof(gw_create_args) == 4 + 4 + 8 + 2 * sizeof(gw_str));
ABI_ASSERT(config_value_unpadded, sizeof(gw_config_value) == 4 + 4 + 8 + 8 + sizeof(gw_str));

static const gw_host_api *host;
static gw_status create_metric = 1;

static gw_status abi_create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)error; (void)cap;
    uint32_t id = 0;
    create_metric = h->metric_define(args->instance_tag, GW_METRIC_COUNTER, (gw_str){"abi_requests", 12}, (gw_str){"", 0}, &id);
    *instance = (void *)(uintptr_t)args->instance_tag;
    return GW_OK;
}

static void abi_destroy(void *instance) { (void)instance; }

static gw_action abi_request(void *instance, gw_handle request) {
    uint32_t id = 0;
    gw_status late = host->metric_define((uint64_t)(uintptr_t)instance, GW_METRIC_COUNTER, (gw_str){"abi_late", 8}, (gw_str){"", 0}, &id);
    char value[96];
    int n = snprintf(value, sizeof value, "has_get_header_at=%d late_metric=%d create_metric=%d",
                     GW_HOST_HAS(host, get_header_at) ? 1 : 0, (int)late, (int)create_metric);
    gw_status set = host->set_header(request, (gw_str){"x-abi", 5}, (gw_str){value, (size_t)n});
    if (set != GW_OK) return GW_FAILED;
    gw_str cn, ou0, ou1 = {"-", 1}, o, issuer_cn, missing;
    if (host->get_dn_value(request, GW_DN_SUBJECT, (gw_str){"CN", 2}, 0, &cn) != GW_OK) return GW_CONTINUE;
    if (host->get_dn_value(request, GW_DN_SUBJECT, (gw_str){"ou", 2}, 0, &ou0) != GW_OK) ou0 = (gw_str){"-", 1};
    (void)host->get_dn_value(request, GW_DN_SUBJECT, (gw_str){"OU", 2}, 1, &ou1);
    if (host->get_dn_value(request, GW_DN_SUBJECT, (gw_str){"2.5.4.10", 8}, 0, &o) != GW_OK) o = (gw_str){"-", 1};
    if (host->get_dn_value(request, GW_DN_ISSUER, (gw_str){"cn", 2}, 0, &issuer_cn) != GW_OK) issuer_cn = (gw_str){"-", 1};
    gw_status absent = host->get_dn_value(request, GW_DN_SUBJECT, (gw_str){"UID", 3}, 0, &missing);
    char dn[512];
    n = snprintf(dn, sizeof dn, "cn=%.*s|ou=%.*s,%.*s|o=%.*s|issuer_cn=%.*s|missing=%d", (int)cn.len, cn.ptr, (int)ou0.len, ou0.ptr,
                 (int)ou1.len, ou1.ptr, (int)o.len, o.ptr, (int)issuer_cn.len, issuer_cn.ptr, (int)absent);
    return host->set_header(request, (gw_str){"x-dn", 4}, (gw_str){dn, (size_t)n}) == GW_OK ? GW_CONTINUE : GW_FAILED;
}

static gw_status abi_response(void *instance, gw_handle request) {
    (void)instance; (void)request;
    return GW_OK;
}

static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    /* Requires 1.0 on purpose, with the 1.1 header: it must load on every 1.x gateway. */
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = 0, .flags = 0,
    .name = "abi10", .version = "1.0.0",
    .create = abi_create, .destroy = abi_destroy,
    .on_request_headers = abi_request, .on_response_headers = abi_response,
};

GW_PLUGIN_EXPORT const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) {
    host = h;
    return &descriptor;
}
