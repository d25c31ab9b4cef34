#include "fixture_common.h"
FIXTURE_DESCRIPTOR("bad_magic");
FIXTURE_ENTRY(descriptor.magic = 0xDEADBEEF)
