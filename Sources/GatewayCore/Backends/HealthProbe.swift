import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One active health check request: connect to a server (with the backend's TLS settings), send
/// `GET path`, and report whether a 2xx or 3xx status line arrived within the timeout.
package enum HealthProbe {
    package struct Outcome: Sendable {
        package var healthy: Bool
        /// Why the probe failed (for the log), or the status on success.
        package var detail: String
    }

    package static func run(backend: BackendGroup, server: BackendServer, config: HealthCheckConfig, on eventLoop: any EventLoop) -> EventLoopFuture<Outcome> {
        let promise = eventLoop.makePromise(of: Outcome.self)
        let host = config.host ?? server.name
        let head = HTTPRequestHead(
            version: .http1_1, method: .GET, uri: config.path,
            headers: ["host": host, "user-agent": "mtls-gateway-health-check", "connection": "close"]
        )
        let tlsContext = backend.tlsContext
        let sniName = backend.sniName(for: server)
        let timeout = eventLoop.scheduleTask(in: config.timeout.timeAmount) {
            promise.succeed(Outcome(healthy: false, detail: "no answer within \(config.timeout)"))
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        ClientBootstrap(group: eventLoop)
            .connectTimeout(config.timeout.timeAmount)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext { try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sniName)) }
                    try sync.addHTTPClientHandlers()
                    try sync.addHandler(ProbeHandler(head: head, promise: promise))
                }
            }
            .connect(to: server.socketAddress)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                case .failure(let error):
                    promise.succeed(Outcome(healthy: false, detail: "connect failed: \(error)"))
                }
            }
        return promise.futureResult
    }

    /// Sends the probe when the connection is up and completes the promise with the first status line.
    private final class ProbeHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundOut = HTTPClientRequestPart

        let head: HTTPRequestHead
        let promise: EventLoopPromise<Outcome>

        init(head: HTTPRequestHead, promise: EventLoopPromise<Outcome>) {
            self.head = head
            self.promise = promise
        }

        func channelActive(context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let response) = unwrapInboundIn(data), response.status.code >= 200 else { return }
            let ok = (200..<400).contains(response.status.code)
            promise.succeed(Outcome(healthy: ok, detail: "status \(response.status.code)"))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.succeed(Outcome(healthy: false, detail: "\(error)"))
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.succeed(Outcome(healthy: false, detail: "connection closed before a response"))
        }
    }
}
