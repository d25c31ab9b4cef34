import NIOCore
import NIOHTTP1

/// Serializes what the gateway sends a client, byte for byte as NIO's `HTTPResponseEncoder` (default
/// configuration) does: framing from the status (no body for 1xx, 204, 304), a response to HEAD or CONNECT
/// without a body, chunked framing for a body of unknown length on HTTP/1.1. The head is written in one
/// pass (`HTTPHeadWriter`) instead of four checked `ByteBuffer` writes per header.
///
/// NIO's encoder learns each request's method from its paired decoder through an internal call; here the
/// proxy handler says which method a response answers (`respondingTo(_:)`) just before writing its head.
/// A head written without that (the protocol error handler's 400) is framed from its status alone, as NIO's
/// encoder does when used on its own. `DownstreamResponseEncoderTests` compares the bytes with NIO's.
package final class DownstreamResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = IOData

    private var isChunked = false
    /// The response being written answers HEAD or CONNECT: its body and end-of-body marker are not written.
    private var suppressResponseBody = false
    private var nextMethod: HTTPMethod?

    package init() {}

    /// The method of the request the next final response head answers.
    package func respondingTo(_ method: HTTPMethod) {
        nextMethod = method
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let code = head.status.code
            let informational = (100..<200).contains(code) && code != 101
            var respondingToConnect = false
            if !informational, let method = nextMethod {
                nextMethod = nil
                suppressResponseBody = method == .HEAD || method == .CONNECT
                respondingToConnect = method == .CONNECT
            }
            let chunked = Self.frame(&head, hasBody: !respondingToConnect && head.status.mayHaveResponseBody)
            isChunked = suppressResponseBody ? false : chunked
            var buffer = context.channel.allocator.buffer(capacity: 0)
            HTTPHeadWriter.write(head, into: &buffer)
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        case .body(let part):
            if suppressResponseBody {
                promise?.fail(BodyNotAllowed())
                return
            }
            ChunkedFraming.writeBody(part, chunked: isChunked, context: context, promise: promise)
        case .end(let trailers):
            suppressResponseBody = false
            ChunkedFraming.writeEnd(trailers, chunked: isChunked, context: context, promise: promise)
        }
    }

    /// A body part written for a response to HEAD or CONNECT (NIO's encoder fails it the same way).
    package struct BodyNotAllowed: Error {}

    /// NIO's `correctlyFrameTransportHeaders` for responses; true when the body goes chunked.
    static func frame(_ head: inout HTTPResponseHead, hasBody: Bool) -> Bool {
        guard hasBody else {
            head.headers.removeIfPresent("content-length")
            head.headers.removeIfPresent("transfer-encoding")
            return false
        }
        if head.headers.contains(name: "content-length") {
            head.headers.removeIfPresent("transfer-encoding")
            return false
        }
        guard head.version.major == 1 && head.version.minor >= 1 else { return false }
        head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        return true
    }
}
