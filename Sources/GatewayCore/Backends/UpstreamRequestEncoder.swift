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
            guard isChunked, part.readableBytes > 0 else {
                // An empty chunk would end a chunked body: it is passed on as an empty write, in order.
                context.write(wrapOutboundOut(part), promise: promise)
                return
            }
            var sizeLine = context.channel.allocator.buffer(capacity: 20)
            HTTPHeadWriter.writeHex(part.readableBytes, into: &sizeLine)
            sizeLine.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(sizeLine)), promise: nil)
            context.write(wrapOutboundOut(part), promise: nil)
            // The size line's CRLF again (a slice of the same storage); it carries the promise: the writes
            // complete in order, so it completes once the whole chunk is written (or fails with it).
            sizeLine.moveReaderIndex(forwardBy: sizeLine.readableBytes - 2)
            context.write(wrapOutboundOut(.byteBuffer(sizeLine)), promise: promise)
        case .end(let trailers):
            if isChunked {
                var buffer = context.channel.allocator.buffer(capacity: trailers == nil ? 5 : 256)
                buffer.writeStaticString("0\r\n")
                if let trailers { HTTPHeadWriter.write(trailers, into: &buffer) } else { buffer.writeStaticString("\r\n") }
                context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
            } else if let promise {
                // Nothing to write, but the promise must complete in order with the writes before it.
                context.write(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
            }
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
