/// JSON string escaping, the one implementation the gateway, its bundled plugins and the SDK examples share:
/// `"` and `\` escaped, control characters, DEL and U+2028/U+2029 as `\uXXXX` (so that a line of JSON stays one
/// line, whatever a client put in a header or a certificate), invalid UTF-8 replaced by U+FFFD.
public enum JSONText {
    /// Appends `bytes` (UTF-8, possibly invalid) escaped for a JSON string, without the quotes.
    public static func appendEscaped(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        // Fast path: printable ASCII without quote or backslash is copied as is (names, paths, hex, DNs).
        if bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }) {
            // As typed bytes: Array's append copies an UnsafeBufferPointer<UInt8> with memcpy, but a raw
            // buffer byte by byte (~6 instructions a byte in the profile).
            bytes.withMemoryRebound(to: UInt8.self) { out.append(contentsOf: $0) }
            return
        }
        for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
            appendEscaped(scalar, to: &out)
        }
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
