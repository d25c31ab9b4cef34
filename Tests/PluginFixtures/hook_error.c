/* on_request_headers fails. */
#include "fixture_common.h"
static gw_action failing(void *instance, gw_handle request) { (void)instance; (void)request; return GW_FAILED; }
FIXTURE_DESCRIPTOR("hook_error");
FIXTURE_ENTRY(descriptor.on_request_headers = failing)
