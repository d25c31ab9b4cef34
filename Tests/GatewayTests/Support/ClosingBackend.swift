import NIOCore
import NIOPosix

/// A broken backend: accepts a connection, waits for the request, and closes without answering.
final class ClosingBackend: @unchecked Sendable {
    private var channel: Channel?
    private(set) var port = 0

    private final class Closer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.writeAndFlush(NIOAny(ByteBuffer(string: "NOT HTTP AT ALL\r\n\r\n"))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func start() async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Closer()) } }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel!.localAddress!.port!
    }

    func stop() async { try? await channel?.close() }
}
