#include "fixture_common.h"
FIXTURE_DESCRIPTOR("missing_hook");
FIXTURE_ENTRY(descriptor.destroy = 0)
