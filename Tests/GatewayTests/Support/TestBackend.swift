import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A real HTTP/1.1 backend on 127.0.0.1:0 that records what reached it. Paths:
/// `/echo` returns the request body; `/bytes/N` returns N pattern bytes (`?chunked` without Content-Length);
/// `/slow` answers after 3 s; `/hop` answers with hop-by-hop headers; `/healthz` answers 200 or 503 as
/// `healthy` says (health checks are not recorded); anything else returns `ok <name>`.
final class TestBackend: @unchecked Sendable {
    struct Received: Sendable {
        var head: HTTPRequestHead
        var bodyBytes: Int
        var bodySHA256: String
    }

    let name: String
    private let received = NIOLockedValueBox<[Received]>([])
    /// Bytes of `/stream/N` responses handed to the socket so far (advances only while the peer reads).
    let streamed = NIOLockedValueBox<Int>(0)
    /// What `/healthz` answers: 200 when true, 503 when false.
    let healthy = NIOLockedValueBox<Bool>(true)
    /// How many `/healthz` probes arrived.
    let healthChecks = NIOLockedValueBox<Int>(0)
    /// The target of every request head that arrived, complete request or not (`requests` has only those
    /// that ended).
    let heads = NIOLockedValueBox<[String]>([])
    private var channel: Channel?
    private(set) var port = 0

    init(name: String = "backend") { self.name = name }

    var requests: [Received] { received.withLockedValue { $0 } }

    /// Serves HTTPS with `tls` when given (e.g. to test the gateway's backend TLS and client certificates), on
    /// `host:port` (any loopback address: DNS tests give two backends one port on 127.0.0.2 and 127.0.0.3).
    func start(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, tls: NIOSSLContext? = nil,
               host: String = "127.0.0.1", port: Int = 0) async throws {
        let recorder = received
        let name = self.name
        let streamed = self.streamed
        let healthy = self.healthy
        let healthChecks = self.healthChecks
        let heads = self.heads
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name, recorder: recorder, streamed: streamed, healthy: healthy, healthChecks: healthChecks, heads: heads))
                }
            }
            .bind(host: host, port: port).get()
        self.port = channel!.localAddress!.port!
    }

    func stop() async { try? await channel?.close() }

    /// Deterministic, non-repeating-looking bytes; built once and sliced (tests move hundreds of MB).
    private static let patternBlock: [UInt8] = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }

    static func pattern(_ count: Int) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count)
        var remaining = count
        while remaining > 0 {
            let n = min(remaining, patternBlock.count)
            _ = patternBlock.withUnsafeBytes { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            remaining -= n
        }
        return buffer
    }

    static let chunk = pattern(65536)

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        let recorder: NIOLockedValueBox<[Received]>
        let streamed: NIOLockedValueBox<Int>
        let healthy: NIOLockedValueBox<Bool>
        let healthChecks: NIOLockedValueBox<Int>
        var streamRemaining = 0
        var head: HTTPRequestHead?
        var body = ByteBuffer()
        var hasher = SHA256()

        let heads: NIOLockedValueBox<[String]>

        init(
            name: String, recorder: NIOLockedValueBox<[Received]>, streamed: NIOLockedValueBox<Int>, healthy: NIOLockedValueBox<Bool>,
            healthChecks: NIOLockedValueBox<Int>, heads: NIOLockedValueBox<[String]>
        ) {
            self.heads = heads
            self.name = name
            self.recorder = recorder
            self.streamed = streamed
            self.healthy = healthy
            self.healthChecks = healthChecks
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { pump(context: context) }
            context.fireChannelWritabilityChanged()
        }

        /// Writes the `/stream/N` body only while the socket accepts it, as a well-behaved server does.
        private func pump(context: ChannelHandlerContext) {
            let chunk = TestBackend.chunk
            while streamRemaining > 0, context.channel.isWritable {
                let size = min(chunk.readableBytes, streamRemaining)
                streamRemaining -= size
                streamed.withLockedValue { $0 += size }
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(chunk.getSlice(at: 0, length: size)!))), promise: nil)
                if streamRemaining == 0 { context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil) }
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                if head.uri != "/healthz" { heads.withLockedValue { $0.append(head.uri) } }
                body.clear()
                hasher = SHA256()
            case .body(var part):
                part.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                body.writeBuffer(&part)
            case .end:
                guard let head else { return }
                if head.uri == "/healthz" {
                    healthChecks.withLockedValue { $0 += 1 }
                    var headers = HTTPHeaders()
                    headers.add(name: "content-length", value: "0")
                    headers.add(name: "connection", value: "close")
                    let status: HTTPResponseStatus = healthy.withLockedValue { $0 } ? .ok : .serviceUnavailable
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                    context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                    return
                }
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                recorder.withLockedValue { $0.append(Received(head: head, bodyBytes: body.readableBytes, bodySHA256: digest)) }
                respond(context: context, head: head)
            }
        }

        private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
            let path = head.uri
            var headers = HTTPHeaders()
            headers.add(name: "x-backend", value: name)
            let fixed = headers
            if path.contains("/slow") {
                context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(3)) { self.send(context: context, head: head, headers: fixed, body: ByteBuffer(string: "slow")) }
                return
            }
            if path.hasPrefix("/stream/") {
                streamRemaining = Int(path.dropFirst(8)) ?? 0
                headers.add(name: "content-length", value: String(streamRemaining))
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                return pump(context: context)
            }
            if path.hasPrefix("/echo") {
                return send(context: context, head: head, headers: headers, body: body)
            }
            if path.hasPrefix("/bytes/") {
                let count = Int(path.dropFirst(7).prefix(while: { $0.isNumber })) ?? 0
                let payload = TestBackend.pattern(count)
                if path.contains("chunked") {
                    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
                    var remaining = payload
                    while let slice = remaining.readSlice(length: min(65536, remaining.readableBytes)), slice.readableBytes > 0 {
                        context.write(wrapOutboundOut(.body(.byteBuffer(slice))), promise: nil)
                    }
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                    return
                }
                return send(context: context, head: head, headers: headers, body: payload)
            }
            if path.hasPrefix("/hop") {
                headers.add(name: "connection", value: "x-private")
                headers.add(name: "x-private", value: "secret")
                headers.add(name: "keep-alive", value: "timeout=5")
                headers.add(name: "proxy-authenticate", value: "Basic")
                headers.add(name: "x-kept", value: "yes")
            }
            send(context: context, head: head, headers: headers, body: ByteBuffer(string: "ok \(name)"))
        }

        private func send(context: ChannelHandlerContext, head: HTTPRequestHead, headers: HTTPHeaders, body: ByteBuffer) {
            var headers = headers
            headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
