import GatewayPluginKit

@_cdecl("gw_plugin_entry_v1")
public func gw_plugin_entry_v1(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
    GatewayPluginExport.entry(host, AuditLog.self, name: "audit", version: "1.0.0", hooks: [.connection, .requestHeaders, .complete, .reopen])
}
