import Atomics
import Logging
import NIOCore

/// Keeps the servers of one backend group in step with the addresses of its host names: resolves every name,
/// makes each address a server (a known address keeps its server, with its health and pool), drains the ones
/// that disappeared, and does it again after `resolve_interval`, or sooner when a `resolver`'s answer has a
/// shorter TTL (never sooner than one second). A name that fails to resolve keeps its last known addresses;
/// the failure is logged and counted. All state lives on `eventLoop`.
package final class BackendDiscovery: Sendable {
    private struct State {
        var task: Scheduled<Void>?
        var stopped = false
        /// The last failure logged per name, so that a failing name is logged when it starts or changes failing.
        var lastFailure: [String: String] = [:]
    }

    /// The shortest wait between two rounds, whatever the TTLs say.
    package static let minimumInterval = TimeAmount.seconds(1)
    /// Addresses of one name that become servers at most (the first in text order); more are logged and left
    /// out, so that an answer cannot grow the server list, its pools and its metric series without bound.
    package static let maxAddressesPerName = 64

    package let backend: BackendGroup
    private let resolver: any HostResolver
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let metrics: GatewayMetrics
    private let state: NIOLoopBoundBox<State>
    /// Uptime nanoseconds at which the next round is due (0 before the first is scheduled): a reload's new
    /// generation starts its rounds then, keeping the TTL the answers gave.
    private let nextDue = ManagedAtomic<Int64>(0)

    package init(backend: BackendGroup, resolver: any HostResolver, eventLoop: any EventLoop, logger: Logger, metrics: GatewayMetrics) {
        self.backend = backend
        self.resolver = resolver
        self.eventLoop = eventLoop
        self.logger = logger
        self.metrics = metrics
        self.state = .makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    /// Schedules the rounds, the first after `delay`.
    package func start(after delay: TimeAmount) {
        eventLoop.execute { [self] in schedule(after: delay) }
    }

    package func stop() {
        eventLoop.execute { [self] in
            state.value.stopped = true
            state.value.task?.cancel()
            state.value.task = nil
        }
    }

    /// One round now: resolves every host name and applies the result; completes with the time until the next.
    package func resolveNow() -> EventLoopFuture<TimeAmount> {
        eventLoop.flatSubmit { [self] in round() }
    }

    /// Time until the next round is due, nil when none is scheduled.
    package var timeUntilNextRound: TimeAmount? {
        let due = nextDue.load(ordering: .relaxed)
        guard due > 0 else { return nil }
        return .nanoseconds(max(0, due - Int64(NIODeadline.now().uptimeNanoseconds)))
    }

    private func schedule(after delay: TimeAmount) {
        guard !state.value.stopped else { return }
        nextDue.store(Int64(NIODeadline.now().uptimeNanoseconds) + delay.nanoseconds, ordering: .relaxed)
        state.value.task = eventLoop.scheduleTask(in: delay) { [self] in
            round().whenSuccess { next in self.schedule(after: next) }
        }
    }

    private func round() -> EventLoopFuture<TimeAmount> {
        var seen = Set<String>()
        let names = backend.entries.filter { $0.isHostName && seen.insert($0.address).inserted }
        let lookups = names.map { entry in
            resolver.resolve(entry.host, family: backend.dnsFamily, on: eventLoop)
                .map { Result<ResolvedHost, any Error>.success($0) }
                .recover { .failure($0) }
        }
        return EventLoopFuture.whenAllSucceed(lookups, on: eventLoop).map { [self] results in
            apply(Array(zip(names, results)))
        }
    }

    /// Builds the new member list in entry order and swaps it in when it differs; returns the next delay.
    private func apply(_ results: [(BackendServerEntry, Result<ResolvedHost, any Error>)]) -> TimeAmount {
        // A round that was under way when the generation was retired changes nothing.
        guard !state.value.stopped else { return backend.resolveInterval }
        let current = backend.servers
        var next: [BackendServer] = []
        var wait = backend.resolveInterval
        var resolved: [String: [SocketAddress]] = [:]
        for (entry, result) in results where resolved[entry.address] == nil {
            switch result {
            case .success(let host):
                var addresses = Set(host.addresses.compactMap { try? SocketAddress(ipAddress: $0, port: entry.port) })
                // A family whose query failed while the other answered keeps its last known addresses.
                for server in current where server.name == entry.address {
                    let family: DNSFamily = server.socketAddress.protocol == .inet6 ? .ipv6 : .ipv4
                    if host.failedFamilies.contains(family) { addresses.insert(server.socketAddress) }
                }
                if addresses.isEmpty {
                    failed(entry, reason: "no usable address in \(host.addresses)")
                    continue
                }
                var sorted = addresses.sorted { $0.text < $1.text }
                if sorted.count > Self.maxAddressesPerName {
                    logger.warning("backend host name has more addresses than become servers", metadata: [
                        "backend": "\(backend.name)", "server": "\(entry.address)", "addresses": "\(sorted.count)",
                        "used": "\(Self.maxAddressesPerName)",
                    ])
                    sorted = Array(sorted.prefix(Self.maxAddressesPerName))
                }
                resolved[entry.address] = sorted
                metrics.backendResolutions(backend: backend.name, outcome: "success").increment()
                if state.value.lastFailure.removeValue(forKey: entry.address) != nil {
                    logger.notice("backend host name resolves again", metadata: ["backend": "\(backend.name)", "server": "\(entry.address)"])
                }
                if let ttl = host.ttl { wait = min(wait, max(ttl, Self.minimumInterval)) }
            case .failure(let error):
                failed(entry, reason: "\(error)")
            }
        }
        var named = Set<String>()
        for entry in backend.entries {
            if let ip = entry.ipAddress {
                // An address listed twice keeps both of its servers.
                next.append(current.first { server in server.name == entry.address && server.socketAddress == ip && !next.contains { $0 === server } }
                    ?? backend.makeServer(entry, at: ip))
                continue
            }
            // A name listed twice is one set of servers.
            guard named.insert(entry.address).inserted else { continue }
            if let addresses = resolved[entry.address] {
                for address in addresses {
                    next.append(current.first { $0.name == entry.address && $0.socketAddress == address } ?? backend.makeServer(entry, at: address))
                }
            } else {
                // Not resolved this round: its last known servers stay.
                let known = current.filter { $0.name == entry.address }
                next.append(contentsOf: known)
                if known.isEmpty { wait = min(wait, Self.minimumInterval) }
            }
        }
        let added = next.filter { server in !current.contains { $0 === server } }
        let removed = current.filter { server in !next.contains { $0 === server } }
        if !added.isEmpty || !removed.isEmpty {
            backend.replaceServers(next)
            logger.notice("backend servers changed by DNS", metadata: [
                "backend": "\(backend.name)", "added": "\(added.map(\.address))", "removed": "\(removed.map(\.address))",
                "servers": "\(next.count)",
            ])
        }
        metrics.backendServerCount(backend: backend.name).record(next.count)
        return wait
    }

    private func failed(_ entry: BackendServerEntry, reason: String) {
        metrics.backendResolutions(backend: backend.name, outcome: "failure").increment()
        let known = backend.servers.filter { $0.name == entry.address }.map(\.address)
        if state.value.lastFailure.updateValue(reason, forKey: entry.address) != reason {
            logger.warning("backend host name did not resolve: keeping its last known addresses", metadata: [
                "backend": "\(backend.name)", "server": "\(entry.address)", "error": "\(reason)", "kept": "\(known)",
            ])
        }
    }
}
