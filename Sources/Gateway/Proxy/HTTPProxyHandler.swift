import Logging
import NIOCore
import NIOHTTP1

/// The request path of one client connection: route, (plugin chain seam), pick a server, stream the request to
/// it and the response back, with backpressure both ways. One request at a time; `HTTPServerPipelineHandler`
/// in front of it queues pipelined requests and handles quiescing on shutdown.
final class HTTPProxyHandler: ChannelDuplexHandler, BackendConnectionDelegate {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// One request on its way through the gateway.
    private final class Exchange {
        let clientHead: HTTPRequestHead
        let upstreamHead: HTTPRequestHead
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
        var timeout: Scheduled<Void>?
        var countedActive = false

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

    private enum State {
        case idle
        /// The gateway answered itself and waits for the request's end (its body is read and dropped).
        case answered
        case proxying(Exchange)
        case closed
    }

    private var state: State = .idle
    private var context: ChannelHandlerContext?
    private var clientReadsHeld = false
    private var pendingClientRead = false

    private let listener: CompiledListener
    private let connection: ConnectionContext
    private let headGuard: RequestHeadGuard
    private let logger: Logger

    init(listener: CompiledListener, connection: ConnectionContext, headGuard: RequestHeadGuard, logger: Logger) {
        self.listener = listener
        self.connection = connection
        self.headGuard = headGuard
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    // MARK: client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): receivedHead(head, context: context)
        case .body(let body): receivedBody(body, context: context)
        case .end: receivedEnd(context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        headGuard.headReceived()
        guard case .idle = state else { return }
        let hasBody = head.headers.contains(name: "transfer-encoding")
            || (head.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0) > 0
        let keepAlive = head.isKeepAlive

        guard head.version.major == 1 else {
            return answer(.httpVersionNotSupported, "HTTP version not supported\n", head: head, close: true)
        }
        let hosts = head.headers[canonicalForm: "host"]
        if hosts.count > 1 || (head.version.minor >= 1 && hosts.isEmpty) {
            return answer(.badRequest, "missing or repeated Host header\n", head: head, close: true)
        }
        if let length = head.headers.first(name: "content-length").flatMap({ Int64($0) }), length > listener.limits.maxBodyBytes {
            return answer(.payloadTooLarge, "request body larger than \(listener.limits.maxBodyBytes) bytes\n", head: head, close: true)
        }
        guard let backend = listener.router.route(hostHeader: hosts.first.map(String.init), uri: head.uri, method: head.method.rawValue) else {
            return answer(.notFound, "no route for this request\n", head: head, close: hasBody || !keepAlive)
        }
        guard let first = backend.balancer.pick(clientIP: connection.remoteIP) else {
            return answer(.serviceUnavailable, "no server available in backend '\(backend.name)'\n", head: head, close: hasBody || !keepAlive)
        }
        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        let upstream = ProxyHeaders.upstreamRequest(
            head, clientIP: connection.remoteIP, scheme: connection.isTLS ? "https" : "http", localPort: connection.localAddress?.port
        )
        let exchange = Exchange(clientHead: head, upstreamHead: upstream, backend: backend, serverIndex: first, keepAlive: keepAlive, hasBody: hasBody)
        state = .proxying(exchange)
        holdClientReads(true)
        startAttempt(exchange)
    }

    private func receivedBody(_ body: ByteBuffer, context: ChannelHandlerContext) {
        guard case .proxying(let exchange) = state else { return }  // answered: drop the body
        exchange.bodyBytes += Int64(body.readableBytes)
        if exchange.bodyBytes > listener.limits.maxBodyBytes {
            abortExchange(exchange)
            if !exchange.responseStarted {
                answer(.payloadTooLarge, "request body larger than \(listener.limits.maxBodyBytes) bytes\n", head: exchange.clientHead, close: true)
            } else {
                closeClient()
            }
            return
        }
        if let backendConnection = exchange.connection {
            backendConnection.write(.body(.byteBuffer(body)), flush: false)
            if !backendConnection.isWritable { holdClientReads(true) }
        } else {
            exchange.buffered.append(.body(.byteBuffer(body)))
        }
    }

    private func receivedEnd(context: ChannelHandlerContext) {
        switch state {
        case .answered:
            state = .idle
            headGuard.awaitNextHead()
        case .proxying(let exchange):
            exchange.requestEnded = true
            if let backendConnection = exchange.connection {
                backendConnection.write(.end(nil), flush: true)
                startResponseTimer(exchange)
            } else {
                exchange.buffered.append(.end(nil))
            }
        case .idle, .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { exchange.connection?.flush() }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state {
            exchange.connection?.holdReads(!context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .proxying(let exchange) = state { abortExchange(exchange) }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Malformed requests (HTTPParserError) were answered with 400 by NIO's protocol error handler in front.
        if case .proxying(let exchange) = state { abortExchange(exchange) }
        state = .closed
        logger.debug("client connection error", metadata: ["client": "\(connection.remoteIP)", "error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if clientReadsHeld {
            pendingClientRead = true
        } else {
            context.read()
        }
    }

    private func holdClientReads(_ hold: Bool) {
        clientReadsHeld = hold
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
        exchange.backend.connect(to: server, on: context.eventLoop).whenComplete { [self] result in
            guard case .proxying(let current) = self.state, current === exchange else {
                if case .success(let orphan) = result { orphan.channel.close(promise: nil) }
                return
            }
            switch result {
            case .success(let backendConnection):
                self.attach(backendConnection, to: exchange)
            case .failure(let error):
                self.connectFailed(exchange, error: error)
            }
        }
    }

    private func connectFailed(_ exchange: Exchange, error: any Error) {
        let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { return true } else { return false } } ?? false
        logger.warning("backend connect failed", metadata: [
            "backend": "\(exchange.backend.name)", "server": "\(exchange.server.address)", "error": "\(error)",
        ])
        if exchange.attempts < exchange.backend.servers.count {
            exchange.serverIndex = exchange.backend.balancer.next(after: exchange.serverIndex)
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
        guard let context, exchange.timeout == nil, !exchange.responseStarted else { return }
        exchange.timeout = context.eventLoop.scheduleTask(in: exchange.backend.responseTimeout) { [weak self] in
            guard let self, case .proxying(let current) = self.state, current === exchange, !exchange.responseStarted else { return }
            self.logger.warning("backend response timeout", metadata: ["backend": "\(exchange.backend.name)", "server": "\(exchange.server.address)"])
            self.failExchange(exchange, .gatewayTimeout, "backend '\(exchange.backend.name)' did not answer in time\n")
        }
    }

    func backendRead(_ part: HTTPClientResponsePart) {
        guard case .proxying(let exchange) = state, let context else { return }
        switch part {
        case .head(let head):
            if head.status.code < 200 { return }  // 1xx: the gateway answered Expect itself
            exchange.timeout?.cancel()
            exchange.responseStarted = true
            exchange.responseKeepAlive = head.isKeepAlive
            let close = !exchange.keepAlive || !exchange.requestEnded
            let downstream = ProxyHeaders.downstreamResponse(head, version: exchange.clientHead.version, close: close)
            context.write(wrapOutboundOut(.head(downstream)), promise: nil)
        case .body(let body):
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            if !context.channel.isWritable {
                exchange.connection?.holdReads(true)
            }
        case .end:
            finishExchange(exchange, context: context)
        }
    }

    /// Flush once per backend read burst, not per part: fewer syscalls, and nothing left unflushed.
    func backendReadComplete() {
        context?.flush()
    }

    func backendFailed(_ error: any Error) {
        guard case .proxying(let exchange) = state else { return }
        logger.warning("backend connection error", metadata: [
            "backend": "\(exchange.backend.name)", "server": "\(exchange.server.address)", "error": "\(error)",
        ])
        backendLost(exchange)
    }

    func backendClosed() {
        guard case .proxying(let exchange) = state else { return }
        backendLost(exchange)
    }

    func backendWritabilityChanged(isWritable: Bool) {
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
            closeClient()
            return
        }
        // A reused keep-alive connection the backend closed before answering: safe to retry once on a fresh one
        // when the request had no body (nothing the backend could have half-processed that we cannot resend).
        if backendConnection.requestsServed > 1, !exchange.hasBody, exchange.attempts <= exchange.backend.servers.count {
            exchange.timeout?.cancel()
            exchange.timeout = nil
            exchange.buffered = exchange.requestEnded ? [.end(nil)] : []
            return startAttempt(exchange)
        }
        failExchange(exchange, .badGateway, "backend '\(exchange.backend.name)' closed the connection without a complete response\n")
    }

    private func finishExchange(_ exchange: Exchange, context: ChannelHandlerContext) {
        exchange.timeout?.cancel()
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
        let keepOpen = exchange.keepAlive && exchange.requestEnded
        state = keepOpen ? .idle : .closed
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [weak self] _ in
            if !keepOpen { self?.closeClient() }
        }
        if keepOpen {
            holdClientReads(false)
            headGuard.awaitNextHead()
        }
    }

    private func failExchange(_ exchange: Exchange, _ status: HTTPResponseStatus, _ body: String) {
        abortExchange(exchange)
        answer(status, body, head: exchange.clientHead, close: !exchange.requestEnded || !exchange.keepAlive)
    }

    /// Drops the backend side of an exchange that will not complete normally.
    private func abortExchange(_ exchange: Exchange) {
        exchange.timeout?.cancel()
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
        guard let context else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(text.utf8.count))
        if close { headers.add(name: "connection", value: "close") }
        let requestEnded: Bool
        if case .proxying(let exchange) = state { requestEnded = exchange.requestEnded } else { requestEnded = false }
        if close {
            state = .closed
        } else if requestEnded {
            state = .idle
            headGuard.awaitNextHead()
        } else {
            state = .answered
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: text)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [weak self] _ in
            if close { self?.closeClient() }
        }
        if !close {
            holdClientReads(false)
        }
    }

    private func closeClient() {
        state = .closed
        context?.close(promise: nil)
    }
}
