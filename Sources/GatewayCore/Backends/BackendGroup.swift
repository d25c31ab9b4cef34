import Logging
import Atomics
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A compiled backend server group: its servers, how to pick one, and how to connect (HTTP or HTTPS).
///
/// A group whose servers are all IP addresses has fixed members. One with host names has members that
/// `BackendDiscovery` replaces as the names' addresses change; the request path reads them under a lock.
package final class BackendGroup: Sendable {
    package let name: String
    package let entries: [BackendServerEntry]
    package let balance: BalanceStrategy
    package let tlsContext: NIOSSLContext?
    package let serverName: String?
    package let connectTimeout: TimeAmount
    package let responseTimeout: TimeAmount
    package let healthCheck: HealthCheckConfig?
    package let resolveInterval: TimeAmount
    package let dnsFamily: DNSFamily
    private let maxIdle: Int
    private let passive: PassiveHealthConfig?
    private let metrics: GatewayMetrics
    private let fixed: BackendMembers?
    private let discovered: NIOLockedValueBox<BackendMembers>?
    /// The event loops whose requests use the servers' pools (set by `prepare`), for servers that join later.
    private let eventLoops = NIOLockedValueBox<[any EventLoop]>([])

    package init(name: String, entries: [BackendServerEntry], balance: BalanceStrategy, tlsContext: NIOSSLContext?, serverName: String?,
                 connectTimeout: TimeAmount, responseTimeout: TimeAmount, healthCheck: HealthCheckConfig? = nil,
                 maxIdle: Int = 64, passive: PassiveHealthConfig? = nil, metrics: GatewayMetrics,
                 resolveInterval: TimeAmount = .seconds(10), dnsFamily: DNSFamily = .all) {
        self.name = name
        self.entries = entries
        self.balance = balance
        self.tlsContext = tlsContext
        self.serverName = serverName
        self.connectTimeout = connectTimeout
        self.responseTimeout = responseTimeout
        self.healthCheck = healthCheck
        self.resolveInterval = resolveInterval
        self.dnsFamily = dnsFamily
        self.maxIdle = maxIdle
        self.passive = passive
        self.metrics = metrics
        // IP entries are servers from the start; host names join once resolved.
        let servers = entries.compactMap { entry in
            entry.ipAddress.map { Self.makeServer(entry, at: $0, backend: name, maxIdle: maxIdle, passive: passive, metrics: metrics) }
        }
        let initial = BackendMembers(servers: servers, balance: balance)
        if entries.contains(where: \.isHostName) {
            fixed = nil
            discovered = NIOLockedValueBox(initial)
        } else {
            fixed = initial
            discovered = nil
        }
    }

    /// The servers now, with their balancer. A request takes them once and keeps them for its retries.
    package var members: BackendMembers {
        if let fixed { return fixed }
        return discovered!.withLockedValue { $0 }
    }

    package var servers: [BackendServer] { members.servers }

    /// Whether some servers come from host names (and `BackendDiscovery` keeps them current).
    package var usesDiscovery: Bool { discovered != nil }

    private static func makeServer(_ entry: BackendServerEntry, at address: SocketAddress, backend: String, maxIdle: Int,
                                   passive: PassiveHealthConfig?, metrics: GatewayMetrics) -> BackendServer {
        let label = entry.isHostName ? "\(entry.address)/\(address.text)" : entry.address
        return BackendServer(
            name: entry.address, host: entry.host, socketAddress: address, weight: entry.weight, maxIdle: maxIdle, passive: passive,
            metricLabel: label, discovered: entry.isHostName,
            metrics: entry.isHostName ? metrics.acquireDiscoveredServer(backend: backend, server: label) : metrics.backendServer(backend: backend, server: label)
        )
    }

    /// A server for `entry` at `address`, its pool ready for the loops given to `prepare`.
    package func makeServer(_ entry: BackendServerEntry, at address: SocketAddress) -> BackendServer {
        let server = Self.makeServer(entry, at: address, backend: name, maxIdle: maxIdle, passive: passive, metrics: metrics)
        let loops = eventLoops.withLockedValue { $0 }
        if !loops.isEmpty { server.pool.prepare(eventLoops: loops) }
        return server
    }

    /// Gives every server's keep-alive pool its per-loop lists (and servers that join later too).
    package func prepare(eventLoops loops: [any EventLoop]) {
        eventLoops.withLockedValue { $0 = loops }
        for server in servers { server.pool.prepare(eventLoops: loops) }
    }

    /// Makes `servers` the group's members. Requests already under way keep the members they took; the idle
    /// connections of servers that left are closed, and their busy ones are closed when their exchange ends.
    package func replaceServers(_ servers: [BackendServer]) {
        guard let discovered else { return }
        let next = BackendMembers(servers: servers, balance: balance)
        let previous = discovered.withLockedValue { members in
            defer { members = next }
            return members
        }
        for server in previous.servers where !servers.contains(where: { $0 === server }) { retire(server) }
    }

    /// A server that left: its idle connections close, and its use of its metric series ends (once).
    private func retire(_ server: BackendServer) {
        server.pool.closeAll()
        if server.isDiscovered, server.metricsReleased.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            metrics.releaseDiscoveredServer(backend: name, server: server.metricLabel)
        }
    }

    /// Makes the addresses of the host names that `previous` (the same group in the generation a reload
    /// replaces) also names the ones `previous` has now, so that a reload neither waits for DNS nor loses a
    /// known address. Called before the new generation resolves its new names, and again just before the swap
    /// (the previous generation's discovery may have changed them meanwhile); names `previous` does not have
    /// keep what this generation resolved.
    package func adoptAddresses(from previous: BackendGroup) {
        guard usesDiscovery else { return }
        let current = servers
        let previousNames = Set(previous.entries.filter(\.isHostName).map(\.address))
        var next = current.filter { !$0.isDiscovered }
        var named = Set<String>()
        for entry in entries where entry.isHostName && named.insert(entry.address).inserted {
            if previousNames.contains(entry.address) {
                for old in previous.servers where old.name == entry.address {
                    next.append(current.first { $0.name == entry.address && $0.socketAddress == old.socketAddress } ?? makeServer(entry, at: old.socketAddress))
                }
            } else {
                next.append(contentsOf: current.filter { $0.name == entry.address })
            }
        }
        replaceServers(next)
    }

    /// SNI carries names only; an IP literal host is verified against the certificate's IP SANs instead.
    package func sniName(for server: BackendServer) -> String? {
        serverName ?? ((try? SocketAddress(ipAddress: server.host, port: 0)) == nil ? server.host : nil)
    }

    /// Opens a new connection to `server` on `eventLoop` (the client's loop).
    /// Call it on `eventLoop`: the connection handler is bound to that loop, where its future completes.
    package func connect(to server: BackendServer, on eventLoop: any EventLoop) -> EventLoopFuture<NIOLoopBound<BackendConnection>> {
        let connection = NIOLoopBound(BackendConnection(server: server), eventLoop: eventLoop)
        let tlsContext = self.tlsContext
        let sniName = self.sniName(for: server)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            // Level IPPROTO_TCP (NIO's default for ClientBootstrap too, stated here so it cannot silently go).
            // A failure fails the connect, which is logged and counted as a backend connect error.
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tlsContext {
                        try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: sniName))
                    }
                    // The connection handler writes requests with the gateway's encoder (NIO's bytes, the head
                    // written in one pass) without an outbound header validator (a pass over every header of
                    // every request): each header that leaves was parsed by the gateway's request parser,
                    // checked by the plugin host (`HeaderValidation`) when a plugin set it, or written by the
                    // gateway itself. It parses the responses (and learns from the heads it writes which
                    // responses have no body: HEAD).
                    try sync.addHandler(connection.value)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        return bootstrap.connect(to: server.socketAddress).map { _ in connection }
    }

    package func shutdown() {
        for server in servers { retire(server) }
    }
}
