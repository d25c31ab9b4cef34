/* Keeps a request handle past its hook and uses it in the next request: must get GW_ERR_STALE_HANDLE. */
#include "fixture_common.h"
static gw_handle saved;
static gw_action keep(void *instance, gw_handle request) {
    (void)instance;
    if (saved != 0) {
        gw_str out;
        gw_status status = host->get_attribute(saved, GW_ATTR_METHOD, 0, &out);
        char line[64];
        int n = snprintf(line, sizeof line, "stale handle status %d", (int)status);
        host->log(0, GW_LOG_WARNING, (gw_str){line, (size_t)n});
    }
    saved = request;
    return GW_CONTINUE;
}
FIXTURE_DESCRIPTOR("stale_handle");
FIXTURE_ENTRY(descriptor.on_request_headers = keep)
