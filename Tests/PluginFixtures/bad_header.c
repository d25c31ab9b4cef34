/* Tries to set a header whose value carries CR LF (header injection); returns the host's status code. */
#include "fixture_common.h"
static gw_action inject(void *instance, gw_handle request) {
    (void)instance;
    gw_str name = {"x-injected", 10};
    gw_str value = {"a\r\nx-evil: 1", 12};
    gw_status status = host->set_header(request, name, value);
    if (status != GW_OK) return (gw_action)status;
    return GW_CONTINUE;
}
FIXTURE_DESCRIPTOR("bad_header");
FIXTURE_ENTRY(descriptor.on_request_headers = inject)
