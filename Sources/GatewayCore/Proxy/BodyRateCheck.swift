/// Decides, window by window, whether a client sends its request body fast enough: a window (`body_timeout`)
/// with fewer than `min_body_rate` x window bytes, or none at all, means the client is too slow (slow POST). A
/// window in which the gateway itself held the client's reads (backpressure from the backend, plugins
/// deciding) never counts against it.
package struct BodyRateCheck: Sendable {
    /// Bytes a window needs (at least 1: some progress).
    package let minimumBytes: Int64
    private var bytes: Int64 = 0
    private var held = false

    package init(minimumRate: Int, windowNanoseconds: Int64) {
        let perWindow = Double(minimumRate) * Double(windowNanoseconds) / 1e9
        minimumBytes = max(1, Int64(min(perWindow, Double(Int64.max / 2)).rounded(.down)))
    }

    package mutating func received(_ count: Int) { bytes += Int64(count) }

    /// The gateway stopped reading from the client during this window.
    package mutating func readsHeld() { held = true }

    /// Ends a window: true when the client was too slow in it. Starts the next window.
    package mutating func windowEnded() -> Bool {
        defer {
            bytes = 0
            held = false
        }
        return !held && bytes < minimumBytes
    }
}
