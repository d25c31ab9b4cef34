import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The admin listener: plain HTTP/1.1 on its own socket, answered by `AdminEndpoints`, on its own thread:
/// no plugin hook runs there, so a plugin that stalls the proxy's event loops (a hook that blocks, an audit
/// queue waiting for a slow disk) cannot stall `/healthz`, `/readyz` or `/metrics`.
package final class AdminServer: Sendable {
    private let endpoints: AdminEndpoints
    private let group: MultiThreadedEventLoopGroup
    private let logger: Logger
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)

    package init(server: GatewayServer, logger: Logger) {
        self.endpoints = AdminEndpoints(server: server)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        self.logger = logger
    }

    package var localAddress: SocketAddress? { bound.withLockedValue { $0?.localAddress } }

    package func start(address: String) async throws {
        guard let (host, port) = RuntimeCompiler.splitHostPort(address), let socketAddress = try? SocketAddress(ipAddress: host, port: port) else {
            try? await group.shutdownGracefully()
            throw GatewayError(.bindFailed, "admin: '\(address)' is not an IP address and port")
        }
        let endpoints = self.endpoints
        let hostName = AdminRequestGuard.systemHostName()
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        let guardian = AdminRequestGuard(port: channel.localAddress?.port, boundIP: channel.localAddress?.ipAddress, hostName: hostName)
                        try channel.pipeline.syncOperations.addHandler(AdminHandler(endpoints: endpoints, guard: guardian))
                    }
                }
                .bind(to: socketAddress).get()
            bound.withLockedValue { $0 = channel }
        } catch {
            try? await group.shutdownGracefully()
            throw GatewayError.bindFailed("admin", address: socketAddress, error: error)
        }
        logger.info("admin listening", metadata: ["address": "\(localAddress.map { "\($0)" } ?? "?")"])
    }

    /// Closes the listener and ends its thread.
    package func stop() async {
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
    private var head: HTTPRequestHead?

    package init(endpoints: AdminEndpoints, guard requestGuard: AdminRequestGuard) {
        self.endpoints = endpoints
        self.requestGuard = requestGuard
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
            if let refusal = requestGuard.refusal(for: head) {
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

    private func write(_ response: AdminEndpoints.Response, head: HTTPRequestHead, context: ChannelHandlerContext) {
        var headers = HTTPHeaders([("content-type", response.contentType), ("content-length", String(response.body.count))])
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
