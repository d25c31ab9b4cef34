/* SwiftPM builds a C target from at least one source file: this one only makes `PluginAPI` (the header in
 * sdk/include) a module that Swift code can import. C plugins need nothing but the header. */
#include "gateway_plugin.h"
