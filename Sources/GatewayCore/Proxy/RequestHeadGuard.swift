import NIOCore

/// Sits before the HTTP decoder and protects it from slow and oversized request heads: it counts the raw bytes
/// of the head being read (431 past `max_header_bytes`), gives a connection `header_timeout` to send a complete
/// head once it started one (408), and closes a keep-alive connection idle for `idle_timeout`.
/// `HTTPProxyHandler` tells it when a head has been decoded and when a response is complete.
package final class RequestHeadGuard: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    private let maxHeaderBytes: Int
    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    /// A head is awaited: the timer applies until the proxy says one was decoded (`headReceived`).
    private var awaitingHead = true
    /// The bytes of the awaited head are being counted: until its blank line was seen. Apart from
    /// `awaitingHead`, so that bytes that look like a head's end (a lone blank line) but that the parser
    /// does not take as one never turn the timer off.
    private var counting = true
    private var headBytes = 0
    /// One timer per connection, not one per request: `deadline` moves with every request, the timer only
    /// checks it. It is never scheduled further ahead than the shortest timeout, so a deadline set later (always
    /// at least that far ahead) is never missed.
    private var timer: Scheduled<Void>?
    private var deadline: NIODeadline?
    private let checkInterval: TimeAmount
    private var context: ChannelHandlerContext?
    private var closed = false

    package init(limits: HTTPLimitsConfig) {
        self.maxHeaderBytes = limits.maxHeaderBytes
        self.headerTimeout = limits.headerTimeout.timeAmount
        self.idleTimeout = limits.idleTimeout.timeAmount
        self.checkInterval = min(limits.headerTimeout.timeAmount, limits.idleTimeout.timeAmount)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The first head (TLS handshake included) must arrive within header_timeout of connecting.
        arm(headerTimeout)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        self.context = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        closed = true
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if awaitingHead, counting, !closed {
            let buffer = unwrapInboundIn(data)
            // Count only up to the blank line that ends the head: body bytes in the same read are not head.
            let (count, ended) = scanHead(buffer)
            if headBytes == 0, count > 0 { arm(headerTimeout) }
            headBytes += count
            if ended { counting = false }
            if headBytes > maxHeaderBytes {
                reject(context: context, status: "431 Request Header Fields Too Large", body: "request header too large\n")
                return
            }
        }
        context.fireChannelRead(data)
    }

    /// Where the awaited head ends, across reads.
    private var scanner = HeadEndScanner()

    private func scanHead(_ buffer: ByteBuffer) -> (count: Int, ended: Bool) {
        buffer.withUnsafeReadableBytes { scanner.scan($0) }
    }

    /// A complete head was decoded: stop counting and timing until the response is done.
    package func headReceived() {
        awaitingHead = false
        counting = false
        scanner.reset()
        headBytes = 0
        deadline = nil
    }

    /// The response was sent and the connection stays open: wait for the next head, at most `idle_timeout`.
    /// `pending`: what the client sent while the response was awaited, read but not parsed yet (the proxy reads
    /// ahead, and pipelined bytes may share a read with the request before them). It counts as the start of
    /// the next head: its bytes up to a blank line are counted, and the head then has `header_timeout`, as if
    /// they had been read now.
    package func awaitNextHead(pending: ByteBuffer? = nil) {
        awaitingHead = true
        counting = true
        scanner.reset()
        headBytes = 0
        let (count, ended) = pending.map(scanHead) ?? (0, false)
        // Something of the next head waits already: it has header_timeout (an empty line alone does not count).
        arm(count > 0 ? headerTimeout : idleTimeout)
        headBytes = count
        if ended { counting = false }
    }

    private func arm(_ amount: TimeAmount) {
        deadline = .now() + amount
        if timer == nil { schedule(in: amount) }
    }

    private func schedule(in amount: TimeAmount) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: min(amount, checkInterval)) { [weak self] in
            self?.timerFired()
        }
    }

    private func timerFired() {
        timer = nil
        guard let context, awaitingHead, !closed, let deadline else { return }
        let now = NIODeadline.now()
        guard now >= deadline else { return schedule(in: deadline - now) }
        if headBytes > 0 {
            reject(context: context, status: "408 Request Timeout", body: "request header timeout\n")
        } else {
            closed = true
            context.close(promise: nil)
        }
    }

    private func reject(context: ChannelHandlerContext, status: String, body: String) {
        closed = true
        timer?.cancel()
        let text = "HTTP/1.1 \(status)\r\ncontent-type: text/plain\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text))).assumeIsolatedUnsafeUnchecked().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
