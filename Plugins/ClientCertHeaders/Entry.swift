import GatewayPluginKit

@_cdecl("gw_plugin_entry_v1")
public func gw_plugin_entry_v1(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
    GatewayPluginExport.entry(host, ClientCertHeaders.self, name: "client_cert_headers", version: "1.0.0", hooks: [.requestHeaders])
}
