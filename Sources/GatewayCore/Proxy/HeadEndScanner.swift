#if canImport(Glibc)
import Glibc
#endif

/// Finds the end of a request head in the bytes as they arrive, read by read: a line feed, optional carriage
/// returns, another line feed. CR and LF before the request line are skipped and not counted (RFC 9112 2.2 lets
/// a server ignore an empty line there; the parser does), so an empty line alone never ends a head.
/// `RequestHeadGuard` counts the head's bytes with it.
package struct HeadEndScanner {
    /// The last byte that was not a CR was a LF.
    private var lastWasNewline = false
    /// No byte of the head but CR and LF was seen yet.
    private var beforeRequestLine = true

    package init() {}

    /// For the next head.
    package mutating func reset() {
        lastWasNewline = false
        beforeRequestLine = true
    }

    /// How many of `bytes` belong to the head (up to and including its blank line; CR and LF before the request
    /// line not counted), and whether its end was seen. Line feeds are found with `memchr`, so a line costs a
    /// few instructions rather than a few per byte.
    package mutating func scan(_ bytes: UnsafeRawBufferPointer) -> (count: Int, ended: Bool) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return (0, false) }
        let end = bytes.count
        var i = 0
        if beforeRequestLine {
            while i < end, bytes[i] == 10 || bytes[i] == 13 { i += 1 }
            guard i < end else { return (0, false) }
            beforeRequestLine = false
        }
        let skipped = i
        // Where a line feed was the last byte but carriage returns: a head ends at the next byte that is not a
        // CR if that is a LF.
        func afterNewline(_ start: Int) -> (count: Int, ended: Bool)? {
            var j = start
            while j < end, bytes[j] == 13 { j += 1 }
            if j == end {
                lastWasNewline = true
                return (end - skipped, false)
            }
            if bytes[j] == 10 {
                lastWasNewline = false
                return (j + 1 - skipped, true)
            }
            lastWasNewline = false
            i = j + 1
            return nil
        }
        if lastWasNewline, let result = afterNewline(i) { return result }
        while i < end {
            guard let found = memchr(base + i, 10, end - i) else { break }
            if let result = afterNewline(base.distance(to: UnsafeRawPointer(found)) + 1) { return result }
        }
        lastWasNewline = false
        return (end - skipped, false)
    }
}
