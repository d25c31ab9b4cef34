/* Rejects any config that lacks "required_key". */
#include "fixture_common.h"
static int32_t picky_create(const gw_host_api *h, const gw_create_args *args, void **instance, char *error, size_t cap) {
    (void)h;
    if (args->config_json.len == 0 || !memmem(args->config_json.ptr, args->config_json.len, "\"required_key\"", 14)) {
        snprintf(error, cap, "config must contain 'required_key' (got %.*s)", (int)args->config_json.len, args->config_json.ptr);
        return 1;
    }
    *instance = 0;
    return 0;
}
FIXTURE_DESCRIPTOR("config_reject");
FIXTURE_ENTRY(descriptor.create = picky_create)
