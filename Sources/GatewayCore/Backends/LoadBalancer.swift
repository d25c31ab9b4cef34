import Atomics
import NIOCore

/// Chooses the order in which a request tries a group's servers. Lock-free: weighted round robin walks a
/// schedule precomputed with nginx's smooth weighted round-robin, so weights interleave (a,a,b,a,a,b...)
/// instead of bursting.
package struct LoadBalancer: Sendable {
    package let strategy: BalanceStrategy
    package let servers: [BackendServer]
    /// Server indices in smooth-WRR order; its length is the sum of the (reduced) weights.
    package let schedule: [Int]
    private let counter = ManagedAtomic<Int>(0)

    package init(strategy: BalanceStrategy, servers: [BackendServer]) {
        self.strategy = strategy
        self.servers = servers
        self.schedule = Self.smoothSchedule(weights: servers.map(\.weight))
    }

    /// The first server in rotation to try (nil when none is); on failure callers move to `next(after:now:)`.
    package func pick(clientIP: String, now: NIODeadline) -> Int? {
        guard let first = pick(clientIP: clientIP) else { return nil }
        if servers[first].isAvailable(now: now) { return first }
        return next(after: first, now: now)
    }

    /// The next server in rotation after `index`, in ring order; nil when no other is.
    package func next(after index: Int, now: NIODeadline) -> Int? {
        var candidate = index
        for _ in 1..<max(servers.count, 1) {
            candidate = (candidate + 1) % servers.count
            if servers[candidate].isAvailable(now: now) { return candidate }
        }
        return nil
    }

    /// The strategy's choice, whatever the servers' health.
    package func pick(clientIP: String) -> Int? {
        guard !servers.isEmpty else { return nil }
        switch strategy {
        case .roundRobin:
            let n = counter.loadThenWrappingIncrement(ordering: .relaxed)
            return schedule[Int(UInt(bitPattern: n) % UInt(schedule.count))]
        case .sourceIPHash:
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in clientIP.utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            return schedule[Int(hash % UInt64(schedule.count))]
        case .leastConnections:
            // Fewest in-flight requests relative to weight; ties rotate so equal servers share load.
            let start = Int(UInt(bitPattern: counter.loadThenWrappingIncrement(ordering: .relaxed)) % UInt(servers.count))
            let now = NIODeadline.now()
            var best = start
            var bestScore = Double.infinity
            for offset in 0..<servers.count {
                let index = (start + offset) % servers.count
                guard servers[index].isAvailable(now: now) else { continue }
                let score = Double(servers[index].activeRequests.load(ordering: .relaxed)) / Double(servers[index].weight)
                if score < bestScore {
                    best = index
                    bestScore = score
                }
            }
            return best
        }
    }

    package static func smoothSchedule(weights: [Int]) -> [Int] {
        guard !weights.isEmpty else { return [] }
        let divisor = weights.reduce(0) { gcd($0, $1) }
        let reduced = weights.map { max(1, $0 / max(divisor, 1)) }
        let total = reduced.reduce(0, +)
        var current = [Int](repeating: 0, count: reduced.count)
        var schedule: [Int] = []
        schedule.reserveCapacity(total)
        for _ in 0..<total {
            var best = 0
            for i in reduced.indices {
                current[i] += reduced[i]
                if current[i] > current[best] { best = i }
            }
            current[best] -= total
            schedule.append(best)
        }
        return schedule
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}
