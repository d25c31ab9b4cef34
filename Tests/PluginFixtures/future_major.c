/* Built for a future ABI major version: exports gw_plugin_entry_v2 only. */
#include "gateway_plugin.h"
const void *gw_plugin_entry_v2(const void *host) { (void)host; return 0; }
