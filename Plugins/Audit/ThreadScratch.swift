import GatewayPluginKit

/// What the line builders keep per thread (hooks run on several event loops at once, one hook at a time per
/// thread, so no lock): the reused line buffer and the timestamp of the current second, formatted once.
final class ThreadScratch {
    /// The buffer request lines are built in; `JSONLine` takes it (nil while it has it) and gives it back,
    /// grown if it had to grow.
    var line: UnsafeMutableRawBufferPointer? = .allocate(byteCount: 1024, alignment: 1)
    var second: Int = -1
    /// `2026-11-29T02:50:01.` of `second`.
    var prefix: [UInt8] = []
    /// The UTC offset, `+00:00`.
    var suffix: [UInt8] = []
    deinit { line?.deallocate() }

    private static let perThread = PerThread { ThreadScratch() }

    static var current: ThreadScratch { perThread.current }
}
