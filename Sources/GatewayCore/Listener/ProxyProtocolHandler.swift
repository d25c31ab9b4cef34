import Logging
import NIOCore

/// The only handler of a new connection on a listener with `proxy_protocol`: reads the PROXY header (over as
/// many reads as it takes, within `timeout`), lets the policy decide, and then either closes the connection or
/// hands it on: `proceed` sets up the rest of the pipeline (TLS, HTTP) with the addresses the connection now has,
/// and the bytes after the header follow. The decisions are `ProxyProtocolPolicy.decide`'s.
package final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    /// Sets up the rest of the pipeline for a connection from `source` to `destination`; false when the
    /// connection must close instead (it already said why).
    package typealias Proceed = (_ channel: Channel, _ source: SocketAddress?, _ destination: SocketAddress?) throws -> Bool

    private let policy: ProxyProtocolPolicy
    private let peerTrusted: Bool
    private let timeout: TimeAmount
    private let metrics: ListenerMetrics
    private let logger: Logger
    private let listenerName: String
    private let proceed: Proceed
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    package init(
        policy: ProxyProtocolPolicy, peerTrusted: Bool, timeout: TimeAmount, listenerName: String, metrics: ListenerMetrics, logger: Logger,
        proceed: @escaping Proceed
    ) {
        self.policy = policy
        self.peerTrusted = peerTrusted
        self.timeout = timeout
        self.listenerName = listenerName
        self.metrics = metrics
        self.logger = logger
        self.proceed = proceed
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            guard !handler.decided else { return }
            handler.close(context, .timeout, reason: "no complete PROXY header within handshake_timeout")
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return }  // closing: the rest is dropped
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        let decision = buffered!.withUnsafeReadableBytes { policy.decide(ProxyProtocolHeader.parse($0), peerTrusted: peerTrusted) }
        switch decision {
        case .needMore:
            return
        case .close(let outcome, let reason):
            close(context, outcome, reason: reason)
        case .proceed(let source, let destination, let consumed, let outcome):
            decided = true
            timer?.cancel()
            var rest = buffered!
            buffered = nil
            rest.moveReaderIndex(forwardBy: consumed)
            do {
                // False: refused (over max_connections_per_ip), counted as such, not as an outcome.
                guard try proceed(context.channel, source ?? context.channel.remoteAddress, destination ?? context.channel.localAddress) else {
                    context.close(promise: nil)
                    return
                }
            } catch {
                metrics.connectionSetupFailed(.pipeline)
                logger.error("closing connection: its pipeline could not be set up", metadata: [
                    "listener": "\(listenerName)", "peer": "\(context.channel.remoteAddress.text)", "error": "\(error)",
                ])
                context.close(promise: nil)
                return
            }
            metrics.proxyProtocol(outcome)
            if rest.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(rest)) }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        if decided { context.fireChannelReadComplete() }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Shutting down (or the listener was removed by a reload) before the header was read: no request can be
        // in flight, and the handlers that would honour the event are not there yet. Close.
        if event is ChannelShouldQuiesceEvent, !decided {
            decided = true
            timer?.cancel()
            buffered = nil
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func channelInactive(context: ChannelHandlerContext) {
        // A connection that closes before it sent anything (a balancer's TCP health check) is not counted.
        if !decided, let buffered, buffered.readableBytes > 0 {
            decided = true
            metrics.proxyProtocol(.truncated)
            logger.debug("connection closed in the middle of its PROXY header", metadata: [
                "listener": "\(listenerName)", "peer": "\(context.channel.remoteAddress.text)", "bytes": "\(buffered.readableBytes)",
            ])
        }
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func close(_ context: ChannelHandlerContext, _ outcome: ListenerMetrics.ProxyProtocolOutcome, reason: String) {
        decided = true
        timer?.cancel()
        buffered = nil
        metrics.proxyProtocol(outcome)
        logger.debug("closing connection: PROXY protocol", metadata: [
            "listener": "\(listenerName)", "peer": "\(context.channel.remoteAddress.text)", "outcome": "\(outcome.rawValue)", "reason": "\(reason)",
        ])
        context.close(promise: nil)
    }
}
