import Atomics
import NIOCore

/// What the console shows of one chain entry since it was created (a reload makes new entries): its
/// on_request_headers calls, the requests it denied (an answer of 400 or more) and its failures, and the time
/// per call measured on one call in 64 (two clock reads per 64 calls: nothing measurable on the request path).
package final class PluginCallStats: Sendable {
    private let calls = ManagedAtomic<UInt64>(0)
    private let denials = ManagedAtomic<UInt64>(0)
    private let failures = ManagedAtomic<UInt64>(0)
    private let timedCalls = ManagedAtomic<UInt64>(0)
    private let timedNanoseconds = ManagedAtomic<UInt64>(0)

    package init() {}

    /// Runs one hook call, counting it and timing it when its turn comes.
    @inline(__always)
    package func call(_ body: () -> Int32) -> Int32 {
        let n = calls.loadThenWrappingIncrement(ordering: .relaxed)
        guard n & 63 == 0 else { return body() }
        let start = NIODeadline.now()
        let code = body()
        timedNanoseconds.wrappingIncrement(by: UInt64(max(0, (NIODeadline.now() - start).nanoseconds)), ordering: .relaxed)
        timedCalls.wrappingIncrement(ordering: .relaxed)
        return code
    }

    package func denied() { denials.wrappingIncrement(ordering: .relaxed) }
    package func failed() { failures.wrappingIncrement(ordering: .relaxed) }

    package struct Snapshot: Sendable {
        package var calls: UInt64
        package var denials: UInt64
        package var failures: UInt64
        /// Mean time per call of the timed calls, in microseconds (nil before the first).
        package var meanMicroseconds: Double?
    }

    package var snapshot: Snapshot {
        let timed = timedCalls.load(ordering: .relaxed)
        let nanos = timedNanoseconds.load(ordering: .relaxed)
        return Snapshot(
            calls: calls.load(ordering: .relaxed), denials: denials.load(ordering: .relaxed), failures: failures.load(ordering: .relaxed),
            meanMicroseconds: timed == 0 ? nil : Double(nanos) / Double(timed) / 1000
        )
    }
}
