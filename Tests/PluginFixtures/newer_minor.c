#include "fixture_common.h"
FIXTURE_DESCRIPTOR("newer_minor");
FIXTURE_ENTRY(descriptor.abi_minor = 99)
