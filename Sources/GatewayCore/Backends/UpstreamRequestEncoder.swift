import NIOCore
import NIOHTTP1

/// Serializes what the gateway sends a backend, byte for byte as NIO's `HTTPRequestEncoder` (default
/// configuration) does: the same Content-Length / Transfer-Encoding decisions, the same chunk framing.
/// The difference is how the head is written: its size is summed first and every piece copied into one
/// buffer reserved once (`HTTPHeadWriter`). NIO's writer makes four checked `ByteBuffer` writes per header
/// (capacity, uniqueness and exclusivity checks each time), ~12k instructions for a head that carries a
/// client certificate. `UpstreamRequestEncoderTests` compares the two encoders' bytes.
package final class UpstreamRequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    package typealias OutboundIn = HTTPClientRequestPart
    package typealias OutboundOut = IOData

    private var isChunked = false

    package init() {}

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            isChunked = Self.frame(&head) == .chunked
            var buffer = context.channel.allocator.buffer(capacity: 0)
            HTTPHeadWriter.write(head, into: &buffer)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            ChunkedFraming.writeBody(part, chunked: isChunked, context: context, promise: promise)
        case .end(let trailers):
            ChunkedFraming.writeEnd(trailers, chunked: isChunked, context: context, promise: promise)
        }
    }

    enum Framing { case chunked, contentLength, neither }

    /// NIO's `correctlyFrameTransportHeaders` for requests: TRACE has no body; POST, PUT and PATCH have one
    /// (chunked unless a Content-Length is given); other methods keep what the head says.
    static func frame(_ head: inout HTTPRequestHead) -> Framing {
        let http11 = head.version.major == 1 && head.version.minor >= 1
        switch head.method {
        case .TRACE:
            head.headers.remove(name: "content-length")
            head.headers.remove(name: "transfer-encoding")
            return .neither
        case .POST, .PUT, .PATCH:
            if head.headers.contains(name: "content-length") {
                head.headers.remove(name: "transfer-encoding")
                return .contentLength
            }
            guard http11 else { return .neither }
            head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
            return .chunked
        default:
            if head.headers.contains(name: "content-length") {
                head.headers.remove(name: "transfer-encoding")
                return .contentLength
            }
            guard http11 else { return .neither }
            return head.headers["transfer-encoding"].first == "chunked" ? .chunked : .neither
        }
    }
}
