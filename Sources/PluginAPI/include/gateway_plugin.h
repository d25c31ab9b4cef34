/* Reserved: the plugin ABI header is defined by the PluginAPI issue. */
#ifndef GATEWAY_PLUGIN_H
#define GATEWAY_PLUGIN_H
#endif
