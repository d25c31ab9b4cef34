/// JSON string escaping, the one implementation the gateway, its bundled plugins and the SDK examples share:
/// `"` and `\` escaped, control characters, DEL and U+2028/U+2029 as `\uXXXX` (so that a line of JSON stays one
/// line, whatever a client put in a header or a certificate), invalid UTF-8 replaced by U+FFFD.
public enum JSONText {
    /// Appends `bytes` (UTF-8, possibly invalid) escaped for a JSON string, without the quotes.
    public static func appendEscaped(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        // Fast path: printable ASCII without quote or backslash is copied as is (names, paths, hex, DNs).
        if needsNoEscaping(bytes) {
            // As typed bytes: Array's append copies an UnsafeBufferPointer<UInt8> with memcpy, but a raw
            // buffer byte by byte (~6 instructions a byte in the profile).
            bytes.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
            return
        }
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            appendEscaped(scalar, to: &out)
        }
    }

    /// Whether every byte is printable ASCII other than `"` and `\`, which `appendEscaped` copies as they are.
    /// Eight bytes at a time (~3 instructions a byte less than a byte loop); the last, partial word of a run
    /// of eight or more is read as the eight bytes that end it (some bytes looked at twice), not byte by byte.
    public static func needsNoEscaping(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        // Bit 7 of each byte of `word` that is zero (exact: no borrow reaches the next byte).
        func zeroBytes(_ word: UInt64) -> UInt64 { ~(((word & ~high) &+ ~high) | word | ~high) }
        func copiesAsIs(_ word: UInt64) -> Bool {
            // Each byte below 0x80, at least 0x20 (0x60 added sets its bit 7), at most 0x7E (1 added does not).
            let printable = word & high == 0 && (word &+ ones &* 0x60) & high == high && (word &+ ones) & high == 0
            return printable && zeroBytes(word ^ (ones &* 0x22)) | zeroBytes(word ^ (ones &* 0x5C)) == 0
        }
        let count = bytes.count
        guard count >= 8 else {
            for byte in bytes where byte < 0x20 || byte >= 0x7F || byte == 0x22 || byte == 0x5C { return false }
            return true
        }
        var i = 0
        while i + 8 <= count {
            guard copiesAsIs(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) else { return false }
            i += 8
        }
        return i == count || copiesAsIs(bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
    }

    /// Appends `bytes` as a quoted JSON string.
    public static func appendQuoted(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        appendEscaped(bytes, to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// `text` as a quoted JSON string.
    public static func quoted(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + 2)
        var text = text
        text.withUTF8 { appendQuoted(UnsafeRawBufferPointer($0), to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    private static func appendEscaped(_ scalar: Unicode.Scalar, to out: inout [UInt8]) {
        switch scalar {
        case "\"": out.append(contentsOf: [0x5C, 0x22])
        case "\\": out.append(contentsOf: [0x5C, 0x5C])
        case "\n": out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case "\r": out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case "\t": out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029:
            let hex: StaticString = "0123456789abcdef"
            let v = Int(scalar.value)
            hex.withUTF8Buffer { digits in
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), digits[(v >> 12) & 15], digits[(v >> 8) & 15], digits[(v >> 4) & 15], digits[v & 15]])
            }
        default:
            out.append(contentsOf: String(scalar).utf8)
        }
    }
}
