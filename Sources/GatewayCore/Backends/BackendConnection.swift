import NIOCore
import NIOHTTP1

/// Receives what a backend connection reports; implemented by the request that currently owns it.
package protocol BackendConnectionDelegate: AnyObject {
    /// A part of the response; with a head, what its Connection fields said (the head itself is without its
    /// hop-by-hop fields: the parser leaves them out).
    func backendRead(_ part: HTTP1ResponseParser.Part, connection: HTTP1ConnectionOptions)
    func backendReadComplete()
    func backendFailed(_ error: any Error)
    /// The backend's bytes are not a valid response to the request (the parser's reason): it did receive the
    /// request, so the exchange ends without a retry.
    func backendSentInvalidResponse(_ error: HTTP1ParseError)
    func backendClosed()
    func backendWritabilityChanged(isWritable: Bool)
    /// Bytes from the backend after the connection became a tunnel (`openTunnel`): not HTTP, passed on as they are.
    func backendTunnelRead(_ bytes: ByteBuffer)
}

/// One HTTP/1.1 connection to a backend server and the handler at the end of its pipeline: it parses the
/// responses itself (`HTTP1ResponseParser`) and hands their parts to its delegate. Owned by at most one request
/// at a time; idle ones wait in the server's `BackendConnectionPool`. Confined to its channel's event loop (not
/// Sendable): the pool keeps it in a list bound to that loop.
package final class BackendConnection: ChannelDuplexHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = IOData
    package typealias OutboundOut = IOData

    private(set) var channel: Channel!
    /// The exchange's handler while this connection is attached to it. Neither retained nor `weak`: a weak
    /// reference gives its target a side table, and then every retain and release of the proxy handler (~16 a
    /// request) takes the runtime's slow path. The handler sets it when it attaches this connection (keeping
    /// the connection in its `backendConnection`) and clears it whenever it lets the connection go, and in its
    /// `deinit`; this connection clears it when its channel closes.
    package unowned(unsafe) var delegate: (any BackendConnectionDelegate)?
    package let server: BackendServer
    /// True once a request has been written; a reused connection that fails before answering is retryable.
    package var requestsServed = 0
    /// False once the backend sent more than the response it was asked for (bytes after a response's end,
    /// whatever they are), or an HTTP/1.0 chunked response (RFC 9112 6.1): such a connection is closed after
    /// its exchange, never pooled, so that no byte of one response is read as part of the next.
    package private(set) var reusable = true
    /// Between the first `channelRead` of a read pass and its `channelReadComplete`.
    private var readPass = false
    /// `release(reuse: true)` came during a read pass: the connection goes back to the pool at its end.
    private var releasePending = false
    private var readsHeld = false
    /// The backend switched protocols (a WebSocket's 101): its bytes go to the delegate as they come.
    private var tunnel = false
    private var pendingRead = false
    private var context: ChannelHandlerContext?
    private var encoder = UpstreamRequestEncoder()
    private var parser = HTTP1ResponseParser(maxHeadBytes: BackendConnection.maxResponseHeadBytes, maxFields: BackendConnection.maxResponseFields)

    /// The largest response head a backend may send (NIO's decoder allowed 80 KiB), and the most fields in it;
    /// a larger one ends the exchange as an invalid response.
    package static let maxResponseHeadBytes = 80 * 1024
    package static let maxResponseFields = 1000

    private static let noOptions = HTTP1ConnectionOptions()

    package init(server: BackendServer) {
        self.server = server
        parser.heads.dropsHopByHop = true
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.channel = context.channel
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readPass = true
        if tunnel { return delegate?.backendTunnelRead(unwrapInboundIn(data)) ?? () }
        // Bytes while no request waits for an answer (idle in the pool, or after a response's end) belong to no
        // request: the connection is out of step and is closed.
        if parser.isBetweenMessages, !parser.heads.awaitingResponse {
            return invalidResponse(HTTP1ParseError(.unsolicited), context: context)
        }
        parser.append(unwrapInboundIn(data))
        do {
            while let part = try parser.next() {
                switch part {
                case .head:
                    let options = parser.heads.lastConnection
                    if options.closeAfterMessage { reusable = false }
                    delegate?.backendRead(part, connection: options)
                case .body: delegate?.backendRead(part, connection: Self.noOptions)
                case .end:
                    // Decided before the end is handed over: the exchange may give the connection back at once.
                    if parser.bufferedBytes > 0 { reusable = false }
                    delegate?.backendRead(.end, connection: Self.noOptions)
                }
            }
        } catch {
            invalidResponse(error, context: context)
        }
    }

    private func invalidResponse(_ error: HTTP1ParseError, context: ChannelHandlerContext) {
        reusable = false
        // A TLS connection stays active while its close_notify goes out: out of the pool now, not after.
        server.pool.remove(self)
        delegate?.backendSentInvalidResponse(error)
        context.close(promise: nil)
    }

    /// The exchange on this connection ended (its delegate already detached): back to the pool if `reuse` and
    /// nothing says otherwise, else closed. Inside a read pass, the decision waits for its end
    /// (`channelReadComplete`): NIO may deliver more bytes of the same pass after the response's end (a read
    /// that filled its buffer is followed by another), and a request pipelined behind the finished one would
    /// otherwise take the connection back at once and read them as its answer.
    package func release(reuse: Bool) {
        guard reuse, reusable else { return channel.close(promise: nil) }
        if readPass {
            releasePending = true
        } else {
            server.pool.giveBack(self)
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        readPass = false
        if releasePending {
            releasePending = false
            if reusable, context.channel.isActive { server.pool.giveBack(self) } else { context.close(promise: nil) }
        }
        delegate?.backendReadComplete()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate {
            delegate.backendFailed(error)
        }
        context.close(promise: nil)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        // The close ends a body delimited by it; in the middle of any other message it is an error.
        do {
            if case .end? = try parser.finish() {
                reusable = false
                delegate?.backendRead(.end, connection: Self.noOptions)
            }
        } catch {
            delegate?.backendSentInvalidResponse(error)
        }
        server.pool.remove(self)
        delegate?.backendClosed()
        delegate = nil
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.backendWritabilityChanged(isWritable: context.channel.isWritable)
    }

    package func read(context: ChannelHandlerContext) {
        if readsHeld {
            pendingRead = true
        } else {
            context.read()
        }
    }

    /// Backpressure from the client side: stop reading the response while the client cannot take more.
    package func holdReads(_ hold: Bool) {
        readsHeld = hold
        if !hold, pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    /// The backend answered 101 to an upgrade request: from now on this connection carries the other protocol's
    /// bytes both ways (`writeTunnel`, `backendTunnelRead`) and is never pooled. Returns the bytes that came
    /// after the 101 in the same reads, which are the tunnel's first.
    package func openTunnel() -> ByteBuffer? {
        tunnel = true
        reusable = false
        server.pool.remove(self)
        return parser.takeUpgraded()
    }

    /// Bytes for the backend through the tunnel, as they are.
    package func writeTunnel(_ bytes: ByteBuffer, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: promise)
    }

    /// Closes the connection once what was written to it is written (a tunnel whose client left: its last bytes,
    /// a WebSocket close frame, still reach the backend), and after `timeout` whatever is still unwritten. What
    /// the backend sends meanwhile is read and dropped (its reads held for a client that stopped reading would
    /// otherwise leave it blocked, never reading what is written to it).
    package func closeAfterWrites(within timeout: TimeAmount) {
        guard let context else { return }
        // In a tunnel, without a delegate: what is read is dropped.
        holdReads(false)
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(channel.allocator.buffer(capacity: 0))), promise: promise)
        let deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        promise.futureResult.whenComplete { _ in
            deadline.cancel()
            channel.close(promise: nil)
        }
    }

    package func write(_ part: UpstreamRequestPart, flush: Bool) {
        guard let context else { return }
        switch part {
        case .head(let upstream): parser.heads.requestSent(isHEAD: upstream.head.method.isHEAD)
        case .serializedHead(_, _, let isHEAD): parser.heads.requestSent(isHEAD: isHEAD)
        case .body, .end: break
        }
        encoder.write(part, context: context, promise: nil)
        if flush { context.flush() }
    }

    package func flush() {
        context?.flush()
    }

    package var isWritable: Bool { channel.isWritable }
}
