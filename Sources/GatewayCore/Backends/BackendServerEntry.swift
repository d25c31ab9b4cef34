import NIOCore

/// One configured `servers[]` entry of a backend group: an IP address (one server) or a host name (as many
/// servers as it has addresses).
package struct BackendServerEntry: Sendable {
    /// As configured: `10.0.1.10:8000`, `[::1]:8000`, `api.internal:8000`.
    package var address: String
    package var host: String
    package var port: Int
    package var weight: Int
    /// The parsed address of an IP entry; nil for a host name, which discovery resolves.
    package var ipAddress: SocketAddress?

    package var isHostName: Bool { ipAddress == nil }

    package init(address: String, host: String, port: Int, weight: Int, ipAddress: SocketAddress?) {
        self.address = address
        self.host = host
        self.port = port
        self.weight = weight
        self.ipAddress = ipAddress
    }
}
