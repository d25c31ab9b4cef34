import NIOCore
import NIOHTTP1

/// Serializes what the gateway sends a backend, byte for byte as NIO's `HTTPRequestEncoder` (default
/// configuration) does: the same Content-Length / Transfer-Encoding decisions, the same chunk framing.
/// Not a channel handler: `BackendConnection` calls it with the parts the proxy gives it, so a head (with the
/// headers plugins added as bytes) never travels the pipeline boxed in a `NIOAny`.
/// The difference is how the head is written: its size is summed first and every piece copied into one
/// buffer reserved once (`HTTPHeadWriter`). NIO's writer makes four checked `ByteBuffer` writes per header
/// (capacity, uniqueness and exclusivity checks each time), ~12k instructions for a head that carries a
/// client certificate. `UpstreamRequestEncoderTests` compares the two encoders' bytes.
package struct UpstreamRequestEncoder {
    private var isChunked = false

    package init() {}

    /// Writes `part` into `context` (the backend connection's, at the end of its pipeline) as bytes.
    package mutating func write(_ part: UpstreamRequestPart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch part {
        case .head(let upstream):
            let (buffer, framing) = Self.serialize(upstream, allocator: context.channel.allocator)
            isChunked = framing == .chunked
            context.write(NIOAny(IOData.byteBuffer(buffer)), promise: promise)
        case .serializedHead(let buffer, let chunked, _):
            isChunked = chunked
            context.write(NIOAny(IOData.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            ChunkedFraming.writeBody(part, chunked: isChunked, context: context, promise: promise)
        case .end(let trailers):
            ChunkedFraming.writeEnd(trailers, chunked: isChunked, context: context, promise: promise)
        }
    }

    package enum Framing { case chunked, contentLength, neither }

    /// The head's bytes as `write` sends them, and its body's framing.
    package static func serialize(_ upstream: UpstreamHead, allocator: ByteBufferAllocator) -> (ByteBuffer, Framing) {
        var upstream = upstream
        let framing = frame(&upstream)
        var buffer = allocator.buffer(capacity: 0)
        HTTPHeadWriter.write(upstream, into: &buffer)
        return (buffer, framing)
    }

    /// NIO's `correctlyFrameTransportHeaders` for requests: TRACE has no body; POST, PUT and PATCH have one
    /// (chunked unless a Content-Length is given); other methods keep what the head says. The framing fields
    /// are among the String fields: the added block never holds one (`ProxyHeaders.upstreamRequest` keeps a
    /// block only when it has none).
    static func frame(_ upstream: inout UpstreamHead) -> Framing {
        let http11 = upstream.head.version.major == 1 && upstream.head.version.minor >= 1
        switch upstream.head.method {
        case .TRACE:
            upstream.remove("content-length")
            upstream.remove("transfer-encoding")
            return .neither
        case .POST, .PUT, .PATCH:
            if upstream.head.headers.contains(name: "content-length") {
                upstream.remove("transfer-encoding")
                return .contentLength
            }
            guard http11 else { return .neither }
            upstream.remove("transfer-encoding")
            upstream.head.headers.add(name: "transfer-encoding", value: "chunked")
            return .chunked
        default:
            if upstream.head.headers.contains(name: "content-length") {
                upstream.remove("transfer-encoding")
                return .contentLength
            }
            guard http11 else { return .neither }
            return upstream.head.headers["transfer-encoding"].first == "chunked" ? .chunked : .neither
        }
    }
}

/// What the proxy writes to a backend connection: NIO's request parts, with the head as `UpstreamHead`.
package enum UpstreamRequestPart: Sendable {
    case head(UpstreamHead)
    /// A head already written as bytes (`ProxyHeaders.writeUpstreamRequest`): whether its body goes chunked,
    /// and whether it is a HEAD request (its response has no body).
    case serializedHead(ByteBuffer, chunked: Bool, isHEAD: Bool)
    case body(IOData)
    case end(HTTPHeaders?)

    package init(_ part: HTTPClientRequestPart) {
        switch part {
        case .head(let head): self = .head(UpstreamHead(head))
        case .body(let body): self = .body(body)
        case .end(let trailers): self = .end(trailers)
        }
    }
}
