/// The simplest kind of plugin: look at each request, decide. An authorization plugin is one of these.
///
///     final class MyAuthz: GatewayRequestPlugin {
///         init(config: PluginConfig) throws { ... }
///         func onRequest(_ request: GatewayRequest) -> Decision { ... }
///     }
///
///     @_cdecl("gw_plugin_entry_v1")
///     public func entry(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
///         GatewayPluginExport.entry(host, MyAuthz.self, name: "my_authz", version: "1.0.0")
///     }
///
/// `onRequest` runs on the gateway's event loops, concurrently for different connections: keep the instance
/// read-only after `init` (or protect what changes), and never block.
public protocol GatewayRequestPlugin: AnyObject {
    /// Called once per chain entry (at start-up and on every reload); throw `PluginConfigError` to refuse it.
    init(config: PluginConfig) throws
    func onRequest(_ request: GatewayRequest) -> Decision
}

/// What a request plugin decided.
public enum Decision: Sendable, Equatable {
    /// Let the request go on along the chain (and to the backend).
    case proceed
    /// Answer the request now; the chain stops and the backend never sees it.
    case respond(status: Int, headers: [Header] = [], body: String = "")

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// A JSON answer: `respond` with `content-type: application/json`.
    public static func json(status: Int, _ body: String) -> Decision {
        .respond(status: status, headers: [Header("content-type", "application/json")], body: body)
    }
}

/// A chain entry's config, with typed decoding whose errors name the key path.
public struct PluginConfig: Sendable {
    /// The JSON text the host passed ("{}" when the entry has no config).
    public let json: String
    /// The instance's tag, for `PluginHost.log`.
    public let tag: UInt64

    public init(json: String, tag: UInt64) {
        self.json = json
        self.tag = tag
    }
}

/// Runs a `GatewayRequestPlugin` behind the general `GatewayPlugin` interface.
final class RequestPluginAdapter<P: GatewayRequestPlugin>: GatewayPlugin {
    let plugin: P

    init(tag: UInt64, config: String) throws {
        plugin = try P(config: PluginConfig(json: config, tag: tag))
    }

    func onRequestHeaders(_ request: GatewayRequest) -> gw_action {
        switch plugin.onRequest(request) {
        case .proceed:
            return GW_CONTINUE
        case .respond(let status, let headers, let body):
            let status = request.respond(status: status, headers: headers.map { ($0.name, $0.value) }, body: body)
            // An invalid answer (bad status or header) is a plugin error: on_error decides what the client gets.
            return status == GW_OK ? GW_STOP : GW_FAILED
        }
    }
}

extension GatewayPluginExport {
    /// The export of a `GatewayRequestPlugin`: only on_request_headers is wired.
    public static func entry<P: GatewayRequestPlugin>(
        _ host: UnsafePointer<gw_host_api>?, _ type: P.Type, name: String, version: String, flags: UInt32 = 0,
        abiMinor: UInt16 = UInt16(GW_PLUGIN_ABI_MINOR)
    ) -> UnsafePointer<gw_plugin_descriptor>? {
        entry(host, RequestPluginAdapter<P>.self, name: name, version: version, hooks: [.requestHeaders], flags: flags, abiMinor: abiMinor)
    }
}
