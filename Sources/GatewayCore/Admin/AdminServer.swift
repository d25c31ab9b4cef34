import Atomics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The admin listener: plain HTTP/1.1 on its own socket, answered by `AdminEndpoints`, on its own thread:
/// no plugin hook runs there, so a plugin that stalls the proxy's event loops (a hook that blocks, an audit
/// queue waiting for a slow disk) cannot stall `/healthz`, `/readyz` or `/metrics`.
package final class AdminServer: Sendable {
    private let endpoints: AdminEndpoints
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)
    private let server: GatewayServer
    private let series = ConsoleSeries()
    private let sampler = NIOLockedValueBox<RepeatedTask?>(nil)
    /// Whether the running listener requires client certificates (fixed at start: `admin.tls` changes at a restart).
    private let startedWithMutualTLS = NIOLockedValueBox(false)
    private let connections = ManagedAtomic(0)

    /// Connections the admin listener holds at once; more are closed at accept.
    package static let maxConnections = 128
    /// A connection that sends and receives nothing this long (a TLS handshake included) is closed.
    package static let idleTimeout = TimeAmount.seconds(30)

    /// Seconds between two samples of the console's charts.
    package static let sampleInterval = 5

    package init(server: GatewayServer, logger: Logger) {
        self.server = server
        self.endpoints = AdminEndpoints(server: server, series: series)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.logger = logger
    }

    package var localAddress: SocketAddress? { bound.withLockedValue { $0?.localAddress } }

    /// Binds the listener (with `tls`, HTTPS: mutual TLS when the context requires a client certificate) and
    /// starts sampling the console's charts.
    package func start(address: String, tls: NIOSSLContext? = nil) async throws {
        guard let (host, port) = RuntimeCompiler.splitHostPort(address), let socketAddress = try? SocketAddress(ipAddress: host, port: port) else {
            try? await group.shutdownGracefully()
            throw GatewayError(.bindFailed, "admin: '\(address)' is not an IP address and port")
        }
        let endpoints = self.endpoints
        let hostName = AdminRequestGuard.systemHostName()
        let access = server.runtime.admin
        startedWithMutualTLS.withLockedValue { $0 = tls != nil && access?.mutualTLS == true }
        let connections = self.connections
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    // Bounded: a listener meant to face a network must not be exhausted by held connections.
                    guard connections.loadThenWrappingIncrement(ordering: .relaxed) < Self.maxConnections else {
                        connections.wrappingDecrement(ordering: .relaxed)
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in connections.wrappingDecrement(ordering: .relaxed) }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: Self.idleTimeout))
                        try channel.pipeline.syncOperations.addHandler(AdminIdleCloser())
                        if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        let guardian = AdminRequestGuard(port: channel.localAddress?.port, boundIP: channel.localAddress?.ipAddress, hostName: hostName)
                        try channel.pipeline.syncOperations.addHandler(AdminHandler(endpoints: endpoints, guard: guardian, access: access))
                    }
                }
                .bind(to: socketAddress).get()
            bound.withLockedValue { $0 = channel }
        } catch {
            try? await group.shutdownGracefully()
            throw GatewayError.bindFailed("admin", address: socketAddress, error: error)
        }
        logger.info("admin listening", metadata: [
            "address": "\(localAddress.map { "\($0)" } ?? "?")", "tls": "\(tls == nil ? "off" : access?.mutualTLS == true ? "mutual" : "on")",
            "token": "\(access?.token == nil ? "off" : "on")",
        ])
        let (server, series) = (self.server, self.series)
        series.sample(exposition: Self.registryText(server))
        let task = group.next().scheduleRepeatedTask(initialDelay: .seconds(Int64(Self.sampleInterval)), delay: .seconds(Int64(Self.sampleInterval))) { _ in
            series.sample(exposition: Self.registryText(server))
            server.runtime.metrics.console.trim()
        }
        sampler.withLockedValue { $0 = task }
    }

    /// Why a reloaded configuration with admin protection `next` cannot govern this running listener, or nil.
    /// The socket and its TLS context stay as they started (admin.address and admin.tls change at a restart),
    /// so a listener bound off loopback without mutual TLS keeps needing a token: a reload may change it, not
    /// remove it.
    package func reloadProblem(_ next: AdminAccess?) -> String? {
        guard let next, next.token == nil, let bound = localAddress, let ip = bound.ipAddress, !RuntimeCompiler.isLoopback(ip),
              !startedWithMutualTLS.withLockedValue({ $0 })
        else { return nil }
        return "admin.token_file: the running admin listener on \(bound.text) has no mutual TLS, and admin.address and admin.tls "
            + "change only at a restart: a reload cannot remove its token"
    }

    private static func registryText(_ server: GatewayServer) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(32 * 1024)
        server.runtime.metrics.registry.emit(into: &buffer)
        return buffer
    }

    /// Closes the listener and ends its thread.
    package func stop() async {
        sampler.withLockedValue { $0?.cancel() }
        try? await bound.withLockedValue({ $0 })?.close()
        try? await group.shutdownGracefully()
    }
}

/// Reads one request at a time and writes what `AdminEndpoints` answers. Request bodies are ignored.
package final class AdminHandler: ChannelInboundHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: AdminEndpoints
    private let requestGuard: AdminRequestGuard
    /// The protection the listener started with: used when a reload removed `admin` (the token of the
    /// current configuration is used otherwise, so a new token_file takes effect at reload).
    private let startAccess: AdminAccess?
    private var head: HTTPRequestHead?

    package init(endpoints: AdminEndpoints, guard requestGuard: AdminRequestGuard, access: AdminAccess? = nil) {
        self.endpoints = endpoints
        self.requestGuard = requestGuard
        self.startAccess = access
    }

    /// 401 when the listener has a token and `head` does not carry it (probes and the console's page need none).
    private func authorization(_ head: HTTPRequestHead) -> AdminEndpoints.Response? {
        let access = endpoints.server.runtime.admin ?? startAccess
        guard let access, access.token != nil, !AdminEndpoints.isPublic(AdminEndpoints.path(of: head.uri)) else { return nil }
        let given = head.headers["authorization"]
        guard given.count == 1, access.authorizes(given[0]) else {
            var refusal = AdminEndpoints.Response.text(.unauthorized, "this admin listener needs Authorization: Bearer <the token in admin.token_file>\n")
            refusal.headers = [("www-authenticate", "Bearer realm=\"mtls-gateway admin\"")]
            return refusal
        }
        return nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            let endpoints = self.endpoints
            if let refusal = requestGuard.refusal(for: head) ?? authorization(head) {
                write(refusal, head: head, context: context)
            } else if let immediate = endpoints.answer(method: head.method, uri: head.uri) {
                write(immediate, head: head, context: context)
            } else {
                // POST /reload and /connections/close run off the event loop; the answer is written back on it.
                let handler = NIOLoopBound(self, eventLoop: loop)
                let answered = loop.makePromise(of: AdminEndpoints.Response.self)
                answered.completeWithTask { await endpoints.answerAsynchronously(method: head.method, uri: head.uri) }
                answered.futureResult.whenSuccess { response in handler.value.write(response, head: head, context: bound.value) }
            }
        }
    }

    /// On every answer: nothing is cached, sniffed, framed or sent on as a referrer.
    private static let securityHeaders = [
        ("cache-control", "no-store"), ("x-content-type-options", "nosniff"), ("x-frame-options", "DENY"), ("referrer-policy", "no-referrer"),
    ]

    private func write(_ response: AdminEndpoints.Response, head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("content-type", response.contentType), ("content-length", String(response.body.count))])
        headers.add(contentsOf: Self.securityHeaders)
        headers.add(contentsOf: response.headers)
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}

/// Closes an admin connection idle for `AdminServer.idleTimeout` (in the handshake or between requests).
final class AdminIdleCloser: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
