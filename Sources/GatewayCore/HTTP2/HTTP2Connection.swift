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
    private var closedForMisbehaviour = false

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

    /// Whether a stream the client opens is served (called from the stream initializer, on the connection's
    /// loop). Not once the connection goes away, nor on a configuration that was replaced or is shutting down:
    /// the stream is refused (RST_STREAM REFUSED_STREAM, which tells the client it was not processed and may be
    /// sent again on a new connection, where the current configuration and its trust apply), and GOAWAY says
    /// which streams were taken.
    package func admits() -> Bool {
        if !goingAway, runtime.closesConnections {
            goAway(runtime.isDraining ? "the gateway is shutting down" : "the configuration it was opened under was reloaded")
        }
        return !goingAway
    }

    /// A stream the connection admitted was set up.
    package func streamOpened(_ id: HTTP2StreamID?) {
        open += 1
        opened += 1
        if let id, id > lastStreamID { lastStreamID = id }
        metrics.http2StreamsOpened.increment()
        metrics.http2StreamsActive.increment()
        idleTimer?.cancel()
        idleTimer = nil
        if opened >= maxStreams { goAway("it opened http2.max_streams_per_connection (\(maxStreams)) streams") }
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
            // Counted once per connection (a flood can raise its error more than once before the close lands).
            guard !closedForMisbehaviour else { return }
            closedForMisbehaviour = true
            metrics.http2ConnectionClosed(reason)
            logger.warning("closing an HTTP/2 connection", metadata: [
                "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)", "reason": "\(reason)", "error": "\(error)",
            ])
            context.close(promise: nil)
        } else if !Self.endsOneStream(error) {
            // A connection error swift-nio-http2 answered with GOAWAY but leaves open (it closes nothing itself),
            // the socket or TLS (a client that reset the connection, or left without close_notify).
            logger.debug("closing an HTTP/2 connection after an error", metadata: ["client": "\(connection.remoteAddress.text)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    /// The errors swift-nio-http2 raises for one stream (it reset that stream; the connection goes on). They reach
    /// this pipeline as they are, not wrapped, so they are told apart by type.
    package static func endsOneStream(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.StreamError, is NIOHTTP2Errors.StreamClosed, is NIOHTTP2Errors.NoSuchStream,
            is NIOHTTP2Errors.IOOnClosedConnection, is NIOHTTP2Errors.BadStreamStateTransition,
            is NIOHTTP2Errors.MissingPseudoHeader, is NIOHTTP2Errors.DuplicatePseudoHeader,
            is NIOHTTP2Errors.PseudoHeaderAfterRegularHeader, is NIOHTTP2Errors.UnknownPseudoHeader,
            is NIOHTTP2Errors.UnsupportedPseudoHeader, is NIOHTTP2Errors.InvalidPseudoHeaders, is NIOHTTP2Errors.MissingHostHeader,
            is NIOHTTP2Errors.DuplicateHostHeader, is NIOHTTP2Errors.EmptyPathHeader, is NIOHTTP2Errors.InvalidStatusValue,
            is NIOHTTP2Errors.TrailersWithoutEndStream, is NIOHTTP2Errors.InvalidHTTP2HeaderFieldName,
            is NIOHTTP2Errors.InvalidHTTP2HeaderFieldValue, is NIOHTTP2Errors.ForbiddenHeaderField,
            is NIOHTTP2Errors.InvalidPseudoHeaderValue, is NIOHTTP2Errors.ContentLengthViolated,
            is NIOHTTP2Errors.ContentLengthHeadersMismatch, is NIOHTTP2Errors.ContentLengthHeaderNegative,
            is NIOHTTP2Errors.ContentLengthHeaderMalformedValue:
            return true
        default:
            return false
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
