import GatewayPluginKit

/// What the line builders keep per thread (hooks run on several event loops at once, one hook at a time per
/// thread, so no lock): the reused line buffer and the timestamp of the current second, formatted once.
final class ThreadScratch {
    /// The buffer request lines are built in; `JSONLine` takes it (nil while it has it) and gives it back,
    /// grown if it had to grow.
    var line: UnsafeMutableRawBufferPointer? = .allocate(byteCount: 1024, alignment: 1)
    var second: Int = -1
    /// The timestamp of `second` around its milliseconds: `2026-11-29T02:50:01.` (`prefixCount` bytes), then
    /// the UTC offset, `+00:00` (`suffixCount`). Raw bytes: reading an Array property retains its buffer.
    let stamp = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
    var prefixCount = 0
    var suffixCount = 0
    deinit {
        line?.deallocate()
        stamp.deallocate()
    }

    private static let perThread = PerThread { ThreadScratch() }

    static var current: ThreadScratch { perThread.current }
}
