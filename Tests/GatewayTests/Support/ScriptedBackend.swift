import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A backend at the byte level, for answers no well-behaved HTTP library would send: for every request head it
/// reads (requests without a body), it writes `response` as raw bytes and keeps the connection open.
final class ScriptedBackend: @unchecked Sendable {
    let response: String
    /// Close the connection right after writing the response (a backend that dies mid-body).
    let closeAfterResponse: Bool
    /// Connections accepted and request heads read so far.
    let counts = NIOLockedValueBox<(connections: Int, requests: Int)>((0, 0))
    private var channel: Channel?
    private(set) var port = 0

    init(response: String, closeAfterResponse: Bool = false) {
        self.response = response
        self.closeAfterResponse = closeAfterResponse
    }

    private final class Answerer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let response: String
        let close: Bool
        let counts: NIOLockedValueBox<(connections: Int, requests: Int)>
        private var pending: [UInt8] = []

        init(response: String, close: Bool, counts: NIOLockedValueBox<(connections: Int, requests: Int)>) {
            self.response = response
            self.close = close
            self.counts = counts
        }

        func channelActive(context: ChannelHandlerContext) {
            counts.withLockedValue { $0.connections += 1 }
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            pending += buffer.readBytes(length: buffer.readableBytes) ?? []
            let terminator: [UInt8] = Array("\r\n\r\n".utf8)
            while let end = pending.indices.dropLast(3).first(where: { pending[$0..<($0 + 4)].elementsEqual(terminator) }) {
                pending.removeFirst(end + 4)
                counts.withLockedValue { $0.requests += 1 }
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: response)), promise: nil)
                if close { context.close(promise: nil) }
            }
        }
    }

    func start() async throws {
        let response = self.response
        let close = self.closeAfterResponse
        let counts = self.counts
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Answerer(response: response, close: close, counts: counts))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel!.localAddress!.port!
    }

    func stop() async { try? await channel?.close() }
}
