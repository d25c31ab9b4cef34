import Atomics
import NIOCore

/// What the console shows of one chain entry since it was created (a reload makes new entries): its
/// on_request_headers calls, the requests it denied (an answer of 400 or more) and its failures, and the time
/// per call measured on one call in 64 (not the first, which pays for lazy set-up). A value in its `PluginInstance` with unmanaged atomics, so that a
/// hook call pays one atomic add and no reference counting (`bench/run profile`: see the closing note of
/// the console's issue).
package struct PluginCallStats: @unchecked Sendable {
    private let calls = UnsafeAtomic<UInt64>.create(0)
    private let denials = UnsafeAtomic<UInt64>.create(0)
    private let failures = UnsafeAtomic<UInt64>.create(0)
    private let timedCalls = UnsafeAtomic<UInt64>.create(0)
    private let timedNanoseconds = UnsafeAtomic<UInt64>.create(0)

    package init() {}

    /// Frees the counters (by the owner's deinit: nothing reads them after).
    package func destroy() {
        for counter in [calls, denials, failures, timedCalls, timedNanoseconds] { counter.destroy() }
    }

    /// Runs one hook call, counting it and timing it when its turn comes.
    @inline(__always)
    package func call(_ body: () -> Int32) -> Int32 {
        // The second call, then one in 64: the very first call of an instance is a cold one (lazy set-up).
        guard calls.loadThenWrappingIncrement(ordering: .relaxed) & 63 == 1 else { return body() }
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
