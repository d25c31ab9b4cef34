/// The byte-by-byte head-end scan `RequestHeadGuard` used before `HeadEndScanner`, kept as the reference the
/// scanner is compared with (`HeadEndScannerTests`, the `head-end` fuzz target): LF, CRs, LF ends a head; CR
/// and LF before the request line are skipped and not counted.
package struct HeadEndByteLoop {
    private var lastWasNewline = false
    private var beforeRequestLine = true

    package init() {}

    /// What `HeadEndScanner.scan` answers for the same bytes after the same earlier reads.
    package mutating func scan(_ bytes: some Collection<UInt8>) -> (count: Int, ended: Bool) {
        var skipped = 0
        for (index, byte) in bytes.enumerated() {
            if beforeRequestLine {
                if byte == 10 || byte == 13 {
                    skipped += 1
                    continue
                }
                beforeRequestLine = false
            }
            if byte == 10 {
                if lastWasNewline {
                    lastWasNewline = false
                    return (index + 1 - skipped, true)
                }
                lastWasNewline = true
            } else if byte != 13 {
                lastWasNewline = false
            }
        }
        return (bytes.count - skipped, false)
    }
}
