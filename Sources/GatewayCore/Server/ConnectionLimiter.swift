import Atomics
import NIOConcurrencyHelpers
import NIOCore

/// Counts one listening socket's open connections, in total and per client IP address, and admits a new one
/// only under `max_connections` and `max_connections_per_ip` (read from the live generation at each accept, so
/// a reload changes them). Lives with the socket, across reloads. One lock per accept and per close, never
/// per request.
package final class ConnectionLimiter: Sendable {
    package enum Decision: Equatable, Sendable {
        case admitted
        /// The listener has `max_connections` open.
        case listenerFull
        /// This client IP address has `max_connections_per_ip` open.
        case clientFull
    }

    private struct State {
        var total = 0
        var byIP: [String: Int] = [:]
    }

    private let state = NIOLockedValueBox(State())
    /// Uptime nanoseconds of the last refusal logged, and refusals since: the log gets one line per second.
    private let lastLogged = ManagedAtomic<Int64>(0)
    private let unlogged = ManagedAtomic<Int>(0)

    package init() {}

    /// Admits a connection from `ip` and counts it, or says why not (nothing counted). 0 means no limit.
    package func admit(ip: String, maxTotal: Int, maxPerIP: Int) -> Decision {
        state.withLockedValue { state in
            if maxTotal > 0, state.total >= maxTotal { return .listenerFull }
            let fromIP = state.byIP[ip, default: 0]
            if maxPerIP > 0, fromIP >= maxPerIP { return .clientFull }
            state.total += 1
            state.byIP[ip] = fromIP + 1
            return .admitted
        }
    }

    /// A connection admitted under `old` (its socket peer: a load balancer) is from `new` (its PROXY header):
    /// counts it under `new` if that address has fewer than `maxPerIP` other connections open (0: no limit);
    /// false, and nothing changed, if not.
    package func reassign(from old: String, to new: String, maxPerIP: Int) -> Bool {
        state.withLockedValue { state in
            let fromNew = state.byIP[new, default: 0]
            let others = old == new ? fromNew - 1 : fromNew
            if maxPerIP > 0, others >= maxPerIP { return false }
            guard old != new else { return true }
            if let count = state.byIP[old], count > 1 { state.byIP[old] = count - 1 } else { state.byIP.removeValue(forKey: old) }
            state.byIP[new] = fromNew + 1
            return true
        }
    }

    /// An admitted connection from `ip` closed.
    package func release(ip: String) {
        state.withLockedValue { state in
            state.total -= 1
            if let count = state.byIP[ip], count > 1 { state.byIP[ip] = count - 1 } else { state.byIP.removeValue(forKey: ip) }
        }
    }

    package var openConnections: Int { state.withLockedValue { $0.total } }

    /// Whether to log this refusal now (at most one line a second), with how many were refused since the last.
    package func shouldLogRefusal(now: NIODeadline = .now()) -> Int? {
        unlogged.wrappingIncrement(ordering: .relaxed)
        let nowNanos = Int64(now.uptimeNanoseconds)
        let last = lastLogged.load(ordering: .relaxed)
        guard nowNanos - last >= 1_000_000_000, lastLogged.compareExchange(expected: last, desired: nowNanos, ordering: .relaxed).exchanged else {
            return nil
        }
        return unlogged.exchange(0, ordering: .relaxed)
    }
}
