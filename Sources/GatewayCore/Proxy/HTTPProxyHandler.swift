import Logging
import NIOCore
import NIOHTTP1

/// The request path of one client connection: the I/O half of it. `ProxyStateMachine` decides (one request at a
/// time, when a request may leave, retries, answers, closes); this handler feeds it events and carries out its
/// actions: parsing (`HTTP1RequestParser`), routing, the plugin chain, backend connections and pools, timers,
/// writes, with backpressure both ways. Pipelined requests wait in the parser, unparsed, until the response before
/// them is done (one request at a time, answered in order), and a shutdown's `ChannelShouldQuiesceEvent` makes the
/// request in progress the last: the work of NIO's `HTTPServerPipelineHandler`, without a handler that unwraps
/// every request and response part.
package final class HTTPProxyHandler: ChannelDuplexHandler, BackendConnectionDelegate {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTPServerResponsePart

    private var machine: ProxyStateMachine
    private var context: ChannelHandlerContext?
    /// The channel's synchronous options, fetched once (making them is ~370 instructions) for the buffered
    /// byte count each response's end reads; released with the context.
    private var syncOptions: (any NIOSynchronousChannelOptions)?
    private var clientReadsHeld = false
    private var pendingClientRead = false

    /// What the client sent, parsed only as far as the machine takes parts: the bytes of a pipelined request
    /// wait in it, unparsed, until the response before it is done (one request at a time, answered in order),
    /// and nothing is read while they wait.
    private var parser: HTTP1RequestParser
    private var draining = false
    /// The parser returned everything it could from what it has: only then is more read (bytes of a pipelined
    /// request that wait in it are parsed first, so what a client sends ahead is never read faster than it is
    /// served).
    private var parserNeedsInput = true

    // The current request's resources; the machine holds its state.
    /// The request head as received (normalised once it passed validation): version and method of every answer.
    private var clientHead: ClientRequestHead?
    /// Where the router sent the current request (nil: no route).
    private var route: BackendGroup?
    /// The route's servers when the request was dispatched: retries index into these, whatever DNS changes.
    private var members: BackendMembers?
    private var requestHasBody = false
    /// The current request is a WebSocket upgrade the listener tunnels: the `Sec-WebSocket-Accept` its backend
    /// must answer (`WebSocketUpgrade.expectedAccept`).
    private var upgradeAccept: String?
    /// The open tunnel, once the backend answered an upgrade with 101: both connections then carry bytes as they
    /// are, until either closes or the tunnel idles for `websocket.idle_timeout`.
    private var tunnel: TunnelTraffic?
    private var tunnelTimer: Scheduled<Void>?
    /// The head that goes to the backend, made once the request is dispatched.
    /// As bytes (`.serializedHead`) when `ProxyHeaders.writeUpstreamRequest` made it, else `.head`.
    private var upstreamHead: UpstreamRequestPart?
    /// The server of the current attempt.
    private var server: BackendServer?
    /// The server whose `activeRequests` counts the current request.
    private var activeServer: BackendServer?
    /// The backend connection attached to the current request.
    private var backendConnection: BackendConnection?
    private var responseStatus = 0
    /// A response head went to the client and its end has not: a 400 for a request NIO's decoder cannot parse
    /// can only be sent between responses.
    private var responseOpen = false
    /// The current request as plugins see it (nil when the listener has no plugins).
    private var pluginRequest: PluginRequest?
    /// Requests answered to a verified client not yet added to the console's count (`countForConsole`).
    private var uncountedRequests = 0
    private var countedFirstRequest = false
    private var requestBodyBytes: Int64 = 0
    private var responseBodyBytes: Int64 = 0
    /// The request body's progress, checked every `body_timeout` while a body is being read.
    private var bodyRate: BodyRateCheck
    private var bodyTimer: Scheduled<Void>?
    /// Armed while the client leaves the connection unwritable (reads nothing of a response).
    private var sendTimer: Scheduled<Void>?
    /// The connection's one response-timeout timer and when it fires. It is not armed and cancelled per
    /// request (a scheduled task is several allocations and a heap insertion): it stays armed across
    /// keep-alive requests, and when it fires the machine compares it with the current exchange's deadline.
    private var responseTimer: Scheduled<Void>?
    private var responseTimerFires = NIODeadline.distantFuture

    /// The listener and the configuration generation this connection is served by: the ones it started on,
    /// until a reload retires them. Then, at its next request, the connection moves on to the current generation
    /// of its listener (its plugin chain, routes and backends) once its client verifies under the new trust
    /// settings, and is refused (403, closed) when it no longer does (`recheckClient`). A connection whose
    /// listener was removed, or that is draining for shutdown, closes after its current response instead.
    private var listener: CompiledListener
    private var runtime: GatewayRuntime
    /// Where the current generation of this connection's listener is found, and the box in which the server
    /// counts the connection (nil in tests that build a handler alone: the connection then never moves).
    private let slot: ListenerSlot?
    private let generation: NIOLoopBoundBox<GatewayRuntime>?
    /// The generation was retired and its listener's current one cannot serve this connection (another protocol
    /// on the same address): it closes after its current response.
    private var stranded = false
    /// Responses whose end is being written, whose on_complete has not run yet (see `recheckClient`).
    private var pendingCompletions = 0
    /// When the current request's head arrived (request duration metric).
    private var requestStarted = NIODeadline.uptimeNanoseconds(0)
    private let connection: ConnectionContext
    /// The connection this handler serves (its client identity), read on the channel's event loop only.
    package var connectionContext: ConnectionContext { connection }
    /// The HTTP/1 connection's head guard; nil on an HTTP/2 stream (HEADERS arrive whole, and the connection's
    /// timers are `HTTP2Connection`'s).
    private let headGuard: RequestHeadGuard?
    /// This handler serves one HTTP/2 stream: its request parts come from `HTTP2StreamAdapter` (`streamPart`),
    /// its response parts go to it as `HTTPServerResponsePart`s (the `responseEncoder` is not in its pipeline),
    /// and the connection's state (plugin data, the console's count, the move to a reloaded configuration) is not
    /// its own.
    private let isStream: Bool
    /// On an HTTP/2 stream: the connection's client is no longer admitted; the connection closes after this
    /// stream's answer.
    private var refusedConnection = false
    /// Told which method each response head answers (a response to HEAD has no body on the wire).
    private let responseEncoder: DownstreamResponseEncoder
    private let logger: Logger

    package init(
        listener: CompiledListener, runtime: GatewayRuntime, connection: ConnectionContext, headGuard: RequestHeadGuard?,
        responseEncoder: DownstreamResponseEncoder, logger: Logger, slot: ListenerSlot? = nil, generation: NIOLoopBoundBox<GatewayRuntime>? = nil,
        isStream: Bool = false
    ) {
        self.isStream = isStream
        self.listener = listener
        self.runtime = runtime
        self.slot = slot
        self.generation = generation
        if !isStream, listener.tls?.revocation != nil { connection.revocationEpoch = RevocationStore.shared.epoch }
        self.connection = connection
        self.headGuard = headGuard
        self.responseEncoder = responseEncoder
        self.logger = logger
        self.bodyRate = BodyRateCheck(minimumRate: listener.limits.minBodyRate, windowNanoseconds: listener.limits.bodyTimeout.nanoseconds)
        self.machine = ProxyStateMachine(limits: .init(maxBodyBytes: listener.limits.maxBodyBytes, chunkedBufferBytes: listener.limits.chunkedBufferBytes))
        self.parser = HTTP1RequestParser(maxHeadBytes: listener.limits.maxHeaderBytes, maxFields: listener.limits.maxHeaderCount)
    }

    /// The attached backend connection must not keep a pointer to a handler that is gone (its `delegate` is
    /// not retained). Every path that ends an exchange clears both already, so this finds nil; it is the last
    /// guard, and touches nothing else (the handler may be released off its event loop).
    deinit { backendConnection?.delegate = nil }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        syncOptions = context.channel.syncOptions
    }
    package func handlerRemoved(context: ChannelHandlerContext) {
        bodyTimer?.cancel()
        sendTimer?.cancel()
        responseTimer?.cancel()
        responseTimer = nil
        tunnelTimer?.cancel()
        tunnelTimer = nil
        self.context = nil
        syncOptions = nil
        // The connection ends: plugins' per-connection data goes now, after the last on_complete (channelInactive)
        // and before the connection stops counting for its configuration (the close future, after this), so
        // before any instance it belongs to can be destroyed. (A stream's connection goes on: `HTTP2Connection`
        // releases it.)
        if !isStream { connection.releasePluginData() }
    }


    // MARK: carrying out the machine's actions

    private func perform(_ action: ProxyStateMachine.Action) {
        switch action {
        case .none:
            break
        case .runPlugins(let id):
            runPlugins(id)
        case .dispatch:
            dispatch()
        case .startAttempt(let attempt, let server, let sendContinue):
            if sendContinue { sendContinueResponse() }
            holdClientReads(true)
            startAttempt(attempt, serverIndex: server)
        case .readBody(let sendContinue):
            if sendContinue { sendContinueResponse() }
            holdClientReads(false)
        case .sendRequest(let parts, let deadline):
            sendRequest(parts, armResponseTimer: deadline)
        case .discardConnection:
            break  // handled where a connection arrives
        case .forwardBody(let body):
            guard let backendConnection else { return }
            backendConnection.write(.body(.byteBuffer(body)), flush: false)
            if !backendConnection.isWritable { holdClientReads(true) }
        case .forwardEnd(let deadline):
            backendConnection?.write(.end(nil), flush: true)
            if let deadline { armResponseTimer(before: deadline) }
        case .rearmResponseTimer(let deadline):
            armResponseTimer(at: deadline)
        case .writeResponseHead, .writeResponseBody:
            break  // carried out where the response part is at hand
        case .finish(let reuseBackend, let keepOpen):
            finishExchange(reuseBackend: reuseBackend, keepOpen: keepOpen)
        case .openTunnel:
            openTunnel()
        case .answer(let answer, let close, let abortBackend):
            if abortBackend { abortExchange() }
            self.answer(answer, close: close)
        case .backendProtocolError(let what, let answer, let close):
            if let server {
                server.metrics.protocolErrors.increment()
                logger.warning("backend protocol error", metadata: [
                    "backend": "\(route?.name ?? "?")", "server": "\(server.address)", "error": "\(what)",
                ])
            }
            abortExchange()
            if answer { self.answer(.invalidResponse, close: close) } else { closeClient(cutOff: true) }
        case .cutOff(let abortBackend):
            if abortBackend { abortExchange() }
            closeClient(cutOff: true)
        case .close(let abortBackend):
            if abortBackend { abortExchange() }
            closeClient(cutOff: false)
        case .awaitNextHead:
            headGuard?.awaitNextHead(pending: parser.buffered)
            drain()
        }
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
        guard machine.isReadingBody else { return }
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
        perform(machine.bodyTimedOut())
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
        if tunnel != nil {
            logger.warning("closing a tunnel whose client does not read", metadata: [
                "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "send_timeout": "\(listener.limits.sendTimeout)",
            ])
            return closeTunnel(flushFirst: false)
        }
        logger.warning("closing a client that does not read its response", metadata: [
            "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "response_bytes": "\(responseBodyBytes)",
            "send_timeout": "\(listener.limits.sendTimeout)",
        ])
        perform(machine.sendTimedOut())
    }

    // MARK: client side

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !machine.isClosed else { return }
        parser.append(unwrapInboundIn(data))
        parserNeedsInput = false
        drain()
    }

    private func deliver(_ part: HTTP1RequestParser.Part) {
        switch part {
        case .head(let head): receivedHead(head)
        case .body(let body): receivedBody(body)
        case .end:
            stopWatchingBody()
            perform(machine.requestEnd(now: .now()))
        }
    }

    /// Hands what the client sent to the machine, part by part, as far as it takes it (up to the end of the
    /// next request), then reads on once it takes more. Called when bytes arrive and when a response is done;
    /// re-entrant calls (a request answered at once) leave the work to the outer loop.
    private func drain() {
        guard !draining else { return }
        draining = true
        defer { draining = false }
        while machine.takesRequestParts {
            let part: HTTP1RequestParser.Part?
            do {
                part = try parser.next()
            } catch {
                if let context { answerParserError(error, context: context) }
                return
            }
            guard let part else {
                parserNeedsInput = true
                break
            }
            deliver(part)
        }
        readIfPending()
    }

    private func receivedHead(_ received: ClientRequestHead) {
        headGuard?.headReceived()
        guard machine.isIdle else { return }
        requestStarted = .now()
        if runtime.isRetired || (listener.tls?.revocation != nil && RevocationStore.shared.epoch != connection.revocationEpoch), let refusal = recheckClient() {
            // On HTTP/2 the refusal ends the connection, not only this stream (as on HTTP/1.1).
            if isStream { refusedConnection = true }
            clientHead = received
            return perform(machine.requestRefused(refusal))
        }
        var head = received
        let checked: RequestHeadValidator.Facts
        switch RequestHeadValidator.check(&head, maxBodyBytes: listener.limits.maxBodyBytes) {
        case .failure(let refusal):
            clientHead = received
            return perform(machine.requestRefused(refusal))
        case .success(let facts):
            checked = facts
        }
        clientHead = head
        if let tls = listener.tls, tls.hasSeveralPolicies, let refusal = Self.misdirected(host: checked.host, tls: tls, connection: connection) {
            return perform(machine.requestRefused(refusal))
        }
        let chunked = checked.chunked
        requestHasBody = chunked || (checked.contentLength ?? 0) > 0
        upgradeAccept = checked.hasHopByHop && listener.websocket != nil
            ? WebSocketUpgrade.expectedAccept(head, connection: parser.heads.lastConnection, hasBody: requestHasBody) : nil
        requestBodyBytes = 0
        responseBodyBytes = 0
        upstreamHead = nil
        server = nil
        if requestHasBody { watchBody() }
        let backend = Self.route(head, host: checked.host, router: listener.router)
        route = backend
        let facts = ProxyStateMachine.RequestFacts(
            keepAlive: parser.heads.lastConnection.isKeepAlive(version: head.version), hasBody: requestHasBody, chunked: chunked,
            expectsContinue: checked.hasExpect && head.headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" },
            isHTTP10: head.version.minor == 0, isHEAD: head.method.isHEAD, upgrade: upgradeAccept != nil
        )
        if listener.plugins != nil {
            // Plugins see the request without its hop-by-hop headers: a client naming a header in `Connection`
            // must not be able to remove what a plugin sets (an identity header) on the way to the backend.
            let request = PluginRequest(connection: connection, head: checked.hasHopByHop ? head.removingHopByHop() : head)
            request.backendName = backend?.name
            pluginRequest = request
        }
        perform(machine.requestHead(facts, runsPlugins: listener.plugins != nil))
    }

    /// Before another request, when the generation was retired or online revocation learnt something: moves the
    /// connection on to the current generation, and checks its client again. The refusal (403, then the
    /// connection closes) when the client would no longer be admitted.
    private func recheckClient() -> RequestHeadValidator.Refusal? {
        var rejection: HandshakeRejection?
        var moved = false
        if runtime.isRetired, !runtime.isDraining, let slot, let generation, let (next, nextRuntime) = slot.acquire() {
            let policy = next.tls.map { $0.entry(forServerName: connection.serverName).policy } ?? 0
            if nextRuntime === runtime || (next.tls == nil) != (listener.tls == nil) {
                // The listener changed protocol on the same address: this connection cannot be served by it.
                stranded = true
                nextRuntime.connectionClosed()
            } else if let found = next.tls.flatMap({ clientRejection(tls: $0, policyIndex: policy, movingTo: true) }) {
                rejection = found
                connection.verification = .failed(found)
                // Seen by the new chain (its Audit file) while the connection is still counted there; what its
                // plugins kept for the connection goes before it stops counting there (the old chain's stays
                // until the connection ends: an on_complete of it may still be due).
                if let chain = next.plugins {
                    chain.onConnection(connection)
                    connection.pluginData.take(tags: chain.entries.map(\.tag)).run()
                }
                nextRuntime.connectionClosed()
            } else if pendingCompletions > 0 {
                // The previous response's end is still being written and its on_complete must run on the chain that
                // ran its request: this (pipelined) request stays here, and the next one moves on.
                nextRuntime.connectionClosed()
            } else {
                // The old chain's per-connection data goes before the connection stops counting for its
                // configuration (whose instances may then be destroyed); the new chain's plugins make their own.
                connection.releasePluginData()
                runtime.connectionClosed()
                generation.value = nextRuntime
                runtime = nextRuntime
                listener = next
                connection.clientPolicy = policy
                moved = true
                // The new chain's plugins see the connection, as they see every new one.
                next.plugins?.onConnection(connection)
                if logger.logLevel <= .debug {
                    logger.debug("connection moved on to the reloaded configuration", metadata: [
                        "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)", "connection_id": "\(connection.id)",
                    ])
                }
            }
        }
        if rejection == nil, let revocation = listener.tls?.revocation {
            let epoch = RevocationStore.shared.epoch
            if epoch != connection.revocationEpoch || moved {
                connection.revocationEpoch = epoch
                if !moved, let tls = listener.tls, let found = clientRejection(tls: tls, policyIndex: connection.clientPolicy, revocation: revocation) {
                    rejection = found
                    connection.verification = .failed(found)
                    listener.plugins?.onConnection(connection)
                }
            }
        }
        guard let rejection else { return nil }
        listener.metrics.console.handshakeRefused(connection, .init(rejection.code, "open connection closed at its next request: \(rejection.detail)"))
        logger.warning("closing a connection whose client is no longer admitted", metadata: [
            "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)", "connection_id": "\(connection.id)",
            "reason": "\(rejection.code)", "detail": "\(rejection.detail)", "subject": "\(connection.clientCertificate?.subject ?? "")",
        ])
        return .init(.forbidden, "the client certificate is no longer accepted (\(rejection.code)): reconnect\n")
    }

    /// Why the connection's client would not be admitted now under `tls`'s client policy `policyIndex` (its
    /// chain verified again, and online revocation from what is known), or nil. `movingTo`: `tls` is a new
    /// generation's, whose JA4 lists apply too. A revocation status not known yet is fetched in the background
    /// (the store's epoch then grows, and the next request checks again); it does not close the connection.
    private func clientRejection(tls: ListenerTLS, policyIndex: Int, revocation: RevocationChecker? = nil, movingTo: Bool = false) -> HandshakeRejection? {
        if movingTo, let ja4 = connection.ja4 {
            if tls.ja4Deny.contains(ja4) { return .init(.ja4Denied, "the client's JA4 fingerprint \(ja4) is in tls.ja4_deny") }
            if !tls.ja4Allow.isEmpty, !tls.ja4Allow.contains(ja4) { return .init(.ja4NotAllowed, "the client's JA4 fingerprint \(ja4) is not in tls.ja4_allow") }
        }
        let policy = tls.policies[policyIndex]
        guard policy.clientAuth != .none else { return nil }
        guard let identity = connection.clientCertificate, case .success = connection.verification, let verifier = policy.verifier else {
            return policy.clientAuth == .required ? .init(.noCertificate, "the configuration now in force requires a client certificate") : nil
        }
        let (outcome, path) = verifier.verifyWithPath(der: identity.presentedDER)
        if case .rejected(let rejection, _) = outcome { return rejection }
        if let revocation = revocation ?? tls.revocation {
            switch revocation.evaluate(path: path) {
            case .decided(let verdict, let checks):
                revocation.record(checks)
                if case .revoked(let rejection) = verdict { return rejection }
            case .fetch:
                Task { _ = await revocation.resolve(path: path) }
            }
        }
        return nil
    }

    /// Whether this connection closes after its current response: the gateway is draining, or the generation
    /// was retired and the connection cannot move on (its listener was removed, its address or its protocol
    /// changed).
    private var closesAfterResponse: Bool {
        guard runtime.closesConnections else { return false }
        guard !runtime.isDraining, !stranded, let slot else { return true }
        return !slot.acceptsOnLiveGeneration
    }

    /// The request's route, over the bytes of its Host and its (origin-form) target.
    private static func route(_ head: ClientRequestHead, host: String?, router: Router) -> BackendGroup? {
        let method = head.method
        var target = head.uri
        return target.withUTF8 { target in
            guard var host else { return router.route(host: nil, target: UnsafeRawBufferPointer(target), method: method) }
            return host.withUTF8 { router.route(host: UnsafeRawBufferPointer($0), target: UnsafeRawBufferPointer(target), method: method) }
        }
    }

    /// On a listener whose certificates have client policies of their own, a request whose Host selects another
    /// policy than the connection's server name did is answered 421 (as nginx does): otherwise a client verified
    /// under a lenient policy could reach a host that requires a strict one. A request without Host keeps the
    /// server name's policy.
    private static func misdirected(host: String?, tls: ListenerTLS, connection: ConnectionContext) -> RequestHeadValidator.Refusal? {
        guard let host, !host.isEmpty else { return nil }
        var name = Substring(host)
        if name.hasPrefix("[") {
            name = name[..<(name.firstIndex(of: "]").map { name.index(after: $0) } ?? name.endIndex)]
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        guard tls.policy(forHost: String(name)) != connection.clientPolicy else { return nil }
        return .init(.misdirectedRequest, "host '\(name)' is not served on a connection for server name '\(connection.serverName ?? "")': connect with that server name\n")
    }

    private func runPlugins(_ id: UInt64) {
        guard let context, let chain = listener.plugins, let request = pluginRequest else { return }
        holdClientReads(true)
        // A chain without blocking plugins runs here and now: no continuation closure to allocate.
        switch chain.runInline(request) {
        case .finished(let outcome):
            pluginsFinished(id, outcome)
        case .blocking(let position):
            chain.resume(request, at: position, on: context.eventLoop) { [self] outcome in pluginsFinished(id, outcome) }
        case .abandoned:
            break
        }
    }

    private func pluginsFinished(_ id: UInt64, _ outcome: PluginChain.Outcome) {
        let decision: ProxyStateMachine.PluginDecision
        switch outcome {
        case .proceed: decision = .proceed
        case .answered: decision = .answered
        case .failed(let plugin, _): decision = .failed(plugin: plugin)
        }
        perform(machine.pluginsFinished(request: id, decision))
    }

    /// Routes the request to a server (or reports that there is none) and makes its upstream head.
    private func dispatch() {
        guard let head = clientHead else { return }
        guard let backend = route else { return perform(machine.dispatch(to: .noRoute)) }
        let members = backend.members
        self.members = members
        guard let first = members.balancer.pick(clientIP: connection.remoteIP, now: .now()) else {
            return perform(machine.dispatch(to: .noServer(empty: members.servers.isEmpty)))
        }
        // With plugins, what they made of the head goes on (hop-by-hop headers already removed unless a plugin
        // added one).
        let (source, added) = pluginRequest?.headAndAdded ?? (head, HeaderBlock())
        let scheme = connection.isTLS ? "https" : "http"
        let hopByHopRemoved = pluginRequest.map { !$0.addedHopByHop } ?? false
        if let (bytes, chunked) = ProxyHeaders.writeUpstreamRequest(
            source, adding: added, clientIP: connection.remoteIP, scheme: scheme, localPort: connection.localAddress?.port,
            hasBody: requestHasBody, hopByHopRemoved: hopByHopRemoved, allocator: context?.channel.allocator ?? ByteBufferAllocator()
        ) {
            upstreamHead = .serializedHead(bytes, chunked: chunked, isHEAD: source.method.isHEAD)
        } else {
            upstreamHead = .head(
                ProxyHeaders.upstreamRequest(
                    source.nioHead, adding: added, clientIP: connection.remoteIP, scheme: scheme, localPort: connection.localAddress?.port,
                    hasBody: requestHasBody, hopByHopRemoved: hopByHopRemoved
                ))
        }
        if upgradeAccept != nil, let head = upstreamHead { upstreamHead = WebSocketUpgrade.addingFields(to: head) }
        perform(machine.dispatch(to: .server(index: first, serverCount: members.servers.count, responseTimeout: backend.responseTimeout)))
    }

    private func sendContinueResponse() {
        guard let context, let head = clientHead else { return }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
    }

    private func receivedBody(_ body: ByteBuffer) {
        requestBodyBytes += Int64(body.readableBytes)
        bodyRate.received(body.readableBytes)
        perform(machine.requestBody(body))
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        backendConnection?.flush()
        context.fireChannelReadComplete()
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        clientWritability(context.channel.isWritable, context: context)
        backendConnection?.holdReads(!context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// Counts one answered request of a verified client for the console: the first at once, then in batches of
    /// 64, and the rest when the connection closes (a lock per batch, not per request).
    private func countForConsole() {
        guard connection.clientCertificate != nil else { return }
        uncountedRequests += 1
        if uncountedRequests == 64 || !countedFirstRequest {
            countedFirstRequest = true
            listener.metrics.console.requestsServed(connection, count: uncountedRequests)
            uncountedRequests = 0
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        if tunnel != nil { tunnelEnded(closingBackend: true) }
        if uncountedRequests > 0 {
            listener.metrics.console.requestsServed(connection, count: uncountedRequests)
            uncountedRequests = 0
        }
        parser.discard()
        stopWatchingBody()
        sendTimer?.cancel()
        sendTimer = nil
        if machine.clientClosed() { abortExchange() }
        completePlugins(backendServer: nil, aborted: true)
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if machine.clientClosed() { abortExchange() }
        logger.debug("client connection error", metadata: ["client": "\(connection.remoteAddress.text)", "error": "\(error)"])
        context.close(promise: nil)
    }

    /// A request the parser refuses is answered (400, 431 or 505, as NIO's HTTPServerProtocolErrorHandler
    /// answers: no body) and the connection closed, unless a response is open: then the close alone tells the
    /// client.
    private func answerParserError(_ error: HTTP1ParseError, context: ChannelHandlerContext) {
        if !responseOpen {
            let headers = HTTPHeaders([("Connection", "close"), ("Content-Length", "0")])
            responseEncoder.respondingTo(.GET)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: error.status, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        listener.metrics.requestRefusedByParser(error.reason)
        if machine.clientClosed() { abortExchange() }
        logger.debug("client sent a request that cannot be parsed", metadata: [
            "client": "\(connection.remoteAddress.text)", "reason": "\(error.reason.message)",
        ])
        context.close(promise: nil)
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else { return context.fireUserInboundEventTriggered(event) }
        // On HTTP/2 the connection goes away (`HTTP2Connection`'s GOAWAY) and its streams finish as they are: a
        // stream whose response end still waits for flow-control window must not be reset.
        if isStream { return }
        // Shutting down: the request in progress is the last (the machine takes no other head).
        perform(machine.quiesce())
    }

    package func read(context: ChannelHandlerContext) {
        if mayRead || readsAhead {
            context.read()
        } else {
            pendingClientRead = true
        }
    }

    /// Nothing holds the client's reads: no backpressure, and the machine takes the next part.
    private var mayRead: Bool { !clientReadsHeld && ((parserNeedsInput && machine.takesRequestParts) || tunnel != nil) }

    /// The request was read whole and waits for its response, and nothing the client sent waits in the parser:
    /// the client's socket stays registered for reading. Holding the read here would make NIO drop the socket's
    /// read interest after every request and add it back after every response: two `epoll_ctl` calls per
    /// keep-alive request. What arrives meanwhile (a pipelined request) waits in the parser, unparsed, until the
    /// response is done; once anything waits there, reads are held, so at most one read's worth is buffered, as
    /// when a client pipelines in one write. A client's close is seen as before (NIO reads to EOF on
    /// EPOLLRDHUP whether or not a read is pending).
    private var readsAhead: Bool { parser.bufferedBytes == 0 && machine.requestRead }

    private func readIfPending() {
        if pendingClientRead, mayRead, let context {
            pendingClientRead = false
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
        if !hold { readIfPending() }
    }

    // MARK: backend side

    private func startAttempt(_ attempt: UInt64, serverIndex: Int) {
        guard let context, let backend = route, let members else { return }
        let server = members.servers[serverIndex]
        self.server = server
        if let pooled = server.pool.take(on: context.eventLoop) {
            return attach(pooled, attempt: attempt)
        }
        // The connect future completes on this channel's loop (ClientBootstrap(group: eventLoop)): isolated.
        backend.connect(to: server, on: context.eventLoop).assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            switch result {
            case .success(let backendConnection):
                server.connectSucceeded()
                self.attach(backendConnection.value, attempt: attempt)
            case .failure(let error):
                self.connectFailed(attempt, server: server, backend: backend, error: error)
            }
        }
    }

    private func connectFailed(_ attempt: UInt64, server: BackendServer, backend: BackendGroup, error: any Error) {
        let timedOut = (error as? ChannelError).map { if case .connectTimeout = $0 { return true } else { return false } } ?? false
        (timedOut ? server.metrics.connectTimeouts : server.metrics.connectErrors).increment()
        logger.warning("backend connect failed", metadata: [
            "backend": "\(backend.name)", "server": "\(server.address)", "error": "\(error)",
        ])
        if server.connectFailed() {
            logger.warning("backend server ejected after consecutive connection failures", metadata: [
                "backend": "\(backend.name)", "server": "\(server.address)",
                "eject_for": "\(server.passive.map { "\($0.ejectFor)" } ?? "?")",
            ])
        }
        let balancer = members?.balancer
        perform(machine.connectFailed(attempt: attempt, timedOut: timedOut) { balancer?.next(after: $0, now: .now()) })
    }

    private func attach(_ candidate: BackendConnection, attempt: UInt64) {
        let action = machine.attached(attempt: attempt, reused: candidate.requestsServed > 0, now: .now())
        guard case .sendRequest = action else {
            // The attempt is over (the client left, or the gateway answered): the connection is not used.
            candidate.channel.close(promise: nil)
            return
        }
        candidate.delegate = self
        candidate.requestsServed += 1
        backendConnection = candidate
        if activeServer == nil, let server {
            activeServer = server
            server.activeRequests.wrappingIncrement(ordering: .relaxed)
        }
        perform(action)
    }

    private func sendRequest(_ parts: [HTTPClientRequestPart], armResponseTimer deadline: NIODeadline?) {
        guard let backendConnection, let upstreamHead else { return }
        backendConnection.write(upstreamHead, flush: false)
        for part in parts { backendConnection.write(UpstreamRequestPart(part), flush: false) }
        backendConnection.flush()
        backendConnection.holdReads(!(context?.channel.isWritable ?? true))
        if let deadline { armResponseTimer(before: deadline) }
        holdClientReads(!machine.isReadingBody || !backendConnection.isWritable)
    }

    /// Makes sure the response timer fires at or before `deadline` (when it fires, the machine re-arms it for the
    /// rest if the deadline is later).
    private func armResponseTimer(before deadline: NIODeadline) {
        if responseTimer != nil, responseTimerFires <= deadline { return }
        armResponseTimer(at: deadline)
    }

    private func armResponseTimer(at deadline: NIODeadline) {
        guard let context else { return }
        responseTimer?.cancel()
        responseTimerFires = deadline
        // Holds the handler until it fires or is cancelled (`handlerRemoved` cancels it), as the other timers do:
        // a weak capture would give the handler a side table (see `BackendConnection.delegate`).
        responseTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            responseTimerFired()
        }
    }

    private func responseTimerFired() {
        responseTimer = nil
        let action = machine.responseTimerFired(now: .now())
        if case .answer = action, let server {
            logger.warning("backend response timeout", metadata: ["backend": "\(route?.name ?? "?")", "server": "\(server.address)"])
            server.metrics.responseTimeouts.increment()
        }
        perform(action)
    }

    package func backendRead(_ part: HTTP1ResponseParser.Part, connection options: HTTP1ConnectionOptions) {
        guard let context else { return }
        switch part {
        case .head(let head):
            if let expected = upgradeAccept, head.status.code == 101, !WebSocketUpgrade.switched(head, connection: options, expectedAccept: expected) {
                return perform(machine.responseInvalid("101 Switching Protocols without Connection: upgrade and the request's Sec-WebSocket-Accept"))
            }
            let action = machine.responseHead(
                status: head.status, keepAlive: options.isKeepAlive(version: head.version) && !options.closeAfterMessage,
                hasContentLength: head.hasContentLength, retired: closesAfterResponse
            )
            guard case .writeResponseHead(let close) = action, let clientHead else { return perform(action) }
            responseStatus = Int(head.status.code)
            responseEncoder.respondingTo(clientHead.method)
            responseOpen = true
            if responseStatus == 101 { return writeSwitchingHead(head, options: options, version: clientHead.version, context: context) }
            // As the bytes came when no plugin reads or edits response heads (the head itself says whether its
            // Connection named a field to remove: `withoutHopByHop`); plugins that read it later (on_complete)
            // get it made then.
            if !(listener.plugins?.hasResponseHooks ?? false),
                responseEncoder.writeForwarded(head, version: clientHead.version, close: close) {
                pluginRequest?.forwardedResponse(head, version: clientHead.version, close: close)
                return
            }
            let downstream = ProxyHeaders.downstreamResponse(head.nioHead, removing: options.listed, version: clientHead.version, close: close)
            let final = runResponsePlugins(downstream)
            context.write(wrapOutboundOut(.head(final)), promise: nil)
        case .body(let body):
            let action = machine.responseBody()
            guard case .writeResponseBody = action else { return perform(action) }
            responseBodyBytes += Int64(body.readableBytes)
            // Straight to the encoder, the next outbound handler (no NIOAny and its dynamic cast).
            if isStream {
                context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
            } else {
                responseEncoder.writeBody(body)
            }
            if !context.channel.isWritable {
                backendConnection?.holdReads(true)
            }
        case .end:
            perform(machine.responseEnd())
        }
    }

    /// Flush once per backend read burst, not per part: fewer syscalls, and nothing left unflushed.
    package func backendReadComplete() {
        context?.flush()
    }

    package func backendFailed(_ error: any Error) {
        guard backendConnection != nil, let server else { return }
        logger.warning("backend connection error", metadata: [
            "backend": "\(route?.name ?? "?")", "server": "\(server.address)", "error": "\(error)",
        ])
        backendLost()
    }

    package func backendClosed() {
        backendLost()
    }

    package func backendSentInvalidResponse(_ error: HTTP1ParseError) {
        guard backendConnection != nil else { return }
        perform(machine.responseInvalid(error.reason.message))
    }

    package func backendWritabilityChanged(isWritable: Bool) {
        if tunnel != nil { return holdClientReads(!isWritable) }
        guard machine.isProxying else { return }
        if isWritable, machine.isReadingBody { holdClientReads(false) }
        if !isWritable { holdClientReads(true) }
    }

    private func backendLost() {
        if tunnel != nil { return closeTunnel() }
        guard let lost = backendConnection else { return }
        backendConnection = nil
        lost.delegate = nil
        perform(machine.backendLost())
    }

    private func finishExchange(reuseBackend: Bool, keepOpen: Bool) {
        guard let context else { return }
        releaseActive()
        if let backendConnection {
            self.backendConnection = nil
            backendConnection.delegate = nil
            if reuseBackend { backendConnection.holdReads(false) }
            backendConnection.release(reuse: reuseBackend)
        }
        let server = self.server?.address
        let request = pluginRequest
        pluginRequest = nil
        forgetRequestHeads()
        let status = responseStatus
        let started = requestStarted
        let (bytesIn, bytesOut) = (requestBodyBytes, responseBodyBytes)
        // The connection waits for the next head before the end is written; a pipelined request that waits is
        // handed over once the end is written (the deferred drain).
        if keepOpen {
            holdClientReads(false)
            headGuard?.awaitNextHead(pending: parser.buffered)
        }
        responseOpen = false
        defer { if keepOpen { drain() } }
        writeEnd(
            ExchangeEnd(request: request, server: server, status: status, started: started, bytesIn: bytesIn, bytesOut: bytesOut, close: !keepOpen),
            context: context)
    }

    /// What the metrics and on_complete need of an exchange once its response's end is written.
    private struct ExchangeEnd {
        var request: PluginRequest?
        var server: String?
        var status: Int
        var started: NIODeadline
        var bytesIn: Int64
        var bytesOut: Int64
        /// The connection closes after this response.
        var close: Bool
    }

    /// Writes and flushes the end of the response, then `endWritten` runs once every byte of the response is
    /// with the kernel, or the write failed (on_complete runs once the response is out; a write that failed,
    /// because the client closed or was closed for not reading, is a cut-off response, never a complete one).
    ///
    /// The end goes without a promise: a promise per response, and the one NIOSSL makes for the encrypted
    /// write that carries it, cost ~6k instructions and 7 allocations per keep-alive request (`bench/run profile`). Usually the
    /// flush writes everything at once: the channel is still open and its outbound buffer empty, which is what
    /// a fulfilled write promise says, so the exchange ends there. Below this handler nothing keeps bytes past
    /// a flush: `DownstreamResponseEncoder` passes all it holds, and NIOSSL, its handshake done, encrypts and
    /// passes on all it is given (its BIO always takes a whole record). Otherwise (the socket took only part,
    /// or nothing) a zero-length write with a promise follows the bytes, and it completes when they are written
    /// or fails with them.
    private func writeEnd(_ end: ExchangeEnd, context: ChannelHandlerContext) {
        pendingCompletions += 1
        if isStream { return writeStreamEnd(end, context: context) }
        responseEncoder.writeEndAndFlush()
        guard context.channel.isActive else { return endWritten(end, written: false) }
        if let buffered = try? syncOptions?.getOption(.bufferedWritableBytes), buffered == 0 {
            return endWritten(end, written: true)
        }
        let promise = context.eventLoop.makePromise(of: Void.self)
        responseEncoder.flushMarker(promise: promise)
        // The promise completes when the bytes are written, or fails when the channel closes first.
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            if case .success = result { endWritten(end, written: true) } else { endWritten(end, written: false) }
        }
    }

    /// `writeEnd` on an HTTP/2 stream: the end (END_STREAM) with a promise, which completes once its frame went to
    /// the connection (a stream channel has no buffered byte count to read).
    @inline(never)
    private func writeStreamEnd(_ end: ExchangeEnd, context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: promise)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { [self] result in
            if case .success = result { endWritten(end, written: true) } else { endWritten(end, written: false) }
        }
    }

    /// A request part from an HTTP/2 stream (`HTTP2StreamAdapter`), as the parser hands them over on HTTP/1.
    package func streamPart(_ part: HTTP1RequestParser.Part) {
        guard machine.takesRequestParts else { return }
        deliver(part)
    }

    private func endWritten(_ end: ExchangeEnd, written: Bool) {
        pendingCompletions -= 1
        if written {
            listener.metrics.requestCompleted(status: end.status, started: end.started)
            countForConsole()
        }
        if let request = end.request {
            request.responseIncomplete = !written
            complete(request, backendServer: end.server, aborted: !written, bytesIn: end.bytesIn, bytesOut: end.bytesOut)
        }
        if end.close { closeClient(cutOff: false) }
    }

    /// The exchange is over: an idle keep-alive connection keeps neither the client's head nor the upstream
    /// one (with the block of headers plugins added, a 4 KiB buffer: (d) in bench/run).
    private func forgetRequestHeads() {
        clientHead = nil
        upstreamHead = nil
    }

    /// Drops the backend side of an exchange that will not complete normally (the connection is closed, not
    /// returned to the pool).
    private func abortExchange() {
        releaseActive()
        if let backendConnection {
            self.backendConnection = nil
            backendConnection.delegate = nil
            backendConnection.channel.close(promise: nil)
        }
    }

    private func releaseActive() {
        if let activeServer {
            self.activeServer = nil
            activeServer.activeRequests.wrappingDecrement(ordering: .relaxed)
        }
    }

    // MARK: tunnels

    /// The backend's 101 to an upgrade (the machine let only that one through), with its own Connection and
    /// Upgrade fields.
    @inline(never)
    private func writeSwitchingHead(_ head: BackendResponseHead, options: HTTP1ConnectionOptions, version: HTTPVersion, context: ChannelHandlerContext) {
        let switching = WebSocketUpgrade.addingFields(
            to: ProxyHeaders.downstreamResponse(head.nioHead, removing: options.listed, version: version, close: false))
        context.write(wrapOutboundOut(.head(runResponsePlugins(switching))), promise: nil)
    }

    /// The backend's 101 to a WebSocket upgrade is complete and its head written: from here both connections
    /// carry bytes as they are. What came after the 101 from the backend, and what the client sent after its
    /// request (frames it did not wait to send), are the tunnel's first bytes.
    private func openTunnel() {
        guard let context, let backendConnection else { return }
        stopWatchingBody()
        responseTimer?.cancel()
        responseTimer = nil
        responseOpen = false
        tunnel = TunnelTraffic(idleTimeout: (listener.websocket ?? WebSocketConfig()).idleTimeout.timeAmount, now: .now())
        // The client's bytes go to the tunnel from here, past this handler's parser (its channelRead stays the
        // request path's alone).
        try? context.pipeline.syncOperations.addHandler(TunnelReadTap(self), position: .before(self))
        listener.metrics.tunnelsOpened.increment()
        listener.metrics.tunnelsActive.increment()
        if let first = backendConnection.openTunnel() { backendTunnelRead(first) }
        context.flush()
        if let early = parser.buffered {
            parser.discard()
            tunnelUp(early)
            backendConnection.flush()
        }
        backendConnection.holdReads(!context.channel.isWritable)
        holdClientReads(!backendConnection.isWritable)
        scheduleTunnelCheck(at: .now() + Self.tunnelCheckInterval(tunnel?.idleTimeout ?? .seconds(300)))
    }

    /// How often an open tunnel looks at its idle time and at what changed around it (a reload, what online
    /// revocation learnt): `websocket.idle_timeout`, at most 5 s.
    private static func tunnelCheckInterval(_ idleTimeout: TimeAmount) -> TimeAmount { min(idleTimeout, .seconds(5)) }

    /// Client bytes of the open tunnel (from the `TunnelReadTap` in front of this handler).
    package func tunnelUp(_ bytes: ByteBuffer) {
        guard tunnel != nil, let backendConnection else { return }
        tunnel?.up(bytes.readableBytes, now: .now())
        backendConnection.writeTunnel(bytes)
        if !backendConnection.isWritable { holdClientReads(true) }
    }

    package func backendTunnelRead(_ bytes: ByteBuffer) {
        guard let context, tunnel != nil else { return }
        tunnel?.down(bytes.readableBytes, now: .now())
        responseEncoder.writeTunnel(bytes)
        if !context.channel.isWritable { backendConnection?.holdReads(true) }
    }

    private func scheduleTunnelCheck(at deadline: NIODeadline) {
        guard let context else { return }
        tunnelTimer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(deadline: deadline) { [self] in
            tunnelTimer = nil
            guard let traffic = tunnel else { return }
            let now = NIODeadline.now()
            if let reason = tunnelCloseReason() {
                logger.warning("closing a tunnel", metadata: [
                    "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "reason": "\(reason)",
                ])
                return closeTunnel(flushFirst: false)
            }
            guard let next = traffic.nextCheck(now: now) else {
                logger.info("closing an idle tunnel", metadata: [
                    "listener": "\(listener.name)", "client": "\(connection.remoteAddress.text)", "idle_timeout": "\(traffic.idleTimeout)",
                ])
                return closeTunnel(flushFirst: false)
            }
            scheduleTunnelCheck(at: min(next, now + Self.tunnelCheckInterval(traffic.idleTimeout)))
        }
    }

    /// Why an open tunnel must close now, if it must. A tunnel cannot move to a reloaded configuration (its request
    /// ran the old plugin chain, which must be able to go): it closes once its configuration is retired, and its
    /// client reconnects under the new one. Online revocation that learnt the client's certificate was revoked
    /// closes it too (the same check an HTTP connection makes at its next request).
    private func tunnelCloseReason() -> String? {
        if runtime.closesConnections { return runtime.isDraining ? "the gateway is shutting down" : "the configuration it was opened under was reloaded" }
        if let tls = listener.tls, let revocation = tls.revocation, RevocationStore.shared.epoch != connection.revocationEpoch {
            connection.revocationEpoch = RevocationStore.shared.epoch
            if let rejection = clientRejection(tls: tls, policyIndex: connection.clientPolicy, revocation: revocation) {
                connection.verification = .failed(rejection)
                return "the client is no longer admitted (\(rejection.code)): \(rejection.detail)"
            }
        }
        return nil
    }

    /// Ends the tunnel from the gateway's side (idle, a client that does not read) or the backend's (it closed or
    /// failed): on_complete runs, then both connections close, the client's once what the backend sent last is
    /// written when `flushFirst`.
    private func closeTunnel(flushFirst: Bool = true) {
        let backend = backendConnection
        tunnelEnded()
        backend?.channel.close(promise: nil)
        guard let context else { return }
        guard flushFirst, context.channel.isActive else { return context.close(promise: nil) }
        let promise = context.eventLoop.makePromise(of: Void.self)
        responseEncoder.flushMarker(promise: promise)
        promise.futureResult.assumeIsolatedUnsafeUnchecked().whenComplete { _ in context.close(promise: nil) }
    }

    /// The tunnel is over (whichever side ended it): the request completes with status 101 and the bytes each
    /// way (on_complete, so Audit's `tunnel` line, and the request metrics), and the backend connection is let
    /// go, closed once its pending writes are out when `closingBackend` (the client left).
    private func tunnelEnded(closingBackend: Bool = false) {
        guard let traffic = tunnel else { return }
        tunnel = nil
        tunnelTimer?.cancel()
        tunnelTimer = nil
        _ = machine.clientClosed()
        listener.metrics.tunnelsActive.decrement()
        releaseActive()
        if let backendConnection {
            self.backendConnection = nil
            backendConnection.delegate = nil
            if closingBackend { backendConnection.closeAfterWrites(within: listener.limits.sendTimeout.timeAmount) }
        }
        // Counted as a 1xx request; its duration (the tunnel's life) stays out of the request latency histogram.
        listener.metrics.requestCounted(status: responseStatus)
        countForConsole()
        let request = pluginRequest
        pluginRequest = nil
        complete(request, backendServer: server?.address, aborted: false, bytesIn: traffic.bytesUp, bytesOut: traffic.bytesDown)
    }

    // MARK: responses from the gateway itself

    private func answer(_ answer: ProxyStateMachine.Answer, close: Bool) {
        let name = route?.name ?? "?"
        switch answer {
        case .refused(let refusal): respond(refusal.status, refusal.message, close: close)
        case .noRoute: respond(.notFound, "no route for this request\n", close: close)
        case .noServer(let empty):
            respond(.serviceUnavailable, "\(empty ? "no server in backend" : "no healthy server in backend") '\(name)'\n", close: close)
        case .pluginAnswer:
            guard let answer = pluginRequest?.answer else { return respond(.internalServerError, "request refused\n", close: true) }
            if answer.status >= 400 {
                listener.metrics.console.requestDenied(
                    connection, plugin: pluginRequest?.answeredBy ?? "?", status: answer.status,
                    reason: String(decoding: answer.body.prefix(512), as: UTF8.self), failed: false
                )
            }
            respond(HTTPResponseStatus(statusCode: answer.status), body: answer.body, headers: answer.headers, close: close)
        case .pluginFailed(let plugin):
            listener.metrics.console.requestDenied(connection, plugin: plugin, status: 500, reason: "the plugin failed (on_error: deny); see the log", failed: true)
            respond(.internalServerError, "request refused: plugin '\(plugin)' failed\n", close: close)
        case .bodyTooLarge: respond(.payloadTooLarge, "request body larger than \(listener.limits.maxBodyBytes) bytes\n", close: close)
        case .bodyTimeout: respond(.requestTimeout, "request body timeout\n", close: close)
        case .connectTimedOut: respond(.gatewayTimeout, "timed out connecting to backend '\(name)'\n", close: close)
        case .connectFailed: respond(.badGateway, "could not connect to backend '\(name)'\n", close: close)
        case .responseTimedOut: respond(.gatewayTimeout, "backend '\(name)' did not answer in time\n", close: close)
        case .invalidResponse: respond(.badGateway, "backend '\(name)' sent an invalid response\n", close: close)
        case .backendClosed: respond(.badGateway, "backend '\(name)' closed the connection without a complete response\n", close: close)
        }
    }

    private func respond(_ status: HTTPResponseStatus, _ text: String, close: Bool) {
        respond(status, body: Array(text.utf8), headers: [("content-type", "text/plain; charset=utf-8")], close: close)
    }

    /// Answers the request from the gateway itself (an error, or a plugin's answer).
    private func respond(_ status: HTTPResponseStatus, body: [UInt8], headers extra: [(String, String)], close requestedClose: Bool) {
        guard let context, let head = clientHead else { return }
        let after = machine.answerStarted(close: requestedClose || closesAfterResponse)
        let close = after == .close
        if after == .awaitNextHead { headGuard?.awaitNextHead(pending: parser.buffered) }
        var headers = HTTPHeaders(extra)
        headers.replaceOrAdd(name: "content-length", value: String(body.count))
        if close { headers.replaceOrAdd(name: "connection", value: "close") }
        let responseHead = runResponsePlugins(HTTPResponseHead(version: head.version, status: status, headers: headers))
        responseBodyBytes = Int64(body.count)
        responseEncoder.respondingTo(head.method)
        responseOpen = true
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let request = pluginRequest
        pluginRequest = nil
        forgetRequestHeads()
        let started = requestStarted
        let (bytesIn, bytesOut) = (requestBodyBytes, responseBodyBytes)
        // Before the end is written and a waiting pipelined request handed over (see finishExchange).
        if !close {
            holdClientReads(false)
        }
        responseOpen = false
        defer { if !close { drain() } }
        writeEnd(
            ExchangeEnd(request: request, server: nil, status: Int(status.code), started: started, bytesIn: bytesIn, bytesOut: bytesOut, close: close),
            context: context)
    }

    /// Closes the client connection. `cutOff`: a response head from the current server already went out, so
    /// on_complete sees that server and GW_ATTR_RESPONSE_INCOMPLETE (an audit line never shows a truncated response
    /// as a complete one).
    private func closeClient(cutOff: Bool) {
        if refusedConnection { context?.channel.parent?.close(promise: nil) }
        _ = machine.clientClosed()
        if cutOff { pluginRequest?.responseIncomplete = true }
        completePlugins(backendServer: cutOff ? server?.address : nil, aborted: false)
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
        if !request.hasResponseHead { request.responseHead = HTTPResponseHead(version: request.version, status: .init(statusCode: 0)) }
        chain.runComplete(request)
    }
}
