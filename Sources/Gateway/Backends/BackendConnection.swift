import NIOCore
import NIOHTTP1

/// Receives what a backend connection reports; implemented by the request that currently owns it.
protocol BackendConnectionDelegate: AnyObject {
    func backendRead(_ part: HTTPClientResponsePart)
    func backendReadComplete()
    func backendFailed(_ error: any Error)
    func backendClosed()
    func backendWritabilityChanged(isWritable: Bool)
}

/// One HTTP/1.1 connection to a backend server and the handler at the end of its pipeline. Owned by at most one
/// request at a time; idle ones wait in the server's `BackendConnectionPool`.
final class BackendConnection: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private(set) var channel: Channel!
    weak var delegate: (any BackendConnectionDelegate)?
    let server: BackendServer
    /// True once a request has been written; a reused connection that fails before answering is retryable.
    var requestsServed = 0
    private var readsHeld = false
    private var pendingRead = false
    private var context: ChannelHandlerContext?

    init(server: BackendServer) {
        self.server = server
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.channel = context.channel
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.backendRead(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.backendReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let delegate {
            delegate.backendFailed(error)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.pool.remove(self)
        delegate?.backendClosed()
        delegate = nil
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.backendWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func read(context: ChannelHandlerContext) {
        if readsHeld {
            pendingRead = true
        } else {
            context.read()
        }
    }

    /// Backpressure from the client side: stop reading the response while the client cannot take more.
    func holdReads(_ hold: Bool) {
        readsHeld = hold
        if !hold, pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    func write(_ part: HTTPClientRequestPart, flush: Bool) {
        guard let context else { return }
        context.write(wrapOutboundOut(part), promise: nil)
        if flush { context.flush() }
    }

    func flush() {
        context?.flush()
    }

    var isWritable: Bool { channel.isWritable }
}

// Confined to its channel's event loop; the pool only hands it between owners on that same loop.
extension BackendConnection: @unchecked Sendable {}
