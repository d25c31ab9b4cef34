import NIOCore

/// A listener as the hot path uses it: bound address, TLS state, router and limits, all resolved at start-up.
final class CompiledListener: Sendable {
    let name: String
    let address: SocketAddress
    let tls: ListenerTLS?
    let router: Router
    let limits: HTTPLimitsConfig
    let plugins: PluginChain?
    /// Shared by every generation of the listener with this name.
    let metrics: ListenerMetrics

    init(name: String, address: SocketAddress, tls: ListenerTLS?, router: Router, limits: HTTPLimitsConfig, plugins: PluginChain?, metrics: ListenerMetrics) {
        self.name = name
        self.address = address
        self.tls = tls
        self.router = router
        self.limits = limits
        self.plugins = plugins
        self.metrics = metrics
    }
}
