/* Does nothing, fast: for the chain-overhead benchmark. */
#include "gateway_plugin.h"
static int32_t create(const gw_host_api *h, const gw_create_args *a, void **i, char *e, size_t c) { (void)h; (void)a; (void)e; (void)c; *i = 0; return 0; }
static void destroy(void *i) { (void)i; }
static gw_action on_request(void *i, gw_handle r) { (void)i; (void)r; return GW_CONTINUE; }
static const gw_plugin_descriptor descriptor = {
    .magic = GW_PLUGIN_MAGIC, .struct_size = sizeof(gw_plugin_descriptor),
    .abi_major = GW_PLUGIN_ABI_MAJOR, .abi_minor = GW_PLUGIN_ABI_MINOR,
    .name = "noop", .version = "1.0.0", .create = create, .destroy = destroy, .on_request_headers = on_request,
};
const gw_plugin_descriptor *gw_plugin_entry_v1(const gw_host_api *h) { (void)h; return &descriptor; }
