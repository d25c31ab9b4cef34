import Logging
import NIOCore
import NIOHTTP2

/// The connection-level half of an HTTP/2 client connection, after swift-nio-http2's `NIOHTTP2Handler` on the
/// connection's pipeline: what HTTP/1's `RequestHeadGuard` and `HTTPProxyHandler` do for the connection as a
/// whole. It counts the connection's streams (`streamOpened`, from the stream initializer), closes it when no
/// stream is open for `header_timeout` after the handshake or `idle_timeout` after the last one, sends GOAWAY
/// and closes once its open streams are done when the gateway shuts down, when the configuration it started
/// on is replaced, or when it reached `http2.max_streams_per_connection`, and closes it on the errors that
/// mean the peer misbehaves (swift-nio-http2 has sent GOAWAY for them: rapid resets, CONTINUATION floods,
/// control frame floods, too many stream errors). The plugins' per-connection data goes when it ends.
package final class HTTP2Connection: ChannelInboundHandler {
    package typealias InboundIn = HTTP2Frame
    package typealias InboundOut = HTTP2Frame

    private let connection: ConnectionContext
    private let runtime: GatewayRuntime
    private let limits: HTTPLimitsConfig
    private let maxStreams: Int
    private let metrics: ListenerMetrics
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var open = 0
    private var opened = 0
    private var lastStreamID = HTTP2StreamID(0)
    private var goingAway = false
    private var idleTimer: Scheduled<Void>?

    package init(connection: ConnectionContext, runtime: GatewayRuntime, limits: HTTPLimitsConfig, http2: HTTP2Config, metrics: ListenerMetrics, logger: Logger) {
        self.connection = connection
        self.runtime = runtime
        self.limits = limits
        self.maxStreams = http2.maxStreamsPerConnection
        self.metrics = metrics
        self.logger = logger
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The first request must come within header_timeout of the handshake.
        armIdle(limits.headerTimeout.timeAmount)
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        self.context = nil
        connection.releasePluginData()
    }

    /// A stream was opened by the client (called from the stream initializer, on the connection's loop).
    package func streamOpened(_ id: HTTP2StreamID?) {
        open += 1
        opened += 1
        if let id, id > lastStreamID { lastStreamID = id }
        metrics.http2StreamsOpened.increment()
        metrics.http2StreamsActive.increment()
        idleTimer?.cancel()
        idleTimer = nil
        if goingAway { return }
        if runtime.closesConnections {
            goAway(runtime.isDraining ? "the gateway is shutting down" : "the configuration it was opened under was reloaded")
        } else if opened >= maxStreams {
            goAway("it opened http2.max_streams_per_connection (\(maxStreams)) streams")
        }
    }

    package func streamClosed() {
        open -= 1
        metrics.http2StreamsActive.decrement()
        guard open == 0 else { return }
        if goingAway {
            context?.close(promise: nil)
        } else {
            armIdle(limits.idleTimeout.timeAmount)
        }
    }

    /// GOAWAY: the streams opened so far are served, no new one is taken, and the connection closes once they
    /// are done.
    private func goAway(_ reason: String) {
        guard let context, !goingAway else { return }
        goingAway = true
        logger.debug("HTTP/2 connection going away", metadata: ["client": "\(connection.remoteAddress.text)", "reason": "\(reason)"])
        let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(NIOAny(frame), promise: nil)
        if open == 0 { context.close(promise: nil) }
    }

    private func armIdle(_ amount: TimeAmount) {
        guard let context else { return }
        idleTimer?.cancel()
        idleTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: amount) { [self] in
            idleTimer = nil
            guard open == 0, let context = self.context else { return }
            let frame = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
            context.writeAndFlush(NIOAny(frame), promise: nil)
            context.close(promise: nil)
        }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            goAway("the gateway is shutting down")
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Errors of one stream (a malformed header block, a content-length mismatch, a stream the client reset)
        // reach this pipeline too, after swift-nio-http2 reset that stream: they do not end the connection. The
        // peer's misbehaviour does, once swift-nio-http2 has told it why (GOAWAY ENHANCE_YOUR_CALM or
        // PROTOCOL_ERROR), as does an error that is not HTTP/2's (TLS, the socket).
        if let reason = Self.connectionEndingReason(error) {
            metrics.http2ConnectionClosed(reason)
            logger.warning("closing an HTTP/2 connection", metadata: [
                "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)", "reason": "\(reason)", "error": "\(error)",
            ])
            context.close(promise: nil)
        } else if !(error is any NIOHTTP2Error) {
            // The socket or TLS (a client that reset the connection, or left without close_notify).
            logger.debug("HTTP/2 connection error", metadata: ["client": "\(connection.remoteAddress.text)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// The `reason` label of `gateway_http2_connections_closed_total` for an error that ends the connection, or
    /// nil for one that ends a stream only.
    package static func connectionEndingReason(_ error: any Error) -> String? {
        switch error {
        case is NIOHTTP2Errors.ExcessiveRSTFrames: return "rapid_reset"
        case is NIOHTTP2Errors.ExcessiveContinuationFrames, is NIOHTTP2Errors.ExcessivelyLargeHeaderBlock: return "continuation_flood"
        case is NIOHTTP2Errors.ExcessiveControlFrames: return "control_frame_flood"
        case is NIOHTTP2Errors.ExcessiveEmptyDataFrames: return "empty_data_flood"
        case is NIOHTTP2Errors.ExcessiveStreamErrors, is NIOHTTP2Errors.ExcessiveNumberOfGlitches: return "stream_errors"
        case is NIOHTTP2Errors.ExcessiveOutboundFrameBuffering: return "unread_frames"
        case is NIOHTTP2Errors.BadClientMagic: return "bad_preface"
        default: return nil  // one stream's error (NIOHTTP2Errors.StreamError and the like), or not HTTP/2's
        }
    }

    package static let closeReasons = ["rapid_reset", "continuation_flood", "control_frame_flood", "empty_data_flood", "stream_errors", "unread_frames", "bad_preface"]
}
