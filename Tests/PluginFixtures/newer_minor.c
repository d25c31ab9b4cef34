#include "fixture_common.h"
FIXTURE_DESCRIPTOR("newer_minor");
FIXTURE_ENTRY(descriptor.abi_minor = GW_PLUGIN_ABI_MINOR + 1)  /* as if built to require the next minor */
