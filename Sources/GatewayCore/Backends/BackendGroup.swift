import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A compiled backend server group: its servers, how to pick one, and how to connect (HTTP or HTTPS).
package final class BackendGroup: Sendable {
    package let name: String
    package let servers: [BackendServer]
    package let balancer: LoadBalancer
    package let tlsContext: NIOSSLContext?
    package let serverName: String?
    package let connectTimeout: TimeAmount
    package let responseTimeout: TimeAmount
    package let healthCheck: HealthCheckConfig?

    package init(name: String, servers: [BackendServer], balance: BalanceStrategy, tlsContext: NIOSSLContext?, serverName: String?,
         connectTimeout: TimeAmount, responseTimeout: TimeAmount, healthCheck: HealthCheckConfig? = nil) {
        self.name = name
        self.servers = servers
        self.balancer = LoadBalancer(strategy: balance, servers: servers)
        self.tlsContext = tlsContext
        self.serverName = serverName
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.healthCheck = healthCheck
    }

    /// SNI carries names only; an IP literal host is verified against the certificate's IP SANs instead.
    package func sniName(for server: BackendServer) -> String? {
        serverName ?? ((try? SocketAddress(ipAddress: server.host, port: 0)) == nil ? server.host : nil)
    }

    /// Opens a new connection to `server` on `eventLoop` (the client's loop).
    /// Call it on `eventLoop`: the connection handler is bound to that loop, where its future completes.
    package func connect(to server: BackendServer, on eventLoop: any EventLoop) -> EventLoopFuture<NIOLoopBound<BackendConnection>> {
        let connection = NIOLoopBound(BackendConnection(server: server), eventLoop: eventLoop)
        let tlsContext = self.tlsContext
        let sniName = self.sniName(for: server)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            // Level IPPROTO_TCP (NIO's default for ClientBootstrap too, stated here so it cannot silently go).
            // A failure fails the connect, which is logged and counted as a backend connect error.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sniName))
                    }
                    // NIO's client handlers, with the gateway's encoder (the same bytes, the head written in one
                    // pass) and without the outbound header validator (a pass over every header of every
                    // request): each header that leaves was parsed by NIO's decoder from the client's request,
                    // checked by the plugin host (`HeaderValidation`) when a plugin set it, or written by the
                    // gateway itself. The decoder stays after the encoder: it watches the request parts go by
                    // to know which responses have no body (HEAD).
                    try sync.addHandler(UpstreamRequestEncoder())
                    try sync.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    try sync.addHandler(connection.value)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        return bootstrap.connect(host: server.host, port: server.port).map { _ in connection }
    }

    package func shutdown() {
        for server in servers { server.pool.closeAll() }
    }
}
