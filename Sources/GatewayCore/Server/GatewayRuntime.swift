import Atomics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One generation of the compiled configuration: everything the request path needs, built and validated once.
///
/// A reload compiles a new generation and swaps it in for new connections; the old one is *retired*. A retired
/// generation stays alive while connections that started on it are open, then tears itself down: plugin
/// instances are destroyed (after their last request) and idle backend connections closed.
public final class GatewayRuntime: Sendable {
    package let listeners: [CompiledListener]
    package let backends: [BackendGroup]
    public let shutdownTimeout: ConfigDuration
    /// The configuration this generation was compiled from (for `/config`).
    package let config: GatewayConfig
    package let metrics: GatewayMetrics
    /// When this generation was compiled.
    package let loadedAt: Date
    /// The files this generation was built from (the configuration file, and every file it names), as they were
    /// when read; `FileWatchService` reloads when they change.
    package let fileStamps: [String: FileStamp]

    /// Open connections times 2, plus 1 once retired: one atomic word, so that "retired with no connection
    /// left" is reached exactly once and no connection can start on a generation that is being torn down.
    private let state = ManagedAtomic<Int>(0)
    private let checkers = NIOLockedValueBox<[HealthChecker]>([])
    /// Who resolves backend host names: the configured `resolver`, or the system's.
    package let hostResolver: any HostResolver
    private let discoveries = NIOLockedValueBox<[BackendDiscovery]>([])
    /// The admin listener's token and TLS context (nil without `admin`).
    package let admin: AdminAccess?
    /// Every certificate and CRL file this generation uses, with its expiry (for the console).
    package let expiring: [ExpiringItem]

    package init(listeners: [CompiledListener], backends: [BackendGroup], config: GatewayConfig, metrics: GatewayMetrics,
                 fileStamps: [String: FileStamp] = [:], hostResolver: any HostResolver = SystemHostResolver(),
                 admin: AdminAccess? = nil, expiring: [ExpiringItem] = []) {
        self.fileStamps = fileStamps
        self.admin = admin
        self.expiring = expiring
        self.hostResolver = hostResolver
        self.listeners = listeners
        self.backends = backends
        self.shutdownTimeout = config.shutdownTimeout
        self.config = config
        self.metrics = metrics
        self.loadedAt = Date()
        teardownDone.enter()
    }

    /// Starts what runs in the background for this generation: the active health checks.
    /// Gives every backend server's keep-alive pool its per-loop lists for `group`'s loops. Called before the
    /// generation's first connection (before its sockets bind); has no side effect beyond memory.
    package func prepare(group: any EventLoopGroup) {
        let loops = Array(group.makeIterator())
        for backend in backends { backend.prepare(eventLoops: loops) }
    }

    /// Resolves, all at once, the host names this generation must know before it serves: every name at
    /// start-up; after a reload (`previous`), the names the previous generation did not have. A name that was
    /// already failing is not waited for, nor is one that does not resolve now: it is logged, left without
    /// servers, and tried again every second by discovery.
    package func resolveBackends(group: any EventLoopGroup, logger: Logger, previous: GatewayRuntime? = nil) async {
        let made = backends.filter(\.usesDiscovery).map { backend in
            BackendDiscovery(backend: backend, resolver: hostResolver, eventLoop: group.next(), logger: logger, metrics: metrics)
        }
        discoveries.withLockedValue { $0 = made }
        let rounds = made.map { discovery -> EventLoopFuture<TimeAmount>? in
            let backend = discovery.backend
            let known = previous?.backends.first { $0.name == backend.name }.map { Set($0.entries.map(\.address)) } ?? []
            let missing = backend.entries.contains { entry in
                entry.isHostName && !known.contains(entry.address) && !backend.servers.contains { $0.name == entry.address }
            }
            return missing ? discovery.resolveNow() : nil
        }
        var delays: [NIODeadline] = []
        for (discovery, round) in zip(made, rounds) {
            if let round {
                delays.append(.now() + ((try? await round.get()) ?? BackendDiscovery.minimumInterval))
            } else {
                let backend = discovery.backend
                let unresolved = backend.entries.contains { entry in entry.isHostName && !backend.servers.contains { $0.name == entry.address } }
                // Carry on the previous generation's schedule (a TTL shorter than resolve_interval included).
                let inherited = previous?.discoveries.withLockedValue { $0 }.first { $0.backend.name == backend.name }?.timeUntilNextRound
                delays.append(.now() + (unresolved ? BackendDiscovery.minimumInterval : min(inherited ?? backend.resolveInterval, backend.resolveInterval)))
            }
        }
        pendingDiscoveryDelays.withLockedValue { $0 = delays }
    }

    /// When each discovery's next round is due, as `resolveBackends` left it (consumed by `activate`, which
    /// may come later: binding sockets takes time).
    private let pendingDiscoveryDelays = NIOLockedValueBox<[NIODeadline]>([])

    /// Starts what runs in the background for this generation: active health checks and DNS discovery.
    package func activate(group: any EventLoopGroup, logger: Logger) {
        let started = backends.compactMap { backend in
            backend.healthCheck.map { HealthChecker(backend: backend, config: $0, eventLoop: group.next(), logger: logger) }
        }
        checkers.withLockedValue { $0 = started }
        for checker in started { checker.start() }
        let delays = pendingDiscoveryDelays.withLockedValue { $0 }
        for (index, discovery) in discoveries.withLockedValue({ $0 }).enumerated() {
            let now = NIODeadline.now()
            let delay = index < delays.count ? (delays[index] > now ? delays[index] - now : .zero) : discovery.backend.resolveInterval
            discovery.start(after: delay)
        }
    }

    /// Registers a new connection; false when the generation is retired (the caller takes the current one).
    package func connectionOpened() -> Bool {
        var current = state.load(ordering: .relaxed)
        while current & 1 == 0 {
            let (exchanged, original) = state.compareExchange(expected: current, desired: current + 2, ordering: .sequentiallyConsistent)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Called from the connection's close callback on its event loop; the teardown (plugin `destroy`, which
    /// may flush files or wait for blocking hooks) runs on a background thread instead.
    package func connectionClosed() {
        if state.wrappingDecrementThenLoad(by: 2, ordering: .sequentiallyConsistent) == 1 {
            DispatchQueue.global().async { self.tearDown() }
        }
    }

    package var isRetired: Bool { state.load(ordering: .relaxed) & 1 == 1 }

    private let draining = ManagedAtomic<Bool>(false)

    /// Shutting down after `drain_delay`: connections are still served, each response closes its connection.
    package func startDraining() { draining.store(true, ordering: .relaxed) }

    /// Whether every response closes its connection: the generation is retired (a reload replaced it) or the
    /// gateway is draining before shutdown. (A connection whose listener is still bound moves on to the current
    /// generation instead: see `HTTPProxyHandler`.)
    package var closesConnections: Bool { isRetired || draining.load(ordering: .relaxed) }

    /// The gateway is draining before shutdown.
    package var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Connections still open on this generation.
    package var openConnections: Int { state.load(ordering: .relaxed) >> 1 }

    /// Takes the generation out of service: no new connection starts on it, its health checks stop, and it
    /// tears down once its last connection closes (at once if none is open).
    package func retire() {
        for checker in checkers.withLockedValue({ $0 }) { checker.stop() }
        for discovery in discoveries.withLockedValue({ $0 }) { discovery.stop() }
        if state.wrappingIncrementThenLoad(by: 1, ordering: .sequentiallyConsistent) == 1 { tearDown() }
    }

    private let tornDown = ManagedAtomic<Bool>(false)
    /// Held while plugin instances are reopened or destroyed: a SIGHUP reopen never races the teardown.
    private let pluginLock = NIOLock()
    /// Left once the teardown has finished (entered at init).
    private let teardownDone = DispatchGroup()

    /// Destroys the plugin instances and closes idle backend connections, once.
    package func tearDown() {
        guard tornDown.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else { return }
        for checker in checkers.withLockedValue({ $0 }) { checker.stop() }
        for discovery in discoveries.withLockedValue({ $0 }) { discovery.stop() }
        pluginLock.withLock { destroyPlugins() }
        for backend in backends { backend.shutdown() }
        teardownDone.leave()
    }

    /// Returns once `tearDown` has finished (on whichever thread ran it).
    package func tornDownCompletely() async {
        await withCheckedContinuation { continuation in
            teardownDone.notify(queue: .global()) { continuation.resume() }
        }
    }

    package var isTornDown: Bool { tornDown.load(ordering: .relaxed) }

    /// Asks every plugin instance to reopen its files (SIGHUP, after log rotation).
    public func reopenPlugins() {
        pluginLock.withLock {
            guard !isTornDown else { return }
            for listener in listeners { listener.plugins?.reopen() }
        }
    }

    /// Destroys every plugin instance; called once no request can reach them any more.
    public func destroyPlugins() {
        for listener in listeners { listener.plugins?.destroy() }
    }

    /// Takes over the addresses that `previous` resolved for host names this generation still names, so that
    /// a reload does not wait for DNS for them (before `resolveBackends`).
    package func adoptAddresses(from previous: GatewayRuntime) {
        for backend in backends {
            guard let old = previous.backends.first(where: { $0.name == backend.name }) else { continue }
            backend.adoptAddresses(from: old)
        }
    }

    /// Copies the health of servers that this generation shares with `previous` (same backend, configured
    /// address and address), so that a reload neither forgets a down server nor resets its failure count.
    /// Called just before the swap, so that it copies the latest state.
    package func inheritHealth(from previous: GatewayRuntime) {
        for backend in backends {
            guard let old = previous.backends.first(where: { $0.name == backend.name }) else { continue }
            for server in backend.servers {
                if let match = old.servers.first(where: { $0.name == server.name && $0.address == server.address }) {
                    server.inheritHealth(from: match, activeChecks: backend.healthCheck != nil)
                }
            }
        }
    }

    /// True when every backend group has at least one server in rotation.
    package var everyBackendHasAServer: Bool {
        let now = NIODeadline.now()
        return backends.allSatisfy { backend in backend.servers.contains { $0.isAvailable(now: now) } }
    }

    /// Loads, validates and compiles a configuration file; throws `ConfigValidationError` naming every problem.
    public static func load(configPath: String) throws -> GatewayRuntime {
        try load(configPath: configPath, metrics: GatewayMetrics())
    }

    package static func load(configPath: String, metrics: GatewayMetrics) throws -> GatewayRuntime {
        let configFile = URL(fileURLWithPath: configPath).standardized.path
        let configStamp = FileStamp(path: configFile)  // before the read (see RuntimeCompiler.stamp)
        let config = try ConfigLoader.load(path: configPath)
        let base = URL(fileURLWithPath: configPath).deletingLastPathComponent().path
        let compiler = RuntimeCompiler(baseDirectory: base, source: configPath, metrics: metrics)
        compiler.stamp(configFile, as: configStamp)
        return try compiler.compile(config)
    }
}
