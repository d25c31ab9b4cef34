import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The demo's backend: answers every request with the request line and the headers it received, so that a
/// curl through the gateway shows exactly what a backend sees.
public final class EchoBackend: Sendable {
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)
    private let group: any EventLoopGroup

    public init(group: any EventLoopGroup) { self.group = group }

    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> SocketAddress {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler())
                }
            }
            .bind(host: host, port: port).get()
        bound.withLockedValue { $0 = channel }
        return channel.localAddress!
    }

    public func stop() async {
        try? await bound.withLockedValue({ $0 })?.close()
    }

    private final class EchoHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        private var head: HTTPRequestHead?
        private var bodyBytes = 0

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                bodyBytes = 0
            case .body(let body):
                bodyBytes += body.readableBytes
            case .end:
                guard let head else { return }
                var text = "backend received: \(head.method) \(head.uri) \(head.version)\n"
                for (name, value) in head.headers { text += "\(name): \(value)\n" }
                text += "(request body: \(bodyBytes) bytes)\n"
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: "text/plain; charset=utf-8")
                headers.add(name: "content-length", value: String(text.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
