#if canImport(Glibc)
import Glibc
#endif

/// What the line builders keep per thread (hooks run on several event loops at once, one hook at a time per
/// thread, so no lock): the reused line buffer, and the timestamp of the current second, formatted once.
final class ThreadScratch {
    /// The buffer request lines are built in; `JSONLine` takes it and gives it back (capacity kept).
    var line: [UInt8] = []
    var second: Int = -1
    /// `2026-11-29T02:50:01.` of `second`.
    var prefix: [UInt8] = []
    /// The UTC offset, `+00:00`.
    var suffix: [UInt8] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<ThreadScratch>.fromOpaque(pointer).release() }
        }
        return key
    }()

    static var current: ThreadScratch {
        if let existing = pthread_getspecific(key) { return Unmanaged<ThreadScratch>.fromOpaque(existing).takeUnretainedValue() }
        let scratch = ThreadScratch()
        pthread_setspecific(key, Unmanaged.passRetained(scratch).toOpaque())
        return scratch
    }
}
