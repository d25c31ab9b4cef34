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
///
/// A head written without a promise is held, and what follows it (body parts, chunk framing, the end) is
/// appended while the whole stays under one TLS record's worth (`coalescingLimit`): a small proxied response
/// (head, body, end) then leaves as one write, one `SSL_write` and one TLS record instead of two or three.
/// What is held goes on, in order, at the first part that does not fit, a part with a promise, a flush (the
/// end of an exchange is written and flushed) or a close: nothing is held across a flush. A chunk of a chunked body is
/// gathered the same way (size line, data, CRLF, and the next chunks or the end) when it fits; a larger one
/// goes on as its size line, its data uncopied, and its CRLF held.
package final class DownstreamResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = IOData

    private var isChunked = false
    /// The response being written answers HEAD or CONNECT: its body and end-of-body marker are not written.
    private var suppressResponseBody = false
    private var nextMethod: HTTPMethod?
    /// Bytes written to this handler and not yet passed on (see the type's comment).
    private var held: ByteBuffer?
    /// Set while the handler is in a pipeline: `writeForwarded` writes on it.
    private var context: ChannelHandlerContext?

    /// The most bytes gathered into one write: a TLS record's plaintext (RFC 8446 5.1), so coalescing never
    /// costs a record, and a copy of at most that much.
    package static let coalescingLimit = 16 * 1024

    package init() {}

    /// The method of the request the next final response head answers.
    package func respondingTo(_ method: HTTPMethod) {
        nextMethod = method
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head):
            let hasBody = startHead(head.status)
            let chunked = Self.frame(&head, hasBody: hasBody)
            isChunked = suppressResponseBody ? false : chunked
            var buffer = held ?? context.channel.allocator.buffer(capacity: 0)
            held = nil
            HTTPHeadWriter.write(head, into: &buffer)
            hold(buffer, context: context, promise: promise)
        case .body(let part):
            body(part, context: context, promise: promise)
        case .end(let trailers):
            end(trailers, context: context, promise: promise)
        }
    }

    /// A body part of the proxied response, written by the proxy handler straight to this handler: what
    /// `write` does with `.body`, without wrapping the part and a step through the pipeline for each.
    package func writeBody(_ bytes: ByteBuffer) {
        guard let context else { return }
        body(.byteBuffer(bytes), context: context, promise: nil)
    }

    /// Bytes of an open tunnel (after a 101), as they are: no framing, after whatever is held (the 101's head).
    package func writeTunnel(_ bytes: ByteBuffer) {
        guard let context else { return }
        passHeld(context: context)
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
    }

    /// The end of the proxied response and a flush, straight from the proxy handler (as `writeBody`).
    package func writeEndAndFlush() {
        guard let context else { return }
        end(nil, context: context, promise: nil)
        flush(context: context)
    }

    private func body(_ part: IOData, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if suppressResponseBody {
            promise?.fail(BodyNotAllowed())
            return
        }
        guard case .byteBuffer(let bytes) = part else {
            passHeld(context: context)
            ChunkedFraming.writeBody(part, chunked: isChunked, context: context, promise: promise)
            return
        }
        let chunked = isChunked && bytes.readableBytes > 0
        let size = bytes.readableBytes + (chunked ? ChunkedFraming.sizeLineBytes(bytes.readableBytes) + 2 : 0)
        if held != nil || chunked, (held?.readableBytes ?? 0) + size <= Self.coalescingLimit {
            // Gathered: after what is held, or a chunk's framing and data in one buffer (one copy of at
            // most a record's worth instead of three writes).
            var buffer = held ?? context.channel.allocator.buffer(capacity: size)
            held = nil
            ChunkedFraming.append(bytes, chunked: chunked, to: &buffer)
            hold(buffer, context: context, promise: promise)
        } else if chunked {
            // Too large to copy: what is held and the size line, the data as it is, and the CRLF held for
            // what follows (the next chunk or the end).
            var line = held ?? context.channel.allocator.buffer(capacity: 20)
            held = nil
            HTTPHeadWriter.writeHex(bytes.readableBytes, into: &line)
            line.writeStaticString("\r\n")
            context.write(wrapOutboundOut(.byteBuffer(line)), promise: nil)
            context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
            // The size line's CRLF again (a slice of the same storage, no allocation).
            line.moveReaderIndex(forwardBy: line.readableBytes - 2)
            hold(line, context: context, promise: promise)
        } else {
            passHeld(context: context)
            context.write(wrapOutboundOut(part), promise: promise)
        }
    }

    private func end(_ trailers: HTTPHeaders?, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        suppressResponseBody = false
        if var buffer = held {
            held = nil
            if isChunked { ChunkedFraming.appendEnd(trailers, to: &buffer) }
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        } else {
            ChunkedFraming.writeEnd(trailers, chunked: isChunked, context: context, promise: promise)
        }
    }

    /// Whether the next head (with `status`) may frame a body: not a response to CONNECT, nor a status without
    /// one. Reads the method of the request it answers (`respondingTo`) without taking it.
    private func mayFrameBody(_ status: HTTPResponseStatus) -> Bool {
        let informational = (100..<200).contains(status.code) && status.code != 101
        return !(!informational && (nextMethod?.isCONNECT ?? false)) && status.mayHaveResponseBody
    }

    /// `mayFrameBody`, and a final head takes the method: its body is not written when it answers HEAD or
    /// CONNECT (an interim head leaves the method for the final one).
    private func startHead(_ status: HTTPResponseStatus) -> Bool {
        let hasBody = mayFrameBody(status)
        let informational = (100..<200).contains(status.code) && status.code != 101
        if !informational, let method = nextMethod {
            nextMethod = nil
            suppressResponseBody = method.isHEAD || method.isCONNECT
        }
        return hasBody
    }

    /// NIO's rule: a body without a length goes chunked to an HTTP/1.1 (or later) client.
    private static func goesChunked(hasBody: Bool, hasContentLength: Bool, version: HTTPVersion) -> Bool {
        hasBody && !hasContentLength && version.major == 1 && version.minor >= 1
    }

    /// Writes a backend's response head from its bytes, as `write` would write `head.nioHead` for a client of
    /// `version` with `connection: close` added when `close` (`ProxyHeaders.downstreamResponse` without names
    /// to remove): the status line, the fields as they came, that field, and the framing NIO's encoder gives it
    /// (`transfer-encoding: chunked` after the others for a body of unknown length to an HTTP/1.1 client). No
    /// `String` and no `HTTPHeaders` on the way. False, with nothing written, when the bytes cannot be written as
    /// they are: a Content-Length to remove (a response without a body), hop-by-hop fields kept, or a version
    /// other than 1.0 and 1.1; the caller writes `nioHead` then.
    package func writeForwarded(_ head: BackendResponseHead, version: HTTPVersion, close: Bool) -> Bool {
        guard let context, head.withoutHopByHop, version.major == 1, version.minor <= 1 else { return false }
        guard mayFrameBody(head.status) || !head.hasContentLength else { return false }
        let chunked = Self.goesChunked(hasBody: startHead(head.status), hasContentLength: head.hasContentLength, version: version)
        isChunked = suppressResponseBody ? false : chunked
        // Room for the body of a small response too (one allocation for what `hold` gathers).
        var buffer = held ?? context.channel.allocator.buffer(capacity: head.fields.bytes.count + 256)
        held = nil
        HTTPHeadWriter.writeForwarded(head, minor: version.minor, close: close, chunked: chunked, into: &buffer)
        hold(buffer, context: context, promise: nil)
        return true
    }

    /// Passes on what is held and a zero-length write with `promise` after it, and flushes: the promise
    /// completes once everything written before it was written, or fails with it (NIOSSL passes an empty write
    /// on in order, and NIO completes writes in order). Fails at once outside a pipeline.
    package func flushMarker(promise: EventLoopPromise<Void>) {
        guard let context else { return promise.fail(ChannelError.ioOnClosedChannel) }
        passHeld(context: context)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: promise)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func flush(context: ChannelHandlerContext) {
        passHeld(context: context)
        context.flush()
    }

    package func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        passHeld(context: context)
        context.close(mode: mode, promise: promise)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        passHeld(context: context)
        self.context = nil
    }

    /// Keeps `buffer` to gather what follows, unless a promise waits on it (then it goes on now).
    private func hold(_ buffer: ByteBuffer, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if promise == nil, buffer.readableBytes < Self.coalescingLimit {
            held = buffer
        } else {
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise)
        }
    }

    private func passHeld(context: ChannelHandlerContext) {
        guard let buffer = held else { return }
        held = nil
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
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
        guard goesChunked(hasBody: true, hasContentLength: false, version: head.version) else { return false }
        head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
        return true
    }
}
