import NIOCore
import NIOHTTP1

/// The rules of one client connection's request path, as a value: events in, actions out, no I/O. The channel
/// handler (`HTTPProxyHandler`) feeds it what happened (a request head, a body part, a plugin decision, a backend
/// connection, a response part, a timer) and carries out the action it returns; every rule (one request at a time,
/// when a request may leave for a backend, retries, when a connection closes, what is answered when) is decided
/// here and has a unit test without a socket (`ProxyStateMachineTests`).
///
/// Nothing here is HTTP/1-specific beyond "keep-alive": a stream of another protocol can feed the same events.
/// Modelled on NIO's `HTTPServerPipelineHandler` and AsyncHTTPClient's `HTTPRequestStateMachine`.
package struct ProxyStateMachine {
    /// What the machine needs of the listener's limits.
    package struct Limits: Sendable {
        package var maxBodyBytes: Int64
        /// A chunked body up to this size is read whole before any byte of the request goes to a backend.
        package var chunkedBufferBytes: Int

        package init(maxBodyBytes: Int64, chunkedBufferBytes: Int) {
            self.maxBodyBytes = maxBodyBytes
            self.chunkedBufferBytes = chunkedBufferBytes
        }
    }

    /// What the machine needs of a request head that passed validation.
    package struct RequestFacts: Sendable {
        package var keepAlive: Bool
        package var hasBody: Bool
        package var chunked: Bool
        package var expectsContinue: Bool
        package var isHTTP10: Bool
        package var isHEAD: Bool
        /// A WebSocket upgrade the listener tunnels (`Upgrade: websocket` went to the backend): a 101 answer opens
        /// the tunnel; to any other request a 101 is a protocol error.
        package var upgrade: Bool

        package init(keepAlive: Bool, hasBody: Bool, chunked: Bool, expectsContinue: Bool, isHTTP10: Bool, isHEAD: Bool, upgrade: Bool = false) {
            self.keepAlive = keepAlive
            self.hasBody = hasBody
            self.chunked = chunked
            self.expectsContinue = expectsContinue
            self.isHTTP10 = isHTTP10
            self.isHEAD = isHEAD
            self.upgrade = upgrade
        }
    }

    /// Where routing and load balancing sent a request.
    package enum Target: Sendable {
        case noRoute
        /// The backend has no server (`empty`) or none that is healthy.
        case noServer(empty: Bool)
        case server(index: Int, serverCount: Int, responseTimeout: TimeAmount)
    }

    /// How the plugin chain decided.
    package enum PluginDecision: Sendable {
        case proceed
        case answered
        case failed(plugin: String)
    }

    /// Why the gateway answers a request itself; the handler turns it into a status and a text.
    package enum Answer: Equatable, Sendable {
        /// Validation refused the head (RFC 9112); the answer closes the connection.
        case refused(RequestHeadValidator.Refusal)
        case noRoute
        case noServer(empty: Bool)
        case pluginAnswer
        case pluginFailed(plugin: String)
        case bodyTooLarge
        case bodyTimeout
        case connectTimedOut
        case connectFailed
        case responseTimedOut
        case invalidResponse
        case backendClosed
    }

    /// What the machine tells the handler to do.
    package enum Action: Equatable {
        case none
        /// Run the listener's plugin chain over the head; report with `pluginsFinished(request:_:)`. Client
        /// reads stay held meanwhile.
        case runPlugins(request: UInt64)
        /// Route and pick a server, then report with `dispatch(to:)`.
        case dispatch
        /// Take a pooled connection to server `server` or connect to it; report with `attached(attempt:reused:now:)`
        /// or `connectFailed(attempt:timedOut:nextServer:)`. `sendContinue`: answer `Expect: 100-continue` first.
        case startAttempt(attempt: UInt64, server: Int, sendContinue: Bool)
        /// Read the client's chunked body on (whole, or up to `chunked_buffer_bytes`) before any backend sees the request.
        case readBody(sendContinue: Bool)
        /// Write the upstream head and these parts to the attached connection, flush; arm the response timer if given.
        case sendRequest([HTTPClientRequestPart], armResponseTimer: NIODeadline?)
        /// A connection arrived for an attempt that is over: close it.
        case discardConnection
        case forwardBody(ByteBuffer)
        /// Write the request's end to the backend and flush; arm the response timer if given.
        case forwardEnd(armResponseTimer: NIODeadline?)
        /// The response timer fired early (another request set it): arm it again for this deadline.
        case rearmResponseTimer(NIODeadline)
        /// Write the backend's response head to the client, with `Connection: close` if `close`.
        case writeResponseHead(close: Bool)
        case writeResponseBody
        /// The response is complete: give the backend connection back to its pool if `reuseBackend` (close it
        /// otherwise), write the end, and keep the client connection open if `keepOpen`.
        case finish(reuseBackend: Bool, keepOpen: Bool)
        /// The backend's 101 to an upgrade request is complete (its head went out): both connections now carry
        /// the other protocol's bytes, as they are, until one side closes. Nothing of it is HTTP any more.
        case openTunnel
        /// Answer the request from the gateway (then call `answerStarted(close:)`). `abortBackend`: close the
        /// backend connection of the exchange first (it is not returned to the pool).
        case answer(Answer, close: Bool, abortBackend: Bool)
        /// A backend answer that cannot belong to this exchange: count and log it, close the backend connection,
        /// then answer 502 (`answer`, with `close`) or cut the client off (its response head already went out).
        case backendProtocolError(String, answer: Bool, close: Bool)
        /// Close the client connection in the middle of a response (on_complete reports it incomplete).
        case cutOff(abortBackend: Bool)
        /// Close the client connection between responses.
        case close(abortBackend: Bool)
        /// The request the gateway answered has ended: wait for the next head.
        case awaitNextHead
    }

    /// What follows once the gateway's own answer is written.
    package enum AfterAnswer: Equatable, Sendable {
        /// Close the connection after the answer.
        case close
        /// The request was read whole: the next head may come.
        case awaitNextHead
        /// The request's body is still coming: it is read and dropped, then the next head may come.
        case drainBody
    }

    /// The request as the machine knows it.
    private struct Request {
        var id: UInt64
        var facts: RequestFacts
        var ended = false
        var bodyBytes: Int64 = 0
        /// Parts read while no backend connection is attached (reads are held meanwhile, except while a chunked
        /// body is read whole).
        var buffered: [HTTPClientRequestPart] = []
    }

    private enum Backend: Equatable {
        case none
        case connecting(attempt: UInt64)
        /// `reused`: the connection had served a request before this one (a retry is safe if it fails first).
        case attached(reused: Bool)
    }

    /// One request on its way to a backend.
    private struct Exchange {
        var server: Int
        var serverCount: Int
        var responseTimeout: TimeAmount
        var attempts = 0
        var backend = Backend.none
        /// A chunked body is being read whole before the request goes to a backend.
        var awaitingBody = false
        var responseStarted = false
        /// The response head is a 101 to an upgrade request: its end opens the tunnel.
        var switching = false
        var responseKeepAlive = true
        var closeAfterResponse = false
        /// When the backend must have sent the response head; nil while no response is awaited.
        var responseDeadline: NIODeadline?
    }

    private enum State {
        case idle
        /// The plugin chain is deciding.
        case plugins(Request)
        /// Routing and load balancing are deciding (synchronously, between two events).
        case dispatching(Request)
        /// The gateway answered and reads the rest of the request body, dropping it.
        case answered
        case proxying(Request, Exchange)
        /// The backend switched protocols: bytes go both ways untouched until either side closes (the handler
        /// runs the tunnel; the machine only knows there is one).
        case tunnel
        case closed
        /// Transient, while a payload is changed in place (no copy of the buffered parts).
        case modifying
    }

    private var state = State.idle
    private let limits: Limits
    private var nextID: UInt64 = 0
    /// The gateway is shutting down: the request in progress is the connection's last.
    private var quiescing = false

    package init(limits: Limits) {
        self.limits = limits
    }

    // MARK: queries

    /// The request's body is still being read (the slow-body check applies).
    package var isReadingBody: Bool {
        switch state {
        case .plugins(let request), .dispatching(let request), .proxying(let request, _): return !request.ended
        default: return false
        }
    }

    /// A request is with a backend (attached or connecting) and its client side is still open.
    package var isProxying: Bool {
        if case .proxying = state { return true }
        return false
    }

    /// The server the current exchange is on, if any.
    package var server: Int? {
        if case .proxying(_, let exchange) = state { return exchange.server }
        return nil
    }

    /// The backend's response head went out to the client.
    package var responseStarted: Bool {
        if case .proxying(_, let exchange) = state { return exchange.responseStarted }
        return false
    }

    /// The next part the client sent can be handled now: it belongs to the request being read, or it is the
    /// next head and none is in progress. Otherwise it waits until the current response is done (pipelining:
    /// one request at a time, answered in order), or, once the connection is closed, is dropped.
    package var takesRequestParts: Bool {
        switch state {
        case .idle, .answered: return true
        case .plugins(let request), .dispatching(let request), .proxying(let request, _): return !request.ended
        case .closed, .modifying, .tunnel: return false
        }
    }

    /// The request in progress was read whole (its end arrived) and waits for plugins, a backend or its
    /// response: nothing more of it is read.
    package var requestRead: Bool {
        switch state {
        case .plugins(let request), .dispatching(let request), .proxying(let request, _): return request.ended
        default: return false
        }
    }

    /// The connection waits for a request head (none is in progress).
    package var isIdle: Bool {
        if case .idle = state { return true }
        return false
    }

    /// The connection is a tunnel (after a 101 to an upgrade request).
    package var isTunnel: Bool {
        if case .tunnel = state { return true }
        return false
    }

    package var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    private mutating func makeID() -> UInt64 {
        nextID &+= 1
        return nextID
    }

    // MARK: client events

    /// A request head that validation refused arrived: nothing of it goes anywhere, and the connection closes.
    package mutating func requestRefused(_ refusal: RequestHeadValidator.Refusal) -> Action {
        guard case .idle = state else { return .none }
        return .answer(.refused(refusal), close: true, abortBackend: false)
    }

    /// A request head arrived (validated and normalised); `runsPlugins`: the listener has a plugin chain.
    package mutating func requestHead(_ facts: RequestFacts, runsPlugins: Bool) -> Action {
        guard case .idle = state else { return .none }
        let request = Request(id: makeID(), facts: facts)
        if runsPlugins {
            state = .plugins(request)
            return .runPlugins(request: request.id)
        }
        state = .dispatching(request)
        return .dispatch
    }

    /// The plugin chain decided for request `id` (a stale decision, for a request already ended, is ignored).
    package mutating func pluginsFinished(request id: UInt64, _ decision: PluginDecision) -> Action {
        guard case .plugins(let request) = state, request.id == id else { return .none }
        // Answered before the body was read whole: the rest of it cannot be told from the next request.
        let close = !request.facts.keepAlive || (request.facts.hasBody && !request.ended)
        switch decision {
        case .proceed:
            state = .dispatching(request)
            return .dispatch
        case .answered:
            return .answer(.pluginAnswer, close: close, abortBackend: false)
        case .failed(let plugin):
            return .answer(.pluginFailed(plugin: plugin), close: close, abortBackend: false)
        }
    }

    /// Routing and load balancing decided where the request goes.
    package mutating func dispatch(to target: Target) -> Action {
        guard case .dispatching(let request) = state else { return .none }
        let close = (request.facts.hasBody && !request.ended) || !request.facts.keepAlive
        switch target {
        case .noRoute:
            return .answer(.noRoute, close: close, abortBackend: false)
        case .noServer(let empty):
            return .answer(.noServer(empty: empty), close: close, abortBackend: false)
        case .server(let index, let count, let timeout):
            state = .modifying
            var exchange = Exchange(server: index, serverCount: count, responseTimeout: timeout)
            let sendContinue = request.facts.expectsContinue
            if request.facts.chunked, !request.ended, limits.chunkedBufferBytes > 0, request.bodyBytes <= Int64(limits.chunkedBufferBytes) {
                // Read the chunked body whole first: a chunk framing error found on the way is answered 400 and
                // no byte of the request, not even its head, has gone to a backend (a pooled connection would
                // have taken the head at once).
                exchange.awaitingBody = true
                state = .proxying(request, exchange)
                return .readBody(sendContinue: sendContinue)
            }
            let action = startAttempt(&exchange, sendContinue: sendContinue)
            state = .proxying(request, exchange)
            return action
        }
    }

    private mutating func startAttempt(_ exchange: inout Exchange, sendContinue: Bool) -> Action {
        exchange.attempts += 1
        let id = makeID()
        exchange.backend = .connecting(attempt: id)
        return .startAttempt(attempt: id, server: exchange.server, sendContinue: sendContinue)
    }

    /// A part of the request body arrived.
    package mutating func requestBody(_ body: ByteBuffer) -> Action {
        switch state {
        case .plugins(var request), .dispatching(var request):
            let routing = if case .dispatching = state { true } else { false }
            request.bodyBytes += Int64(body.readableBytes)
            if request.bodyBytes > limits.maxBodyBytes { return .answer(.bodyTooLarge, close: true, abortBackend: false) }
            state = .modifying
            request.buffered.append(.body(.byteBuffer(body)))
            state = routing ? .dispatching(request) : .plugins(request)
            return .none
        case .proxying(var request, var exchange):
            request.bodyBytes += Int64(body.readableBytes)
            if request.bodyBytes > limits.maxBodyBytes {
                state = .proxying(request, exchange)
                return exchange.responseStarted ? .cutOff(abortBackend: true) : .answer(.bodyTooLarge, close: true, abortBackend: true)
            }
            if case .attached = exchange.backend {
                state = .proxying(request, exchange)
                return .forwardBody(body)
            }
            state = .modifying
            request.buffered.append(.body(.byteBuffer(body)))
            var action = Action.none
            if exchange.awaitingBody, request.bodyBytes > Int64(limits.chunkedBufferBytes) {
                exchange.awaitingBody = false
                action = startAttempt(&exchange, sendContinue: false)
            }
            state = .proxying(request, exchange)
            return action
        default:
            return .none  // answered: the body is dropped
        }
    }

    /// The request ended (its body, if any, is complete).
    package mutating func requestEnd(now: @autoclosure () -> NIODeadline) -> Action {
        switch state {
        case .answered:
            state = .idle
            return .awaitNextHead
        case .plugins(var request), .dispatching(var request):
            let routing = if case .dispatching = state { true } else { false }
            state = .modifying
            request.ended = true
            request.buffered.append(.end(nil))
            state = routing ? .dispatching(request) : .plugins(request)
            return .none
        case .proxying(var request, var exchange):
            state = .modifying
            request.ended = true
            var action = Action.none
            if case .attached = exchange.backend {
                action = .forwardEnd(armResponseTimer: startResponseTimer(&exchange, now: now))
            } else {
                request.buffered.append(.end(nil))
                if exchange.awaitingBody {
                    exchange.awaitingBody = false
                    action = startAttempt(&exchange, sendContinue: false)
                }
            }
            state = .proxying(request, exchange)
            return action
        default:
            return .none
        }
    }

    /// `response_timeout` counts from the moment the whole request was handed to the backend, so a slow upload is
    /// not mistaken for a slow backend. Returns the deadline to arm, if one starts now.
    private func startResponseTimer(_ exchange: inout Exchange, now: () -> NIODeadline) -> NIODeadline? {
        guard exchange.responseDeadline == nil, !exchange.responseStarted else { return nil }
        let deadline = now() + exchange.responseTimeout
        exchange.responseDeadline = deadline
        return deadline
    }

    // MARK: backend events

    /// A backend connection is ready for attempt `attempt`; `reused`: it served a request before.
    package mutating func attached(attempt: UInt64, reused: Bool, now: @autoclosure () -> NIODeadline) -> Action {
        guard case .proxying(var request, var exchange) = state, exchange.backend == .connecting(attempt: attempt) else {
            return .discardConnection
        }
        state = .modifying
        exchange.backend = .attached(reused: reused)
        let parts = request.buffered
        request.buffered = []
        let deadline = request.ended ? startResponseTimer(&exchange, now: now) : nil
        state = .proxying(request, exchange)
        return .sendRequest(parts, armResponseTimer: deadline)
    }

    /// Connecting for attempt `attempt` failed. `nextServer` asks the balancer for another server.
    package mutating func connectFailed(attempt: UInt64, timedOut: Bool, nextServer: (Int) -> Int?) -> Action {
        guard case .proxying(let request, var exchange) = state, exchange.backend == .connecting(attempt: attempt) else { return .none }
        exchange.backend = .none
        if exchange.attempts < exchange.serverCount, let next = nextServer(exchange.server) {
            exchange.server = next
            let action = startAttempt(&exchange, sendContinue: false)
            state = .proxying(request, exchange)
            return action
        }
        state = .proxying(request, exchange)
        return .answer(timedOut ? .connectTimedOut : .connectFailed, close: !request.ended || !request.facts.keepAlive, abortBackend: true)
    }

    /// The attached backend connection closed or failed.
    package mutating func backendLost() -> Action {
        guard case .proxying(var request, var exchange) = state, case .attached(let reused) = exchange.backend else { return .none }
        exchange.backend = .none
        if exchange.responseStarted {
            // The client already has part of the response: closing is the only honest signal.
            state = .proxying(request, exchange)
            return .cutOff(abortBackend: true)
        }
        // A reused keep-alive connection the backend closed before answering: safe to retry (once per server) on
        // a fresh one when the request had no body (nothing the backend could have half-processed).
        if reused, !request.facts.hasBody, exchange.attempts <= exchange.serverCount {
            state = .modifying
            exchange.responseDeadline = nil
            request.buffered = request.ended ? [.end(nil)] : []
            let action = startAttempt(&exchange, sendContinue: false)
            state = .proxying(request, exchange)
            return action
        }
        state = .proxying(request, exchange)
        return .answer(.backendClosed, close: !request.ended || !request.facts.keepAlive, abortBackend: true)
    }

    /// The backend sent a response head. `retired`: the configuration generation was replaced, or the gateway is
    /// draining before shutdown (either way the client should reconnect: to the new generation, or elsewhere).
    package mutating func responseHead(status: HTTPResponseStatus, keepAlive: Bool, hasContentLength: Bool, retired: Bool) -> Action {
        guard case .proxying(let request, var exchange) = state else { return .none }
        if exchange.responseStarted { return protocolError("a second response head in one exchange", request, exchange) }
        let code = status.code
        if code < 200 {
            if code == 101 { return switchingProtocols(retired: retired) }
            // Other 1xx (100, 102, 103) are dropped: the gateway answered Expect: 100-continue itself.
            return .none
        }
        exchange.responseDeadline = nil
        exchange.responseStarted = true
        exchange.responseKeepAlive = keepAlive
        // An HTTP/1.0 client cannot read a chunked body: without a length, the end of the body is the close.
        let unframedFor10 = request.facts.isHTTP10 && !hasContentLength && !request.facts.isHEAD && status != .noContent && status != .notModified
        let close = !request.facts.keepAlive || !request.ended || retired || quiescing || unframedFor10
        exchange.closeAfterResponse = close
        state = .proxying(request, exchange)
        return .writeResponseHead(close: close)
    }

    /// A 101 head (off the common path). The gateway asks a backend to switch protocols only for a WebSocket
    /// upgrade it tunnels (every other Upgrade is removed), and nothing after a 101 is HTTP: to any other request,
    /// or while the connection is to close after its response, it is an error.
    @inline(never)
    private mutating func switchingProtocols(retired: Bool) -> Action {
        guard case .proxying(let request, var exchange) = state else { return .none }
        guard request.facts.upgrade, request.ended, !quiescing, !retired else {
            return protocolError(
                request.facts.upgrade ? "101 Switching Protocols while the connection closes" : "unsolicited 101 Switching Protocols", request, exchange)
        }
        exchange.responseDeadline = nil
        exchange.responseStarted = true
        exchange.switching = true
        exchange.responseKeepAlive = false
        exchange.closeAfterResponse = true
        state = .proxying(request, exchange)
        return .writeResponseHead(close: false)
    }

    /// The backend's bytes are no valid response (`what`: the parser's reason): it received the request, so
    /// there is no retry; a 502 before the response started, a cut-off after.
    package mutating func responseInvalid(_ what: String) -> Action {
        guard case .proxying(let request, let exchange) = state, case .attached = exchange.backend else { return .none }
        return protocolError(what, request, exchange)
    }

    package mutating func responseBody() -> Action {
        guard case .proxying(let request, let exchange) = state else { return .none }
        guard exchange.responseStarted else { return protocolError("a response body before its head", request, exchange) }
        return .writeResponseBody
    }

    package mutating func responseEnd() -> Action {
        guard case .proxying(let request, let exchange) = state else { return .none }
        guard exchange.responseStarted else { return protocolError("a response end without a final response head", request, exchange) }
        if exchange.switching {
            state = .tunnel
            return .openTunnel
        }
        let keepOpen = request.facts.keepAlive && request.ended && !exchange.closeAfterResponse && !quiescing
        state = keepOpen ? .idle : .closed
        return .finish(reuseBackend: request.ended && exchange.responseKeepAlive, keepOpen: keepOpen)
    }

    /// A backend answer that cannot belong to this exchange ends the exchange, never the process.
    private func protocolError(_ what: String, _ request: Request, _ exchange: Exchange) -> Action {
        .backendProtocolError(what, answer: !exchange.responseStarted, close: !request.ended || !request.facts.keepAlive)
    }

    // MARK: timers

    /// The response timer fired.
    package mutating func responseTimerFired(now: NIODeadline) -> Action {
        guard case .proxying(let request, var exchange) = state, let deadline = exchange.responseDeadline, !exchange.responseStarted else {
            return .none
        }
        guard deadline <= now else { return .rearmResponseTimer(deadline) }
        exchange.responseDeadline = nil
        state = .proxying(request, exchange)
        return .answer(.responseTimedOut, close: !request.ended || !request.facts.keepAlive, abortBackend: true)
    }

    /// The client sent its body too slowly.
    package mutating func bodyTimedOut() -> Action {
        switch state {
        case .plugins(let request) where !request.ended:
            return .answer(.bodyTimeout, close: true, abortBackend: false)
        case .proxying(let request, let exchange) where !request.ended:
            return exchange.responseStarted ? .cutOff(abortBackend: true) : .answer(.bodyTimeout, close: true, abortBackend: true)
        default:
            return .none
        }
    }

    /// The client did not read its response for `send_timeout`.
    package mutating func sendTimedOut() -> Action {
        if case .proxying = state { return .cutOff(abortBackend: true) }
        return .close(abortBackend: false)
    }

    // MARK: the gateway's own answers and the end of the connection

    /// The gateway is writing its own answer (`close`: with `Connection: close`); says what follows it.
    package mutating func answerStarted(close: Bool) -> AfterAnswer {
        let ended: Bool
        switch state {
        case .plugins(let request), .dispatching(let request), .proxying(let request, _): ended = request.ended
        default: ended = false
        }
        if close || quiescing {
            state = .closed
            return .close
        }
        if ended {
            state = .idle
            return .awaitNextHead
        }
        state = .answered
        return .drainBody
    }

    /// The gateway is shutting down (`ChannelShouldQuiesceEvent`): a connection between requests closes now; a
    /// request in progress is answered (with `Connection: close`) and is the last.
    package mutating func quiesce() -> Action {
        quiescing = true
        switch state {
        case .idle, .answered: return .close(abortBackend: false)
        default: return .none
        }
    }

    /// The client connection is closing or closed; true when an exchange was in progress (its backend side must
    /// be dropped).
    package mutating func clientClosed() -> Bool {
        let wasProxying = isProxying
        state = .closed
        return wasProxying
    }
}
