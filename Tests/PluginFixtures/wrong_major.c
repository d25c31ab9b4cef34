#include "fixture_common.h"
FIXTURE_DESCRIPTOR("wrong_major");
FIXTURE_ENTRY(descriptor.abi_major = 2)
