import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A plain-http server on loopback that publishes CRLs (or whatever bytes a test sets) at paths, counts the
/// requests per path, and can misbehave: answer with a status, hang without answering, or be stopped.
final class CRLServer: @unchecked Sendable {
    enum Answer: Sendable {
        case body([UInt8])
        case status(Int)
        /// Reads the request and never answers.
        case hang
    }

    private let answers = NIOLockedValueBox<[String: Answer]>([:])
    private let counts = NIOLockedValueBox<[String: Int]>([:])
    private var channel: Channel?
    private(set) var port = 0

    func set(_ path: String, _ answer: Answer) { answers.withLockedValue { $0[path] = answer } }
    func requests(_ path: String) -> Int { counts.withLockedValue { $0[path] ?? 0 } }
    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: CRLServer
        private var path = "/"

        init(server: CRLServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                path = head.uri
            case .body:
                break
            case .end:
                server.counts.withLockedValue { $0[path, default: 0] += 1 }
                let answer = server.answers.withLockedValue { $0[path] } ?? .status(404)
                var headers = HTTPHeaders()
                let body: [UInt8]
                let status: HTTPResponseStatus
                switch answer {
                case .hang:
                    return
                case .status(let code):
                    status = HTTPResponseStatus(statusCode: code)
                    body = Array("status \(code)\n".utf8)
                case .body(let bytes):
                    status = .ok
                    body = bytes
                    headers.add(name: "Content-Type", value: "application/pkix-crl")
                }
                headers.add(name: "Content-Length", value: "\(body.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }

    func start(port: Int = 0) async throws {
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        self.port = channel?.localAddress?.port ?? 0
    }

    func stop() async { try? await channel?.close() }
}
