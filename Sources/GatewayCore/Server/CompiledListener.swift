import NIOCore

/// A listener as the hot path uses it: bound address, TLS state, router and limits, all resolved at start-up.
package final class CompiledListener: Sendable {
    package let name: String
    package let address: SocketAddress
    package let tls: ListenerTLS?
    package let router: Router
    package let limits: HTTPLimitsConfig
    package let plugins: PluginChain?
    /// The PROXY protocol header its connections start with (nil: none).
    package let proxyProtocol: ProxyProtocolPolicy?
    /// SO_REUSEPORT on the listening socket (`reuse_port`).
    package let reusePort: Bool
    /// WebSocket tunnelling: nil when `websocket.enabled` is false (Upgrade is then removed like any other).
    package let websocket: WebSocketConfig?
    /// HTTP/2 limits: set when the listener's `alpn` offers h2 (a connection that negotiates it is served by
    /// `HTTP2Connection`).
    package let http2: HTTP2Config?
    /// Shared by every generation of the listener with this name.
    package let metrics: ListenerMetrics

    package init(name: String, address: SocketAddress, tls: ListenerTLS?, router: Router, limits: HTTPLimitsConfig, plugins: PluginChain?, proxyProtocol: ProxyProtocolPolicy? = nil, reusePort: Bool = false, websocket: WebSocketConfig? = WebSocketConfig(), http2: HTTP2Config? = nil, metrics: ListenerMetrics) {
        self.name = name
        self.address = address
        self.tls = tls
        self.router = router
        self.limits = limits
        self.plugins = plugins
        self.proxyProtocol = proxyProtocol
        self.reusePort = reusePort
        self.websocket = websocket
        self.http2 = http2
        self.metrics = metrics
    }
}
