import Atomics
import NIOCore

/// One server of a backend group, with its live counters, its health and its keep-alive connection pool.
///
/// A server is in rotation unless active health checks marked it down or passive ejection took it out after
/// consecutive connection failures. Both states are atomics read on the request path without locks.
///
/// A configured IP address is one server; a configured host name becomes one server per address it resolves to
/// (`BackendDiscovery`), each with its own health and pool.
package final class BackendServer: Sendable {
    /// The address connected to, as logs, metrics and Audit show it: `10.0.1.10:8000`, `[2001:db8::1]:8000`.
    package let address: String
    /// The configured `address` this server comes from (`api.internal:8000`, or the same as `address`).
    package let name: String
    /// The configured host (a name or an IP literal): the TLS server name checked, and the health probes' Host.
    package let host: String
    package let port: Int
    package let socketAddress: SocketAddress
    /// The `server` label of its metrics: the configured address for an IP entry, `name/address` for an address
    /// of a host name (two names may share an address; their servers' health is not one).
    package let metricLabel: String
    /// Made by DNS discovery (an address of a host name): its metric use is released when it leaves.
    package let isDiscovered: Bool
    /// Set once its metric use was released (leaving the members, or its generation's teardown, whichever
    /// comes first).
    package let metricsReleased = ManagedAtomic<Bool>(false)
    package let weight: Int
    /// Requests in flight on this server (least_connections).
    package let activeRequests = ManagedAtomic<Int>(0)
    package let pool: BackendConnectionPool
    package let metrics: BackendServerMetrics
    package let passive: PassiveHealthConfig?

    /// Set by active health checks.
    package let checkedHealthy = ManagedAtomic<Bool>(true)
    /// Uptime nanoseconds until which passive ejection keeps the server out; 0 when not ejected.
    package let ejectedUntil = ManagedAtomic<Int64>(0)
    /// Connection failures in a row (passive ejection).
    package let consecutiveFailures = ManagedAtomic<Int>(0)

    package init(name: String, host: String, socketAddress: SocketAddress, weight: Int, maxIdle: Int, passive: PassiveHealthConfig?,
                 metricLabel: String, discovered: Bool = false, metrics: BackendServerMetrics) {
        self.address = socketAddress.text
        self.name = name
        self.host = host
        self.port = socketAddress.port ?? 0
        self.socketAddress = socketAddress
        self.metricLabel = metricLabel
        self.isDiscovered = discovered
        self.weight = weight
        self.pool = BackendConnectionPool(maxIdlePerEventLoop: maxIdle)
        self.passive = passive
        self.metrics = metrics
    }

    /// Whether requests may be sent to this server now.
    package func isAvailable(now: NIODeadline) -> Bool {
        guard checkedHealthy.load(ordering: .relaxed) else { return false }
        let until = ejectedUntil.load(ordering: .relaxed)
        return until == 0 || Int64(now.uptimeNanoseconds) >= until
    }

    /// A connection to the server was established: the failure streak ends.
    package func connectSucceeded() {
        if consecutiveFailures.load(ordering: .relaxed) != 0 { consecutiveFailures.store(0, ordering: .relaxed) }
        if ejectedUntil.load(ordering: .relaxed) != 0 {
            ejectedUntil.store(0, ordering: .relaxed)
            updateGauge()
        }
    }

    /// A connection attempt failed; returns true when this failure ejected the server.
    @discardableResult
    package func connectFailed(now: NIODeadline = .now()) -> Bool {
        let failures = consecutiveFailures.wrappingIncrementThenLoad(ordering: .relaxed)
        guard let passive, failures >= passive.consecutiveFailures else { return false }
        consecutiveFailures.store(0, ordering: .relaxed)
        ejectedUntil.store(Int64(now.uptimeNanoseconds) + passive.ejectFor.nanoseconds, ordering: .relaxed)
        metrics.ejections.increment()
        updateGauge()
        return true
    }

    /// Active health check verdict (called on the checker's event loop when the state flips).
    package func setChecked(healthy: Bool) {
        checkedHealthy.store(healthy, ordering: .relaxed)
        updateGauge()
    }

    /// Carries a server's state across a reload, for the mechanisms the new configuration still uses: a
    /// server marked down by health checks stays down only if the backend still has health checks.
    package func inheritHealth(from previous: BackendServer, activeChecks: Bool) {
        if activeChecks { checkedHealthy.store(previous.checkedHealthy.load(ordering: .relaxed), ordering: .relaxed) }
        if passive != nil {
            ejectedUntil.store(previous.ejectedUntil.load(ordering: .relaxed), ordering: .relaxed)
            consecutiveFailures.store(previous.consecutiveFailures.load(ordering: .relaxed), ordering: .relaxed)
        }
        updateGauge()
    }

    private func updateGauge() {
        metrics.healthy.record(isAvailable(now: .now()) ? 1 : 0)
    }
}
