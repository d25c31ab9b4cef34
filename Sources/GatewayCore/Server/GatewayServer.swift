import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP2
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The gateway's listening side: binds every listener, builds each connection's pipeline, reloads the
/// configuration without dropping a connection, and shuts down gracefully (stop accepting, let in-flight
/// requests finish up to `shutdown_timeout`, then close).
public final class GatewayServer: Service, Sendable {
    /// The server's one piece of mutable state.
    private struct State {
        enum Phase { case created, running, stopped }
        var phase = Phase.created
        /// The generation new connections start on.
        var current: GatewayRuntime
        var slots: [String: ListenerSlot] = [:]
        /// Generations replaced by a reload that still have open connections.
        var retired: [GatewayRuntime] = []
        /// Sockets removed by a reload, still finishing their connections.
        var draining: [EventLoopFuture<Void>] = []
        var admin: AdminServer?
    }

    private let group: any EventLoopGroup
    package let logger: Logger
    /// The file reloads read again; nil when the runtime was built in memory (reload is then refused).
    package let configPath: String?
    /// Everything that changes over the server's life, in one value behind one lock: the phase, the live
    /// generation and its sockets, and what reloads left finishing.
    private let state: NIOLockedValueBox<State>
    private let reloadGate = ReloadGate()
    /// Every open client connection, so that shutdown can close what is left when `shutdown_timeout` passes.
    package let openConnections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    public init(runtime: GatewayRuntime, group: any EventLoopGroup, logger: Logger, configPath: String? = nil) {
        self.state = NIOLockedValueBox(State(current: runtime))
        self.group = group
        self.logger = logger
        self.configPath = configPath
        PluginRegistry.shared.logger = logger
    }

    /// The generation new connections start on.
    public var runtime: GatewayRuntime { state.withLockedValue { $0.current } }

    /// The bound address of each listener, by name (port 0 in the config is resolved here).
    public var boundAddresses: [String: SocketAddress] {
        state.withLockedValue { state in
            Dictionary(state.slots.values.compactMap { slot in slot.channel?.localAddress.map { (slot.name, $0) } }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// The admin listener's bound address, when one is configured.
    public var adminAddress: SocketAddress? { state.withLockedValue { $0.admin?.localAddress } }

    /// True once a shutdown began (`/readyz` answers 503 from then on).
    package var isShuttingDown: Bool { state.withLockedValue { $0.phase == .stopped } }

    /// True when every listener is bound and accepting.
    package var listenersBound: Bool {
        state.withLockedValue { state in
            state.phase == .running && state.slots.values.allSatisfy { $0.channel?.isActive == true }
        }
    }

    /// Binds all listeners (and the admin listener); on any failure, closes those already bound and throws.
    public func start() async throws {
        guard state.withLockedValue({ $0.phase == .created }) else { return }
        let runtime = self.runtime
        runtime.prepare(group: group)
        await runtime.resolveBackends(group: group, logger: logger)
        var bound: [ListenerSlot] = []
        var admin: AdminServer?
        do {
            for listener in runtime.listeners {
                bound.append(try await bind(listener, runtime: runtime))
            }
            if let config = runtime.config.admin {
                runtime.metrics.console.configure(config.console)
                let server = AdminServer(server: self, logger: logger)
                try await server.start(address: config.address, tls: runtime.admin?.tls)
                admin = server
            }
        } catch {
            for slot in bound { try? await slot.channel?.close() }
            throw error
        }
        let live = state.withLockedValue { state -> Bool in
            // Shutdown may have begun while the sockets were binding: then they never serve.
            guard state.phase == .created else { return false }
            for slot in bound { state.slots[slot.name] = slot }
            state.admin = admin
            state.phase = .running
            return true
        }
        guard live else {
            // That shutdown found nothing to stop: close what was bound and destroy the plugins here.
            for slot in bound { try? await slot.channel?.close() }
            await admin?.stop()
            runtime.retire()
            runtime.tearDown()
            await runtime.tornDownCompletely()
            return
        }
        runtime.activate(group: group, logger: logger)
    }

    private func bind(_ listener: CompiledListener, runtime: GatewayRuntime) async throws -> ListenerSlot {
        let slot = ListenerSlot(listener: listener, runtime: runtime, group: group)
        do {
            let channel = try await makeBootstrap(for: slot, reusePort: listener.reusePort).bind(to: listener.address).get()
            slot.channel = channel
            logger.info("listening", metadata: [
                "listener": "\(listener.name)", "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "protocol": "\(listener.tls == nil ? "http" : "https")",
                "client_auth": "\(listener.tls?.clientAuth.rawValue ?? "none")",
            ])
            return slot
        } catch {
            throw GatewayError.bindFailed("listener '\(listener.name)'", address: listener.address, error: error)
        }
    }

    /// Runs the started server under one ServiceGroup until SIGTERM/SIGINT (graceful) while SIGHUP (or
    /// `POST /reload` on the admin listener) reloads the configuration. `main` and `demo` both end here.
    public func runUntilShutdownSignal(logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: self),
                    .init(service: ReloadService(server: self, logger: logger), successTerminationBehavior: .ignore),
                    .init(service: FileWatchService(server: self, logger: logger), successTerminationBehavior: .ignore),
                    .init(service: MemoryTrimService(), successTerminationBehavior: .ignore),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        try await group.run()
    }

    public func run() async throws {
        try await start()
        // Wait for SIGTERM/SIGINT (through the ServiceGroup) or cancellation.
        try? await gracefulShutdown()
        await shutdown()
    }

    // MARK: closing the connections of one identity

    /// A client certificate to look for among open connections: its SHA-256 fingerprint or its serial, as hex
    /// (any case, colons allowed).
    package enum IdentityMatch: Sendable {
        case sha256(String)
        case serial(String)

        /// Lowercase hex without colons or spaces; nil when `text` is not hex.
        package static func normalise(_ text: String) -> String? {
            let hex = text.lowercased().filter { $0 != ":" && $0 != " " }
            // ASCII only (Character.isHexDigit also accepts fullwidth digits).
            return !hex.isEmpty && hex.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) ? hex : nil
        }

        func matches(_ identity: ClientIdentity) -> Bool {
            switch self {
            case .sha256(let hex): return identity.sha256Fingerprint.lowercased() == hex
            case .serial(let hex):
                // Leading zeros are not part of a serial's value (OpenSSL prints `0A`, some tools `A`).
                let own = identity.serialHex.lowercased().drop { $0 == "0" }
                return own == hex.drop { $0 == "0" }
            }
        }
    }

    /// One connection `closeConnections` closed.
    package struct ClosedConnection: Sendable {
        package var listener: String
        package var client: String
        package var subject: String
    }

    /// Closes every open connection whose client presented a certificate matching `match` (verified or not),
    /// whatever it is doing: a request in flight is cut off, and on_complete reports it aborted. Each connection
    /// is looked at on its own event loop, where its identity lives.
    package func closeConnections(of match: IdentityMatch) async -> [ClosedConnection] {
        let channels = openConnections.withLockedValue { Array($0.values) }
        var closed: [ClosedConnection] = []
        for channel in channels {
            let found = try? await channel.eventLoop.submit { () -> ClosedConnection? in
                guard let proxy = try? channel.pipeline.syncOperations.handler(type: HTTPProxyHandler.self) else { return nil }
                let connection = proxy.connectionContext
                guard let identity = connection.clientCertificate, match.matches(identity) else { return nil }
                channel.close(promise: nil)
                return ClosedConnection(listener: connection.listenerName, client: connection.remoteAddress.text, subject: identity.subject)
            }.get()
            if let found { closed.append(found) }
        }
        return closed
    }

    // MARK: reload

    /// What a reload did, for the log, the admin endpoint and tests.
    public struct ReloadOutcome: Sendable {
        public var success: Bool
        /// Every problem found (the `gateway validate` messages), or the bind failure.
        public var errors: [String]
    }

    /// Reads the configuration file again, with every certificate, key, CA bundle, CRL and plugin, and swaps
    /// it in for new connections. Connections already open finish on the generation they started on, which
    /// is torn down (plugins destroyed) after its last connection closes. A configuration that fails
    /// validation, or a new listener that cannot bind, changes nothing. Not reentrant: `ReloadService` calls
    /// it one request at a time.
    public func reload() async -> ReloadOutcome {
        await reloadGate.enter()
        let outcome = await reloadNow()
        let current = runtime
        // The console follows the running admin listener: a reload that removes `admin` leaves it serving (and
        // recording) as it started; one that adds `admin` starts no listener, so nothing is recorded.
        if outcome.success, let console = current.config.admin?.console, state.withLockedValue({ $0.admin }) != nil {
            current.metrics.console.configure(console)
        }
        current.metrics.console.reloaded(success: outcome.success, errors: outcome.errors)
        await reloadGate.leave()
        return outcome
    }

    private func reloadNow() async -> ReloadOutcome {
        guard let configPath else { return .init(success: false, errors: ["this gateway was not started from a configuration file"]) }
        let old = runtime
        guard state.withLockedValue({ $0.phase == .running }) else { return .init(success: false, errors: ["the gateway is not running"]) }
        let new: GatewayRuntime
        do {
            new = try GatewayRuntime.load(configPath: configPath, metrics: old.metrics)
        } catch {
            let errors = (error as? ConfigValidationError)?.issues.map { "\($0)" } ?? ["\(error)"]
            logger.error("reload failed: the configuration is invalid; still serving the previous one", metadata: [
                "config": "\(configPath)", "errors": "\(errors.count)",
            ])
            for line in errors { logger.error("reload: \(configPath): \(line)") }
            return failedReload(errors)
        }
        if let problem = state.withLockedValue({ $0.admin })?.reloadProblem(new.admin) {
            logger.error("reload failed: the configuration would leave the admin listener unprotected; still serving the previous one")
            logger.error("reload: \(configPath): \(problem)")
            abandon(new, sockets: [])
            return failedReload([problem])
        }
        if new.config.admin?.address != old.config.admin?.address {
            logger.warning("reload: a change of admin.address takes effect at the next restart")
        }
        if (new.admin?.tls == nil) != (old.admin?.tls == nil) || new.config.admin?.tls?.cert != old.config.admin?.tls?.cert
            || new.config.admin?.tls?.clientCA != old.config.admin?.tls?.clientCA
        {
            logger.warning("reload: a change of admin.tls takes effect at the next restart (admin.token_file and admin.console take effect now)")
        }
        new.prepare(group: group)
        new.adoptAddresses(from: old)
        await new.resolveBackends(group: group, logger: logger, previous: old)
        // Bind the sockets the new configuration adds (or moves) before anything changes.
        let existing = state.withLockedValue { $0.slots }
        let plan = ReloadPlan(current: existing.mapValues(\.address), next: new.listeners.map { ($0.name, $0.address) })
        let toBind = Set(plan.bind)
        var added: [ListenerSlot] = []
        for listener in new.listeners where toBind.contains(listener.name) {
            do {
                added.append(try await bind(listener, runtime: new))
            } catch {
                abandon(new, sockets: added)
                logger.error("reload failed: \(error); still serving the previous configuration")
                return failedReload(["\(error)"])
            }
        }
        new.adoptAddresses(from: old)
        new.inheritHealth(from: old)
        let loop = group.next()
        let removed: [ListenerSlot]? = state.withLockedValue { state in
            // Shutdown began while this reload compiled: the new generation never goes live.
            guard state.phase == .running else { return nil }
            var next: [String: ListenerSlot] = [:]
            let kept = Set(plan.keep)
            for listener in new.listeners where kept.contains(listener.name) {
                let slot = existing[listener.name]!
                slot.swap(to: listener, runtime: new)
                next[listener.name] = slot
            }
            for slot in added { next[slot.name] = slot }
            let removed = plan.drain.compactMap { existing[$0] }
            state.slots = next
            state.current = new
            state.retired.removeAll { $0.isTornDown }
            state.retired.append(old)
            state.draining.append(contentsOf: removed.map { $0.drain(on: loop) })
            return removed
        }
        guard let removed else {
            abandon(new, sockets: added)
            return .init(success: false, errors: ["the gateway is shutting down"])
        }
        new.activate(group: group, logger: logger)
        for slot in removed { logger.info("listener closed by reload", metadata: ["listener": "\(slot.name)", "address": "\(slot.address)"]) }
        old.retire()
        // Generations still finishing requests keep writing: let their plugins reopen files too (logrotate).
        for generation in state.withLockedValue({ $0.retired }) where !generation.isTornDown { generation.reopenPlugins() }
        new.metrics.recordReload(success: true)
        logger.info("configuration reloaded", metadata: [
            "config": "\(configPath)", "listeners": "\(new.listeners.count)", "backends": "\(new.backends.count)",
            "previous_generation_connections": "\(old.openConnections)",
        ])
        return .init(success: true, errors: [])
    }

    /// A generation that never went live: its new sockets stop accepting and finish the connections they may
    /// already have accepted, and shutdown waits for its teardown like any retired generation's.
    private func abandon(_ generation: GatewayRuntime, sockets: [ListenerSlot]) {
        let loop = group.next()
        state.withLockedValue { state in
            state.retired.append(generation)
            state.draining.append(contentsOf: sockets.map { $0.drain(on: loop) })
        }
        generation.retire()
    }

    private func failedReload(_ errors: [String]) -> ReloadOutcome {
        let runtime = self.runtime
        runtime.metrics.recordReload(success: false)
        // SIGHUP also means "reopen your files" (logrotate): honour that even when the new config is broken.
        for generation in state.withLockedValue({ $0.retired }) + [runtime] where !generation.isTornDown { generation.reopenPlugins() }
        return .init(success: false, errors: errors)
    }

    // MARK: shutdown

    /// Drains for `drain_delay` (still accepting, every response closing its connection, `/readyz` 503), stops
    /// accepting, lets in-flight requests finish up to `shutdown_timeout`, then closes what is left and destroys
    /// every plugin instance (the audit plugin writes its queued lines).
    public func shutdown() async {
        // Let a reload in progress finish first; any later one sees `stopped` and does nothing.
        await reloadGate.enter()
        let (runtime, active, admin, removed): (GatewayRuntime, [ListenerSlot], AdminServer?, [EventLoopFuture<Void>]) = state.withLockedValue { state in
            let wasStopped = state.phase == .stopped
            state.phase = .stopped
            return wasStopped ? (state.current, [], nil, []) : (state.current, Array(state.slots.values), state.admin, state.draining)
        }
        await reloadGate.leave()
        guard active.count + removed.count > 0 || admin != nil else { return }
        let drainDelay = runtime.config.drainDelay
        if drainDelay.nanoseconds > 0, !active.isEmpty {
            // `/readyz` answers 503 from now on (the phase is `stopped`); the listeners keep accepting, and every
            // response closes its connection, until the balancers' health checks have taken the instance out.
            logger.info("shutting down: draining before the listeners close", metadata: [
                "drain_delay": "\(drainDelay)", "timeout": "\(runtime.shutdownTimeout)",
            ])
            runtime.startDraining()
            try? await Task.sleep(nanoseconds: UInt64(drainDelay.nanoseconds))
        }
        logger.info("shutting down", metadata: ["timeout": "\(runtime.shutdownTimeout)"])
        let loop = group.next()
        let drained = EventLoopFuture.andAllComplete(active.map { $0.drain(on: loop) } + removed, on: loop)
        let done = loop.makePromise(of: Bool.self)
        // Whichever comes first completes `done`: the drain, or the timeout. (Both run on `loop`; the box makes
        // that visible to the compiler, at a cost paid once per shutdown.)
        let finished = NIOLockedValueBox(false)
        let first: @Sendable () -> Bool = { finished.withLockedValue { done in defer { done = true }; return !done } }
        drained.whenComplete { _ in
            if first() { done.succeed(true) }
        }
        let timeout = loop.scheduleTask(in: runtime.shutdownTimeout.timeAmount) {
            if first() { done.succeed(false) }
        }
        let clean = (try? await done.futureResult.get()) ?? false
        timeout.cancel()
        if !clean {
            let remaining = openConnections.withLockedValue { Array($0.values) }
            logger.warning("shutdown timeout reached; closing remaining connections", metadata: ["connections": "\(remaining.count)"])
            for channel in remaining { channel.close(promise: nil) }
            // closeFuture completes after channelInactive ran: the handlers' last plugin calls are done.
            _ = try? await EventLoopFuture.andAllComplete(remaining.map(\.closeFuture), on: loop).get()
        }
        await admin?.stop()
        // Every connection is closed (or the timeout passed): no request can reach a plugin instance any more.
        runtime.retire()
        for generation in state.withLockedValue({ $0.retired }) + [runtime] {
            generation.tearDown()
            // A generation whose last connection just closed may be tearing down on a background thread: wait
            // for it, so that the process never exits in the middle of a plugin's flush.
            await generation.tornDownCompletely()
        }
        logger.info("stopped")
    }

    // MARK: connections

    private func makeBootstrap(for slot: ListenerSlot, reusePort: Bool) -> ServerBootstrap {
        let logger = self.logger
        let openConnections = self.openConnections
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // `reuse_port`: another process of the same user may bind the same address (the hand-over to a new
            // binary); the kernel spreads new connections over every socket bound to it.
            .serverChannelOption(.socketOption(NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: reusePort ? 1 : 0)
            // TCP_NODELAY is a TCP-level option (`.tcpOption`; `.socketOption(.tcp_nodelay)` is SO_DEBUG, which
            // needs CAP_NET_ADMIN). Set on the listening socket, as NIO does by default: accepted sockets inherit
            // it, so no connection pays a setsockopt of its own (UnprivilegedTests checks an accepted one).
            .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(slot.quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                guard let (listener, runtime) = slot.acquire() else {
                    return channel.close()
                }
                let clientIP = channel.remoteAddress?.ipAddress ?? "unknown"
                // Behind a balancer (`proxy_protocol`), a trusted peer's connections are limited per client address
                // once its header names the client; the balancer's own address is no client.
                let proxyPolicy = listener.proxyProtocol
                if proxyPolicy != nil, channel.remoteAddress == nil {
                    // Reset before its peer's address could be read (a balancer's health check): nothing to serve,
                    // and no peer to trust or blame.
                    runtime.connectionClosed()
                    return channel.close()
                }
                let peerTrusted = proxyPolicy?.trusts(channel.remoteAddress) ?? false
                if let proxyPolicy, proxyPolicy.mode == .required, !peerTrusted {
                    runtime.connectionClosed()
                    listener.metrics.proxyProtocol(.untrusted)
                    if let refused = slot.limiter.shouldLogRefusal() {
                        logger.warning("refusing connections from peers outside proxy_protocol.trusted", metadata: [
                            "listener": "\(listener.name)", "peer": "\(channel.remoteAddress.text)", "refused_since_last_line": "\(refused)",
                        ])
                    }
                    return channel.close()
                }
                let decision = slot.limiter.admit(
                    ip: clientIP, maxTotal: listener.limits.maxConnections, maxPerIP: peerTrusted ? 0 : listener.limits.maxConnectionsPerIP
                )
                guard decision == .admitted else {
                    runtime.connectionClosed()
                    listener.metrics.connectionRefused(decision == .listenerFull ? .listenerLimit : .clientLimit)
                    if let refused = slot.limiter.shouldLogRefusal() {
                        logger.warning("refusing connections over the limit", metadata: [
                            "listener": "\(listener.name)", "client": "\(channel.remoteAddress.text)",
                            "limit": "\(decision == .listenerFull ? "max_connections \(listener.limits.maxConnections)" : "max_connections_per_ip \(listener.limits.maxConnectionsPerIP)")",
                            "refused_since_last_line": "\(refused)",
                        ])
                    }
                    return channel.close()
                }
                let limiter = slot.limiter
                let key = ObjectIdentifier(channel)
                // The address the connection is counted under, when a PROXY header may change it (a box, and its
                // allocation, only on such listeners).
                let countedIP = proxyPolicy == nil ? nil : NIOLoopBoundBox(clientIP, eventLoop: channel.eventLoop)
                openConnections.withLockedValue { $0[key] = channel }
                listener.metrics.connectionsAccepted.increment()
                listener.metrics.connectionsActive.increment()
                // The generation the connection is counted in: the one it started on, until a reload moves it on
                // to the current one (HTTPProxyHandler, at its next request).
                let generation = NIOLoopBoundBox(runtime, eventLoop: channel.eventLoop)
                channel.closeFuture.whenComplete { _ in
                    limiter.release(ip: countedIP?.value ?? clientIP)
                    openConnections.withLockedValue { _ = $0.removeValue(forKey: key) }
                    listener.metrics.connectionsActive.decrement()
                    generation.value.connectionClosed()
                }
                return channel.eventLoop.makeCompletedFuture {
                    do {
                        if let proxyPolicy {
                            try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(
                                policy: proxyPolicy, peerTrusted: peerTrusted, timeout: listener.limits.handshakeTimeout.timeAmount,
                                listenerName: listener.name, metrics: listener.metrics, logger: logger
                            ) { channel, source, destination in
                                // A trusted peer was admitted without a per-IP limit: apply it now, to the header's
                                // client, or to the peer itself when there is no header (optional) or a LOCAL one.
                                let realIP = source?.ipAddress ?? clientIP
                                if peerTrusted {
                                    guard limiter.reassign(from: clientIP, to: realIP, maxPerIP: listener.limits.maxConnectionsPerIP) else {
                                        listener.metrics.connectionRefused(.clientLimit)
                                        if let refused = limiter.shouldLogRefusal() {
                                            logger.warning("refusing connections over the limit", metadata: [
                                                "listener": "\(listener.name)", "client": "\(source.text)", "peer": "\(channel.remoteAddress.text)",
                                                "limit": "max_connections_per_ip \(listener.limits.maxConnectionsPerIP)", "refused_since_last_line": "\(refused)",
                                            ])
                                        }
                                        return false
                                    }
                                    countedIP?.value = realIP
                                }
                                try Self.configureConnection(
                                    channel, listener: listener, runtime: runtime, logger: logger, remoteAddress: source, localAddress: destination,
                                    slot: slot, generation: generation
                                )
                                return true
                            })
                        } else {
                            try Self.configureConnection(channel, listener: listener, runtime: runtime, logger: logger, slot: slot, generation: generation)
                        }
                    } catch {
                        listener.metrics.connectionSetupFailed(.pipeline)
                        logger.error("closing connection: its pipeline could not be set up", metadata: [
                            "listener": "\(listener.name)", "client": "\(channel.remoteAddress.text)", "error": "\(error)",
                        ])
                        throw error
                    }
                }
            }
    }

    /// Sets up a connection's pipeline: TLS (when the listener has it), the HTTP/1 codec and the proxy handler.
    /// `remoteAddress` and `localAddress` are the socket's, or what a PROXY header said.
    package static func configureConnection(
        _ channel: Channel, listener: CompiledListener, runtime: GatewayRuntime, logger: Logger,
        remoteAddress: SocketAddress? = nil, localAddress: SocketAddress? = nil, slot: ListenerSlot? = nil,
        generation: NIOLoopBoundBox<GatewayRuntime>? = nil
    ) throws {
        let connection = ConnectionContext(
            listenerName: listener.name, isTLS: listener.tls != nil,
            remoteAddress: remoteAddress ?? channel.remoteAddress, localAddress: localAddress ?? channel.localAddress
        )
        let sync = channel.pipeline.syncOperations
        if let tls = listener.tls {
            let hello = TLSHelloHandler(tls: tls, connection: connection, logger: logger, metrics: listener.metrics)
            try sync.addHandler(hello)
            try sync.addHandler(TLSHandshakeHandler(
                connection: connection, logger: logger, plugins: listener.plugins, metrics: listener.metrics, tls: tls,
                timeout: listener.limits.handshakeTimeout.timeAmount
            ))
        } else {
            listener.plugins?.onConnection(connection)
        }
        if let http2 = listener.http2 {
            // The protocol is known once the handshake negotiated it.
            try sync.addHandler(ALPNSwitch { alpn, channel in
                if alpn == "h2" {
                    try Self.configureHTTP2(channel, listener: listener, http2: http2, runtime: runtime, connection: connection, logger: logger)
                } else {
                    try Self.addHTTP1Handlers(channel, listener: listener, runtime: runtime, connection: connection, logger: logger, slot: slot, generation: generation)
                }
            })
            return
        }
        try addHTTP1Handlers(channel, listener: listener, runtime: runtime, connection: connection, logger: logger, slot: slot, generation: generation)
    }

    /// The HTTP/1.1 end of a connection's pipeline: the head guard, the response encoder, the proxy handler.
    private static func addHTTP1Handlers(
        _ channel: Channel, listener: CompiledListener, runtime: GatewayRuntime, connection: ConnectionContext, logger: Logger,
        slot: ListenerSlot?, generation: NIOLoopBoundBox<GatewayRuntime>?
    ) throws {
        let sync = channel.pipeline.syncOperations
        let headGuard = RequestHeadGuard(limits: listener.limits)
        try sync.addHandler(headGuard)
        // The gateway's response encoder (NIO's bytes, the head written in one pass; the proxy handler tells it
        // which method each response answers), without an outbound header validator: every response header
        // comes from the gateway's response parser (the backend's head, checked field by field, written from its
        // bytes when no plugin edits response heads), from a plugin through the host's `HeaderValidation`, or
        // from the gateway itself (see BackendGroup). No request decoder: the proxy handler parses the bytes
        // itself (`HTTP1RequestParser`), queues pipelined requests, handles quiescing and answers what the parser
        // refuses.
        let responseEncoder = DownstreamResponseEncoder()
        try sync.addHandler(responseEncoder)
        try sync.addHandler(HTTPProxyHandler(
            listener: listener, runtime: runtime, connection: connection, headGuard: headGuard, responseEncoder: responseEncoder, logger: logger,
            slot: slot, generation: generation
        ))
    }

    /// The HTTP/2 end of a connection's pipeline (ALPN `h2`): swift-nio-http2's handler with the listener's
    /// `http2` settings and the protocol's flood limits, `HTTP2Connection` for the connection, and per stream an
    /// `HTTP2StreamAdapter` in front of its own `HTTPProxyHandler`, which shares the connection's identity
    /// (computed once, at the handshake).
    static func configureHTTP2(
        _ channel: Channel, listener: CompiledListener, http2: HTTP2Config, runtime: GatewayRuntime, connection: ConnectionContext, logger: Logger
    ) throws {
        var settings = HTTP2Settings()
        settings.append(HTTP2Setting(parameter: .maxConcurrentStreams, value: http2.maxConcurrentStreams))
        settings.append(HTTP2Setting(parameter: .maxHeaderListSize, value: listener.limits.maxHeaderBytes + 32 * listener.limits.maxHeaderCount))
        settings.append(HTTP2Setting(parameter: .initialWindowSize, value: http2.initialWindowSize))
        settings.append(HTTP2Setting(parameter: .headerTableSize, value: http2.headerTableSize))
        var connectionConfiguration = NIOHTTP2Handler.ConnectionConfiguration()
        connectionConfiguration.initialSettings = settings
        var streamConfiguration = NIOHTTP2Handler.StreamConfiguration()
        streamConfiguration.targetWindowSize = http2.initialWindowSize
        streamConfiguration.outboundBufferSizeHighWatermark = 64 * 1024
        streamConfiguration.outboundBufferSizeLowWatermark = 32 * 1024
        streamConfiguration.streamResetFrameRateLimit.maximumCount = http2.maxResetsPer30s
        let connectionHandler = HTTP2Connection(
            connection: connection, runtime: runtime, limits: listener.limits, http2: http2, metrics: listener.metrics, logger: logger)
        if listener.tls?.revocation != nil { connection.revocationEpoch = RevocationStore.shared.epoch }
        let sync = channel.pipeline.syncOperations
        // Streams are set up on the connection's event loop, where these are used.
        let shared = NIOLoopBound((connection, connectionHandler), eventLoop: channel.eventLoop)
        _ = try sync.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: connectionConfiguration, streamConfiguration: streamConfiguration
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                let (connection, connectionHandler) = shared.value
                guard connectionHandler.admits() else {
                    stream.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.refusedStream), promise: nil)
                    return
                }
                let proxy = HTTPProxyHandler(
                    listener: listener, runtime: runtime, connection: connection, headGuard: nil, responseEncoder: DownstreamResponseEncoder(),
                    logger: logger, isStream: true
                )
                try stream.pipeline.syncOperations.addHandler(HTTP2StreamAdapter(proxy: proxy, limits: listener.limits))
                try stream.pipeline.syncOperations.addHandler(proxy)
                connectionHandler.streamOpened(try? stream.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID))
                stream.closeFuture.assumeIsolatedUnsafeUnchecked().whenComplete { _ in connectionHandler.streamClosed() }
            }
        }
        try sync.addHandler(connectionHandler)
    }
}
