#if canImport(Glibc)
import Glibc
#endif

/// Header fields kept as the bytes they are sent as: `name: value CRLF` per field, in order. A client's request
/// fields (`ClientRequestHead`), a backend's response fields (`BackendResponseHead`) and the headers plugins
/// add live here: no `String` per name and value, no `HTTPHeaders`, a `memcpy` into the head written. Names
/// must be tokens and values free of NUL, CR and LF (the parsers and the plugin host check both; so does
/// every other maker of a block), so a line is found by its colon and its CR.
package struct HeaderBlock: Sendable, Equatable {
    package private(set) var bytes: [UInt8] = []
    package private(set) var count = 0

    package init() {}

    /// An empty block with room for `capacity` bytes of lines (a parsed head's fields fit in the head's size).
    package init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    /// The fields in order (for tests and the slow paths).
    package init(_ fields: [(String, String)]) {
        for (name, value) in fields { append(name: name, value: value) }
    }

    package var isEmpty: Bool { count == 0 }

    /// Appends one field. A value that is not valid UTF-8 is repaired (U+FFFD for each bad sequence), as a
    /// value set with `set_header` is: the plugin API promises the same either way.
    package mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        // One allocation for a request's identity headers, a leaf certificate's PEM included (~2.5 KiB).
        if bytes.capacity == 0 { bytes.reserveCapacity(Swift.max(4096, name.count + value.count + 4)) }
        let length = name.count + value.count + 4
        if length <= Self.lineOnStack, Self.isASCII(value) {
            // The line made on the stack, then one append (one capacity check, one copy) instead of five.
            withUnsafeTemporaryAllocation(byteCount: length, alignment: 1) { line in
                let base = line.baseAddress!
                if let source = name.baseAddress { base.copyMemory(from: source, byteCount: name.count) }
                base.storeBytes(of: 58, toByteOffset: name.count, as: UInt8.self)
                base.storeBytes(of: 32, toByteOffset: name.count + 1, as: UInt8.self)
                if let source = value.baseAddress { (base + name.count + 2).copyMemory(from: source, byteCount: value.count) }
                base.storeBytes(of: 13, toByteOffset: length - 2, as: UInt8.self)
                base.storeBytes(of: 10, toByteOffset: length - 1, as: UInt8.self)
                bytes.append(contentsOf: UnsafeRawBufferPointer(line))
            }
            count += 1
            return
        }
        bytes.append(contentsOf: name)
        bytes.append(58)
        bytes.append(32)
        if Self.isASCII(value) {
            bytes.append(contentsOf: value)
        } else {
            bytes.append(contentsOf: String(decoding: value, as: UTF8.self).utf8)
        }
        bytes.append(13)
        bytes.append(10)
        count += 1
    }

    /// Appends `fields` in order, as `append(name:value:)` would one by one: sized first, then written in
    /// place (into a new buffer, the usual case of a request's first added headers, with no per-line copy).
    package mutating func append<Fields: Collection>(_ fields: Fields) where Fields.Element == (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        var total = 0
        for (name, value) in fields {
            guard Self.isASCII(value) else {
                // A value to repair (rare): line by line.
                for (name, value) in fields { append(name: name, value: value) }
                return
            }
            total += name.count + value.count + 4
        }
        guard total > 0 else { return }
        func write(_ fields: Fields, to base: UnsafeMutableRawPointer) {
            var at = base
            for (name, value) in fields {
                if let source = name.baseAddress { at.copyMemory(from: source, byteCount: name.count) }
                at += name.count
                at.storeBytes(of: 0x203A, as: UInt16.self)  // ": " (little-endian)
                at += 2
                if let source = value.baseAddress { at.copyMemory(from: source, byteCount: value.count) }
                at += value.count
                at.storeBytes(of: 0x0A0D, as: UInt16.self)  // CRLF
                at += 2
            }
        }
        if bytes.capacity - bytes.count < total {
            let old = bytes
            // The first batch gets what it needs, no more: a block of a few hundred bytes comes from malloc's
            // per-thread cache, where a 4 KiB one took ~1,000 instructions to allocate and free per request
            // (`bench/run profile`). Then doubling: several plugins' adds copy the block a logarithmic number
            // of times.
            bytes = [UInt8](unsafeUninitializedCapacity: Swift.max(2 * old.capacity, old.count + total)) { buffer, initialized in
                let base = UnsafeMutableRawPointer(buffer.baseAddress!)
                old.withUnsafeBytes { if let source = $0.baseAddress { base.copyMemory(from: source, byteCount: $0.count) } }
                write(fields, to: base + old.count)
                initialized = old.count + total
            }
        } else {
            // Room enough (headers another plugin added came first): appended in place, part by part (a
            // temporary line of more than 1 KiB would be a heap allocation).
            for (name, value) in fields {
                bytes.append(contentsOf: name.assumingMemoryBound(to: UInt8.self))
                bytes.append(58)
                bytes.append(32)
                bytes.append(contentsOf: value.assumingMemoryBound(to: UInt8.self))
                bytes.append(13)
                bytes.append(10)
            }
        }
        count += fields.count
    }

    /// The longest line `append` makes on the stack (a leaf certificate's PEM is longer and is appended in parts).
    private static let lineOnStack = 1024

    /// Appends `count` whole lines that are already as `append` writes them (`name: value CRLF`, a token, one
    /// space, an ASCII value without NUL, CR or LF): the caller checked them.
    package mutating func append(lines: UnsafeRawBufferPointer, count lineCount: Int) {
        bytes.append(contentsOf: lines)
        count += lineCount
    }

    /// No byte above 0x7F, eight bytes at a time.
    package static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < bytes.count {
            if bytes[i] & 0x80 != 0 { return false }
            i += 1
        }
        return true
    }

    package mutating func append(name: String, value: String) {
        var (name, value) = (name, value)
        name.withUTF8 { name in value.withUTF8 { append(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer($0)) } }
    }

    /// The block without the fields whose name `drop` picks: the other lines copied as they are.
    package func removingAll(where drop: (_ name: UnsafeRawBufferPointer) -> Bool) -> HeaderBlock {
        var kept = HeaderBlock(capacity: bytes.count)
        bytes.withUnsafeBytes { raw in
            Self.forEachLine(in: raw) { name, _, line in
                if !drop(name) { kept.append(lines: UnsafeRawBufferPointer(rebasing: raw[line]), count: 1) }
                return true
            }
        }
        return kept
    }

    /// Calls `body` with each field's name and value, in order, until it returns false.
    package func forEach(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Bool) {
        bytes.withUnsafeBytes { raw in Self.forEachLine(in: raw) { name, value, _ in body(name, value) } }
    }

    /// Calls `body` with the name, the value and the line (with its CRLF, as offsets into `raw`) of each field of
    /// `raw`, a block's bytes, in order, until it returns false. False if the bytes ended in something that is
    /// not a whole line (never, for a block `append` made).
    @inline(__always) @discardableResult
    package static func forEachLine(
        in raw: UnsafeRawBufferPointer, _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: Range<Int>) -> Bool
    ) -> Bool {
        guard let base = raw.baseAddress else { return true }
        var i = 0
        while i < raw.count {
            // Bounded, though a block's lines always have a colon and a CR (`append` takes only checked fields).
            // The colon and the value's CR by memchr: names and values can be long (plugins' `x-amzn-mtls-...`
            // names, a subject, a certificate's PEM).
            guard let found = memchr(base + i, 58, raw.count - i) else { return false }
            let colon = UnsafeRawPointer(found) - base
            guard colon + 2 <= raw.count, let cr = memchr(base + colon + 2, 13, raw.count - colon - 2) else { return false }
            let end = UnsafeRawPointer(cr) - base
            guard end + 2 <= raw.count else { return false }
            let name = UnsafeRawBufferPointer(rebasing: raw[i..<colon])
            let value = UnsafeRawBufferPointer(rebasing: raw[(colon + 2)..<end])
            guard body(name, value, i..<(end + 2)) else { return true }
            i = end + 2
        }
        return true
    }

    /// ASCII case-insensitive equality of two names.
    package static func sameIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count {
            let (x, y) = (a[i], b[i])
            if x != y, (x >= 65 && x <= 90 ? x | 0x20 : x) != (y >= 65 && y <= 90 ? y | 0x20 : y) { return false }
        }
        return true
    }

    /// The fields as Strings, in order.
    package var fields: [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(count)
        forEach { name, value in
            out.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            return true
        }
        return out
    }
}
