import NIOCore
import NIOHTTP1

/// How the gateway's encoders write a body part and the end of a message, as NIO's encoders do: with
/// chunked framing a non-empty part is `size CRLF data CRLF` (the size line and the CRLF share one buffer)
/// and the end is `0 CRLF` plus trailers or CRLF; without it parts pass as they are and the end writes
/// nothing (an empty write only when a promise must complete in order).
enum ChunkedFraming {
    static func writeBody(_ part: IOData, chunked: Bool, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        guard chunked, part.readableBytes > 0 else {
            // An empty chunk would end a chunked body: it is passed on as an empty write, in order.
            context.write(NIOAny(part), promise: promise)
            return
        }
        var sizeLine = context.channel.allocator.buffer(capacity: 20)
        HTTPHeadWriter.writeHex(part.readableBytes, into: &sizeLine)
        sizeLine.writeStaticString("\r\n")
        context.write(NIOAny(IOData.byteBuffer(sizeLine)), promise: nil)
        context.write(NIOAny(part), promise: nil)
        // The size line's CRLF again (a slice of the same storage); it carries the promise: the writes
        // complete in order, so it completes once the whole chunk is written (or fails with it).
        sizeLine.moveReaderIndex(forwardBy: sizeLine.readableBytes - 2)
        context.write(NIOAny(IOData.byteBuffer(sizeLine)), promise: promise)
    }

    /// Appends a body part to `buffer`, as one chunk when `chunked` (the part is not empty then).
    static func append(_ part: ByteBuffer, chunked: Bool, to buffer: inout ByteBuffer) {
        if chunked {
            HTTPHeadWriter.writeHex(part.readableBytes, into: &buffer)
            buffer.writeStaticString("\r\n")
        }
        var part = part
        buffer.writeBuffer(&part)
        if chunked { buffer.writeStaticString("\r\n") }
    }

    /// The length of a chunk's size line for `size` bytes of data: its hex digits and CRLF.
    static func sizeLineBytes(_ size: Int) -> Int {
        (Int.bitWidth - size.leadingZeroBitCount + 3) / 4 + 2
    }

    /// Appends the end of a chunked body (the last chunk, then the trailers or CRLF).
    static func appendEnd(_ trailers: HTTPHeaders?, to buffer: inout ByteBuffer) {
        buffer.writeStaticString("0\r\n")
        if let trailers { HTTPHeadWriter.write(trailers, into: &buffer) } else { buffer.writeStaticString("\r\n") }
    }

    static func writeEnd(_ trailers: HTTPHeaders?, chunked: Bool, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if chunked {
            var buffer = context.channel.allocator.buffer(capacity: trailers == nil ? 5 : 256)
            appendEnd(trailers, to: &buffer)
            context.write(NIOAny(IOData.byteBuffer(buffer)), promise: promise)
        } else if let promise {
            // Nothing to write, but the promise must complete in order with the writes before it.
            context.write(NIOAny(IOData.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
        }
    }
}
