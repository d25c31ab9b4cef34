import Logging
import NIOCore
import NIOHTTP1

/// The request path of one client connection: route, run the listener's plugin chain, pick a server, stream
/// the request to it and the response back, with backpressure both ways. One request at a time; `HTTPServerPipelineHandler`
/// in front of it queues pipelined requests and handles quiescing on shutdown.
package final class HTTPProxyHandler: ChannelDuplexHandler, BackendConnectionDelegate {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    /// One request on its way through the gateway.
    private final class Exchange {
        let clientHead: HTTPRequestHead
        var upstreamHead: HTTPRequestHead
        let backend: BackendGroup
        let keepAlive: Bool
        let hasBody: Bool
        var serverIndex: Int
        var attempts = 0
        var connection: BackendConnection?
        /// Parts read from the client while no backend connection was ready yet (reads are held meanwhile).
        var buffered: [HTTPClientRequestPart] = []
        var requestEnded = false
        var bodyBytes: Int64 = 0
        var responseStarted = false
        var responseKeepAlive = true
        /// When the backend must have sent the response head (`response_timeout` after the request was handed
        /// over); nil while no response is awaited.
        var responseDeadline: NIODeadline?
        var countedActive = false
        /// A chunked body is being read whole before the request goes to a backend (`chunked_buffer_bytes`).
        var awaitingBody = false
        /// The response head told the client the connection closes (`Connection: close`).
        var closeAfterResponse = false
        var status = 0

        init(clientHead: HTTPRequestHead, upstreamHead: HTTPRequestHead, backend: BackendGroup, serverIndex: Int, keepAlive: Bool, hasBody: Bool) {
            self.clientHead = clientHead
            self.upstreamHead = upstreamHead
            self.backend = backend
            self.serverIndex = serverIndex
            self.keepAlive = keepAlive
            self.hasBody = hasBody
        }

        var server: BackendServer { backend.servers[serverIndex] }
    }

    /// A request whose head is with the plugin chain; body parts that arrive meanwhile wait here.
    private final class PendingRequest {
        let head: HTTPRequestHead
        let backend: BackendGroup?
        let keepAlive: Bool
        let hasBody: Bool
        var buffered: [HTTPClientRequestPart] = []
        var ended = false

        init(head: HTTPRequestHead, backend: BackendGroup?, keepAlive: Bool, hasBody: Bool) {
            self.head = head
            self.backend = backend
            self.keepAlive = keepAlive
            self.hasBody = hasBody
        }
    }

    private enum State {
        case idle
        /// The plugin chain is deciding (inline, or on the worker pool for blocking plugins).
        case plugins(PendingRequest)
        /// The gateway answered itself and waits for the request's end (its body is read and dropped).
        case answered
        case proxying(Exchange)
        case closed
    }

    private var state: State = .idle
    private var context: ChannelHandlerContext?
    private var clientReadsHeld = false
    private var pendingClientRead = false
    /// The current request as plugins see it (nil when the listener has no plugins).
    private var pluginRequest: PluginRequest?
    private var requestBodyBytes: Int64 = 0
    /// The current request's body is chunked (the only transfer coding the validator lets through).
    private var requestChunked = false
    private var responseBodyBytes: Int64 = 0
    /// The request body's progress, checked every `body_timeout` while a body is being read.
    private var bodyRate: BodyRateCheck
    private var bodyTimer: Scheduled<Void>?
    /// Armed while the client leaves the connection unwritable (reads nothing of a response).
    private var sendTimer: Scheduled<Void>?
    /// The connection's one response-timeout timer and when it fires. It is not armed and cancelled per
    /// request (a scheduled task is several allocations and a heap insertion): it stays armed across
    /// keep-alive requests, and when it fires it looks at the current exchange's `responseDeadline`.
    private var responseTimer: Scheduled<Void>?
    private var responseTimerFires = NIODeadline.distantFuture

    private let listener: CompiledListener
    /// The configuration generation this connection started on; once a reload retires it, the connection
    /// closes after its current response so that the client reconnects to the new configuration.
    private let runtime: GatewayRuntime
    /// When the current request's head arrived (request duration metric).
    private var requestStarted = NIODeadline.uptimeNanoseconds(0)
    private let connection: ConnectionContext
    private let headGuard: RequestHeadGuard
    /// Told which method each response head answers (a response to HEAD has no body on the wire).
    private let responseEncoder: DownstreamResponseEncoder
    private let logger: Logger

    package init(
        listener: CompiledListener, runtime: GatewayRuntime, connection: ConnectionContext, headGuard: RequestHeadGuard,
        responseEncoder: DownstreamResponseEncoder, logger: Logger
    ) {
        self.listener = listener
        self.runtime = runtime
        self.connection = connection
        self.headGuard = headGuard
        self.responseEncoder = responseEncoder
        self.logger = logger
        self.bodyRate = BodyRateCheck(minimumRate: listener.limits.minBodyRate, windowNanoseconds: listener.limits.bodyTimeout.nanoseconds)
    }

    package func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    package func handlerRemoved(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        sendTimer?.cancel()
        responseTimer?.cancel()
        responseTimer = nil
        self.context = nil
    }

    // MARK: slow clients

    /// Starts checking the body of the request just received, window by window.
    private func watchBody() {
        guard let context else { return }
        bodyTimer?.cancel()
        _ = bodyRate.windowEnded()  // a fresh window
        bodyTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: listener.limits.bodyTimeout.timeAmount) { [self] in
            self.bodyWindowEnded()
        }
    }

    private func stopWatchingBody() {
        bodyTimer?.cancel()
        bodyTimer = nil
    }

    private func bodyWindowEnded() {
        bodyTimer = nil
        let waiting: Bool
        switch state {
        case .plugins(let pending): waiting = !pending.ended
        case .proxying(let exchange): waiting = !exchange.requestEnded
        default: waiting = false
        }
        guard waiting else { return }
        if clientReadsHeld { bodyRate.readsHeld() }
        guard bodyRate.windowEnded() else {
            bodyTimer = context?.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: listener.limits.bodyTimeout.timeAmount) { [self] in
                self.bodyWindowEnded()
            }
            return
        }
        listener.metrics.clientTimedOut(.body)
        logger.warning("closing a client that sends its request body too slowly", metadata: [
            "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "body_bytes": "\(requestBodyBytes)",
            "body_timeout": "\(listener.limits.bodyTimeout)", "min_body_rate": "\(listener.limits.minBodyRate)",
        ])
        switch state {
        case .plugins(let pending):
            answer(.requestTimeout, "request body timeout\n", head: pending.head, close: true)
        case .proxying(let exchange):
            abortExchange(exchange)
            if exchange.responseStarted { closeClient(cutOffFrom: exchange) } else { answer(.requestTimeout, "request body timeout\n", head: exchange.clientHead, close: true) }
        default:
            break
        }
    }

    /// The client stopped reading: give it `send_timeout` to take bytes again.
    private func clientWritability(_ writable: Bool, context: ChannelHandlerContext) {
        if writable {
            sendTimer?.cancel()
            sendTimer = nil
        } else if sendTimer == nil {
            sendTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: listener.limits.sendTimeout.timeAmount) { [self] in
                self.sendTimedOut()
            }
        }
    }

    private func sendTimedOut() {
        sendTimer = nil
        guard let context, !context.channel.isWritable else { return }
        listener.metrics.clientTimedOut(.send)
        logger.warning("closing a client that does not read its response", metadata: [
            "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "response_bytes": "\(responseBodyBytes)",
            "send_timeout": "\(listener.limits.sendTimeout)",
        ])
        if case .proxying(let exchange) = state {
            abortExchange(exchange)
            closeClient(cutOffFrom: exchange)
        } else {
            closeClient()
        }
    }

    // MARK: client side

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receivedHead(head, context: context)
        case .body(let body): receivedBody(body, context: context)
        case .end: receivedEnd(context: context)
        }
    }

    private func receivedHead(_ received: HTTPRequestHead, context: ChannelHandlerContext) {
        headGuard.headReceived()
        guard case .idle = state else { return }
        requestStarted = .now()
        var head = received
        if let refusal = RequestHeadValidator.normalise(&head, maxBodyBytes: listener.limits.maxBodyBytes) {
            return answer(refusal.status, refusal.message, head: received, close: true)
        }
        requestChunked = head.headers.contains(name: "transfer-encoding")
        let hasBody = requestChunked || (head.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0) > 0
        let keepAlive = head.isKeepAlive
        requestBodyBytes = 0
        responseBodyBytes = 0
        if hasBody { watchBody() }
        let backend = listener.router.route(hostHeader: head.headers.first(name: "host"), uri: head.uri, method: head.method.rawValue)
        if let chain = listener.plugins {
            // Plugins see the request without its hop-by-hop headers: a client naming a header in `Connection`
            // must not be able to remove what a plugin sets (an identity header) on the way to the backend.
            var visible = head
            ProxyHeaders.removeHopByHop(&visible.headers)
            let request = PluginRequest(connection: connection, head: visible)
            request.backendName = backend?.name
            pluginRequest = request
            let pending = PendingRequest(head: head, backend: backend, keepAlive: keepAlive, hasBody: hasBody)
            state = .plugins(pending)
            holdClientReads(true)
            chain.runRequestHeaders(request, on: context.eventLoop) { [self] outcome in
                self.pluginsFinished(outcome, pending: pending, request: request)
            }
            return
        }
        dispatch(head, backend: backend, keepAlive: keepAlive, hasBody: hasBody, buffered: [], ended: false)
    }

    private func pluginsFinished(_ outcome: PluginChain.Outcome, pending: PendingRequest, request: PluginRequest) {
        guard case .plugins(let current) = state, current === pending else { return }
        let close = !pending.keepAlive || (pending.hasBody && !pending.ended)
        switch outcome {
        case .proceed:
            dispatch(request.head, backend: pending.backend, keepAlive: pending.keepAlive, hasBody: pending.hasBody, buffered: pending.buffered,
                     ended: pending.ended, hopByHopRemoved: !request.addedHopByHop)
        case .answered:
            let answer = request.answer!
            respond(HTTPResponseStatus(statusCode: answer.status), body: answer.body, headers: answer.headers, head: pending.head, close: close)
        case .failed(let plugin, _):
            self.answer(.internalServerError, "request refused: plugin '\(plugin)' failed\n", head: pending.head, close: close)
        }
    }

    /// Sends the request on to its backend (or answers 404/503).
    private func dispatch(
        _ head: HTTPRequestHead, backend: BackendGroup?, keepAlive: Bool, hasBody: Bool, buffered: [HTTPClientRequestPart], ended: Bool,
        hopByHopRemoved: Bool = false
    ) {
        guard let context else { return }
        guard let backend else {
            return answer(.notFound, "no route for this request\n", head: head, close: (hasBody && !ended) || !keepAlive)
        }
        guard let first = backend.balancer.pick(clientIP: connection.remoteIP, now: .now()) else {
            let reason = backend.servers.isEmpty ? "no server in backend" : "no healthy server in backend"
            return answer(.serviceUnavailable, "\(reason) '\(backend.name)'\n", head: head, close: (hasBody && !ended) || !keepAlive)
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        let upstream = ProxyHeaders.upstreamRequest(
            head, clientIP: connection.remoteIP, scheme: connection.isTLS ? "https" : "http", localPort: connection.localAddress?.port,
            hasBody: hasBody, hopByHopRemoved: hopByHopRemoved
        )
        let exchange = Exchange(clientHead: head, upstreamHead: upstream, backend: backend, serverIndex: first, keepAlive: keepAlive, hasBody: hasBody)
        exchange.buffered = buffered
        exchange.requestEnded = ended
        exchange.bodyBytes = requestBodyBytes
        state = .proxying(exchange)
        if requestChunked, !ended, requestBodyBytes <= Int64(listener.limits.chunkedBufferBytes), listener.limits.chunkedBufferBytes > 0 {
            // Read the chunked body whole first: a chunk framing error found on the way is answered 400 and
            // no byte of the request, not even its head, has gone to a backend (a pooled connection would
            // have taken the head at once).
            exchange.awaitingBody = true
            holdClientReads(false)
            return
        }
        holdClientReads(true)
        startAttempt(exchange)
    }

    /// Ends the wait for a chunked body (complete, or past `chunked_buffer_bytes`): the request goes on.
    private func stopAwaitingBody(_ exchange: Exchange) {
        exchange.awaitingBody = false
        holdClientReads(true)
        startAttempt(exchange)
    }

    private func receivedBody(_ body: ByteBuffer, context: ChannelHandlerContext) {
        requestBodyBytes += Int64(body.readableBytes)
        bodyRate.received(body.readableBytes)
        if case .plugins(let pending) = state {
            if requestBodyBytes > listener.limits.maxBodyBytes {
                return answer(.payloadTooLarge, "request body larger than \(listener.limits.maxBodyBytes) bytes\n", head: pending.head, close: true)
            }
            pending.buffered.append(.body(.byteBuffer(body)))
            return
        }
        guard case .proxying(let exchange) = state else { return }  // answered: drop the body
        exchange.bodyBytes += Int64(body.readableBytes)
        if exchange.bodyBytes > listener.limits.maxBodyBytes {
            abortExchange(exchange)
            if !exchange.responseStarted {
                answer(.payloadTooLarge, "request body larger than \(listener.limits.maxBodyBytes) bytes\n", head: exchange.clientHead, close: true)
            } else {
                closeClient(cutOffFrom: exchange)
            }
            return
        }
        if let backendConnection = exchange.connection {
            backendConnection.write(.body(.byteBuffer(body)), flush: false)
            if !backendConnection.isWritable { holdClientReads(true) }
        } else {
            exchange.buffered.append(.body(.byteBuffer(body)))
            if exchange.awaitingBody, exchange.bodyBytes > Int64(listener.limits.chunkedBufferBytes) { stopAwaitingBody(exchange) }
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        stopWatchingBody()
        switch state {
        case .answered:
            state = .idle
            headGuard.awaitNextHead()
        case .plugins(let pending):
            pending.ended = true
            pending.buffered.append(.end(nil))
        case .proxying(let exchange):
            exchange.requestEnded = true
            if let backendConnection = exchange.connection {
                backendConnection.write(.end(nil), flush: true)
                startResponseTimer(exchange)
            } else {
                exchange.buffered.append(.end(nil))
                if exchange.awaitingBody { stopAwaitingBody(exchange) }
            }
        case .idle, .closed:
            break
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { exchange.connection?.flush() }
        context.fireChannelReadComplete()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritability(context.channel.isWritable, context: context)
        if case .proxying(let exchange) = state {
            exchange.connection?.holdReads(!context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        stopWatchingBody()
        sendTimer?.cancel()
        sendTimer = nil
        if case .proxying(let exchange) = state { abortExchange(exchange) }
        state = .closed
        completePlugins(backendServer: nil, aborted: true)
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Malformed requests (HTTPParserError) were answered with 400 by NIO's protocol error handler in front.
        if case .proxying(let exchange) = state { abortExchange(exchange) }
        state = .closed
        logger.debug("client connection error", metadata: ["client": "\(connection.remoteAddress.text)", "error": "\(error)"])
        context.close(promise: nil)
    }

    package func read(context: ChannelHandlerContext) {
        if clientReadsHeld {
            pendingClientRead = true
        } else {
            context.read()
        }
    }

    private func holdClientReads(_ hold: Bool) {
        let wasHeld = clientReadsHeld
        clientReadsHeld = hold
        if hold {
            bodyRate.readsHeld()
        } else if wasHeld, bodyTimer != nil {
            // The gateway reads the body again: the client's window starts now (the held time never counts).
            watchBody()
        }
        if !hold, pendingClientRead, let context {
            pendingClientRead = false
            context.read()
        }
    }

    // MARK: backend side

    private func startAttempt(_ exchange: Exchange) {
        guard let context else { return }
        exchange.attempts += 1
        let server = exchange.server
        if let pooled = server.pool.take(on: context.eventLoop) {
            attach(pooled, to: exchange)
            return
        }
        // The connect future completes on this channel's loop (ClientBootstrap(group: eventLoop)): isolated.
        exchange.backend.connect(to: server, on: context.eventLoop).assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            if case .success = result { server.connectSucceeded() }
            guard case .proxying(let current) = self.state, current === exchange else {
                if case .success(let orphan) = result { orphan.value.channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let backendConnection):
                self.attach(backendConnection.value, to: exchange)
            case .failure(let error):
                self.connectFailed(exchange, error: error)
            }
        }
    }

    private func connectFailed(_ exchange: Exchange, error: any Error) {
        let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { return true } else { return false } } ?? false
        let server = exchange.server
        (timedOut ? server.metrics.connectTimeouts : server.metrics.connectErrors).increment()
        logger.warning("backend connect failed", metadata: [
            "backend": "\(exchange.backend.name)", "server": "\(server.address)", "error": "\(error)",
        ])
        if server.connectFailed() {
            logger.warning("backend server ejected after consecutive connection failures", metadata: [
                "backend": "\(exchange.backend.name)", "server": "\(server.address)",
                "eject_for": "\(server.passive.map { "\($0.ejectFor)" } ?? "?")",
            ])
        }
        if exchange.attempts < exchange.backend.servers.count, let next = exchange.backend.balancer.next(after: exchange.serverIndex, now: .now()) {
            exchange.serverIndex = next
            return startAttempt(exchange)
        }
        if timedOut {
            failExchange(exchange, .gatewayTimeout, "timed out connecting to backend '\(exchange.backend.name)'\n")
        } else {
            failExchange(exchange, .badGateway, "could not connect to backend '\(exchange.backend.name)'\n")
        }
    }

    private func attach(_ backendConnection: BackendConnection, to exchange: Exchange) {
        exchange.connection = backendConnection
        backendConnection.delegate = self
        backendConnection.requestsServed += 1
        if !exchange.countedActive {
            exchange.countedActive = true
            exchange.server.activeRequests.wrappingIncrement(ordering: .relaxed)
        }
        backendConnection.write(.head(exchange.upstreamHead), flush: false)
        for part in exchange.buffered { backendConnection.write(part, flush: false) }
        exchange.buffered.removeAll()
        backendConnection.flush()
        backendConnection.holdReads(!(context?.channel.isWritable ?? true))
        if exchange.requestEnded { startResponseTimer(exchange) }
        holdClientReads(exchange.requestEnded || !backendConnection.isWritable)
    }

    /// response_timeout counts from the moment the whole request was handed to the backend, so a slow upload
    /// is not mistaken for a slow backend.
    private func startResponseTimer(_ exchange: Exchange) {
        guard exchange.responseDeadline == nil, !exchange.responseStarted else { return }
        let deadline = NIODeadline.now() + exchange.backend.responseTimeout
        exchange.responseDeadline = deadline
        // The armed timer fires at or before this deadline: it will re-arm for the rest when it fires.
        if responseTimer != nil, responseTimerFires <= deadline { return }
        armResponseTimer(at: deadline)
    }

    private func armResponseTimer(at deadline: NIODeadline) {
        guard let context else { return }
        responseTimer?.cancel()
        responseTimerFires = deadline
        responseTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [weak self] in
            self?.responseTimerFired()
        }
    }

    private func responseTimerFired() {
        responseTimer = nil
        guard case .proxying(let exchange) = state, let deadline = exchange.responseDeadline, !exchange.responseStarted else { return }
        guard deadline <= .now() else { return armResponseTimer(at: deadline) }
        exchange.responseDeadline = nil
        logger.warning("backend response timeout", metadata: ["backend": "\(exchange.backend.name)", "server": "\(exchange.server.address)"])
        exchange.server.metrics.responseTimeouts.increment()
        failExchange(exchange, .gatewayTimeout, "backend '\(exchange.backend.name)' did not answer in time\n")
    }

    package func backendRead(_ part: HTTPClientResponsePart) {
        guard case .proxying(let exchange) = state, let context else { return }
        switch part {
        case .head(let head):
            if head.status == .switchingProtocols {
                // The gateway never asks a backend to switch protocols (Upgrade is hop-by-hop and removed), and
                // NIO's decoder stops parsing after a 101: nothing more on this connection is HTTP.
                return backendProtocolError(exchange, "unsolicited 101 Switching Protocols")
            }
            if exchange.responseStarted {
                return backendProtocolError(exchange, "a second response head in one exchange")
            }
            // Other 1xx (100, 102, 103) are dropped by NIO's decoder; should one arrive, it is dropped here too:
            // the gateway answered Expect: 100-continue itself.
            if head.status.code < 200 { return }
            exchange.responseDeadline = nil
            exchange.responseStarted = true
            exchange.responseKeepAlive = head.isKeepAlive
            // An HTTP/1.0 client cannot read a chunked body: without a length, the end of the body is the close.
            let unframedFor10 = exchange.clientHead.version.minor == 0 && !head.headers.contains(name: "content-length")
                && exchange.clientHead.method != .HEAD && head.status != .noContent && head.status != .notModified
            let close = !exchange.keepAlive || !exchange.requestEnded || runtime.isRetired || unframedFor10
            exchange.closeAfterResponse = close
            exchange.status = Int(head.status.code)
            let downstream = ProxyHeaders.downstreamResponse(head, version: exchange.clientHead.version, close: close)
            let final = runResponsePlugins(downstream)
            responseEncoder.respondingTo(exchange.clientHead.method)
            context.write(wrapOutboundOut(.head(final)), promise: nil)
        case .body(let body):
            guard exchange.responseStarted else { return backendProtocolError(exchange, "a response body before its head") }
            responseBodyBytes += Int64(body.readableBytes)
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            if !context.channel.isWritable {
                exchange.connection?.holdReads(true)
            }
        case .end:
            guard exchange.responseStarted else { return backendProtocolError(exchange, "a response end without a final response head") }
            finishExchange(exchange, context: context)
        }
    }

    /// A backend answer that cannot belong to this exchange ends the exchange, never the process: the backend
    /// connection is closed (it is not returned to the pool), the client gets 502 if it has no response head
    /// yet and is disconnected otherwise, and the error is logged and counted per server.
    private func backendProtocolError(_ exchange: Exchange, _ what: String) {
        let server = exchange.server
        server.metrics.protocolErrors.increment()
        logger.warning("backend protocol error", metadata: [
            "backend": "\(exchange.backend.name)", "server": "\(server.address)", "error": "\(what)",
        ])
        if exchange.responseStarted {
            abortExchange(exchange)
            closeClient(cutOffFrom: exchange)
        } else {
            failExchange(exchange, .badGateway, "backend '\(exchange.backend.name)' sent an invalid response\n")
        }
    }

    /// Flush once per backend read burst, not per part: fewer syscalls, and nothing left unflushed.
    package func backendReadComplete() {
        context?.flush()
    }

    package func backendFailed(_ error: any Error) {
        guard case .proxying(let exchange) = state else { return }
        logger.warning("backend connection error", metadata: [
            "backend": "\(exchange.backend.name)", "server": "\(exchange.server.address)", "error": "\(error)",
        ])
        backendLost(exchange)
    }

    package func backendClosed() {
        guard case .proxying(let exchange) = state else { return }
        backendLost(exchange)
    }

    package func backendWritabilityChanged(isWritable: Bool) {
        guard case .proxying(let exchange) = state else { return }
        if isWritable, !exchange.requestEnded { holdClientReads(false) }
        if !isWritable { holdClientReads(true) }
    }

    private func backendLost(_ exchange: Exchange) {
        guard let backendConnection = exchange.connection else { return }
        exchange.connection = nil
        backendConnection.delegate = nil
        if exchange.responseStarted {
            // The client already has part of the response: closing is the only honest signal.
            releaseActive(exchange)
            closeClient(cutOffFrom: exchange)
            return
        }
        // A reused keep-alive connection the backend closed before answering: safe to retry once on a fresh one
        // when the request had no body (nothing the backend could have half-processed that we cannot resend).
        if backendConnection.requestsServed > 1, !exchange.hasBody, exchange.attempts <= exchange.backend.servers.count {
            exchange.responseDeadline = nil
            exchange.buffered = exchange.requestEnded ? [.end(nil)] : []
            return startAttempt(exchange)
        }
        failExchange(exchange, .badGateway, "backend '\(exchange.backend.name)' closed the connection without a complete response\n")
    }

    private func finishExchange(_ exchange: Exchange, context: ChannelHandlerContext) {
        exchange.responseDeadline = nil
        releaseActive(exchange)
        if let backendConnection = exchange.connection {
            exchange.connection = nil
            backendConnection.delegate = nil
            if exchange.requestEnded && exchange.responseKeepAlive {
                backendConnection.holdReads(false)
                exchange.server.pool.giveBack(backendConnection)
            } else {
                backendConnection.channel.close(promise: nil)
            }
        }
        let keepOpen = exchange.keepAlive && exchange.requestEnded && !exchange.closeAfterResponse
        state = keepOpen ? .idle : .closed
        let server = exchange.server.address
        let request = pluginRequest
        pluginRequest = nil
        let status = exchange.status
        let started = requestStarted
        let (bytesIn, bytesOut) = (requestBodyBytes, responseBodyBytes)
        // Before writing the end: with pipelining, that write delivers the next request synchronously
        // (HTTPServerPipelineHandler), which must find the connection already waiting for a head.
        if keepOpen {
            holdClientReads(false)
            headGuard.awaitNextHead()
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolatedUnsafeUnchecked().whenComplete { [weak self] result in
            // on_complete runs once the response is out; a write that failed (the client closed, or was closed
            // for not reading) is a cut-off response, never a complete one.
            let written: Bool
            if case .success = result { written = true } else { written = false }
            if written { self?.listener.metrics.requestCompleted(status: status, started: started) }
            request?.responseIncomplete = !written
            self?.complete(request, backendServer: server, aborted: !written, bytesIn: bytesIn, bytesOut: bytesOut)
            if !keepOpen { self?.closeClient() }
        }
    }

    private func failExchange(_ exchange: Exchange, _ status: HTTPResponseStatus, _ body: String) {
        abortExchange(exchange)
        answer(status, body, head: exchange.clientHead, close: !exchange.requestEnded || !exchange.keepAlive)
    }

    /// Drops the backend side of an exchange that will not complete normally.
    private func abortExchange(_ exchange: Exchange) {
        exchange.responseDeadline = nil
        releaseActive(exchange)
        if let backendConnection = exchange.connection {
            exchange.connection = nil
            backendConnection.delegate = nil
            backendConnection.channel.close(promise: nil)
        }
    }

    private func releaseActive(_ exchange: Exchange) {
        if exchange.countedActive {
            exchange.countedActive = false
            exchange.server.activeRequests.wrappingDecrement(ordering: .relaxed)
        }
    }

    // MARK: responses from the gateway itself

    private func answer(_ status: HTTPResponseStatus, _ text: String, head: HTTPRequestHead, close: Bool) {
        respond(status, body: Array(text.utf8), headers: [("content-type", "text/plain; charset=utf-8")], head: head, close: close)
    }

    /// Answers the request from the gateway itself (an error, or a plugin's answer).
    private func respond(_ status: HTTPResponseStatus, body: [UInt8], headers extra: [(String, String)], head: HTTPRequestHead, close requestedClose: Bool) {
        guard let context else { return }
        let close = requestedClose || runtime.isRetired
        var headers = HTTPHeaders(extra)
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        if close { headers.replaceOrAdd(name: "connection", value: "close") }
        let requestEnded: Bool
        switch state {
        case .proxying(let exchange): requestEnded = exchange.requestEnded
        case .plugins(let pending): requestEnded = pending.ended
        default: requestEnded = false
        }
        if close {
            state = .closed
        } else if requestEnded {
            state = .idle
            headGuard.awaitNextHead()
        } else {
            state = .answered
        }
        let responseHead = runResponsePlugins(HTTPResponseHead(version: head.version, status: status, headers: headers))
        responseBodyBytes = Int64(body.count)
        responseEncoder.respondingTo(head.method)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let request = pluginRequest
        pluginRequest = nil
        let started = requestStarted
        let (bytesIn, bytesOut) = (requestBodyBytes, responseBodyBytes)
        // Before the write that may deliver a pipelined request synchronously (see finishExchange).
        if !close {
            holdClientReads(false)
        }
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolatedUnsafeUnchecked().whenComplete { [weak self] result in
            let written: Bool
            if case .success = result { written = true } else { written = false }
            if written { self?.listener.metrics.requestCompleted(status: Int(status.code), started: started) }
            request?.responseIncomplete = !written
            self?.complete(request, backendServer: nil, aborted: !written, bytesIn: bytesIn, bytesOut: bytesOut)
            if close { self?.closeClient() }
        }
    }

    private func closeClient() {
        state = .closed
        completePlugins(backendServer: nil, aborted: false)
        context?.close(promise: nil)
    }

    /// Closes a client whose response head from `exchange`'s backend already went out: on_complete sees the
    /// server that was answering and GW_ATTR_RESPONSE_INCOMPLETE, so an audit line never shows a truncated
    /// response as a complete one.
    private func closeClient(cutOffFrom exchange: Exchange) {
        pluginRequest?.responseIncomplete = true
        state = .closed
        completePlugins(backendServer: exchange.server.address, aborted: false)
        context?.close(promise: nil)
    }

    // MARK: plugin phases

    /// Lets the plugins the request reached change the response head.
    private func runResponsePlugins(_ head: HTTPResponseHead) -> HTTPResponseHead {
        guard let request = pluginRequest, let chain = listener.plugins else { return head }
        request.responseHead = head
        chain.runResponseHeaders(request)
        return request.responseHead ?? head
    }

    /// Runs on_complete for the current request, if it has not run yet.
    private func completePlugins(backendServer: String?, aborted: Bool) {
        let request = pluginRequest
        pluginRequest = nil
        complete(request, backendServer: backendServer, aborted: aborted)
    }

    private func complete(_ request: PluginRequest?, backendServer: String?, aborted: Bool, bytesIn: Int64? = nil, bytesOut: Int64? = nil) {
        guard let request, let chain = listener.plugins else { return }
        request.bytesReceived = bytesIn ?? requestBodyBytes
        request.bytesSent = bytesOut ?? responseBodyBytes
        request.backendServer = backendServer
        request.clientAborted = aborted
        if request.responseHead == nil { request.responseHead = HTTPResponseHead(version: request.head.version, status: .init(statusCode: 0)) }
        chain.runComplete(request)
    }
}
