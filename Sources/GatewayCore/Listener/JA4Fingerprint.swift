import Crypto

/// The JA4 fingerprint of a TLS client (FoxIO's technical_details/JA4.md), from its ClientHello: what the
/// client offers, independent of the server it talks to (SNI and ALPN only as presence and first/last character).
/// `t13d1516h2_8daaf6152771_b186095e22b6`: transport, version, SNI or not, cipher and extension counts, ALPN;
/// then a hash of the sorted cipher suites; then a hash of the sorted extensions (without SNI and ALPN) and the
/// signature algorithms in their order. GREASE values are left out everywhere. Checked against FoxIO's published
/// test captures (`JA4FingerprintTests`, Tests/Fixtures/ja4-vectors.json).
package struct JA4Fingerprint: Sendable, Equatable, CustomStringConvertible {
    /// `t13d1516h2_8daaf6152771_b186095e22b6`.
    package let fingerprint: String
    private let prefix: String
    private let cipherList: [UInt8]
    private let extensionPart: [UInt8]

    /// JA4_r: the same with the sorted lists themselves instead of their hashes (built when asked for).
    package var raw: String { "\(prefix)_\(String(decoding: cipherList, as: UTF8.self))_\(String(decoding: extensionPart, as: UTF8.self))" }

    package var description: String { fingerprint }

    package static func == (lhs: JA4Fingerprint, rhs: JA4Fingerprint) -> Bool { lhs.fingerprint == rhs.fingerprint && lhs.raw == rhs.raw }

    /// The fingerprint of a hello received over TCP. Computed once per TLS connection: the lists are written
    /// as bytes into one buffer each and hashed from there (no String per value).
    package init(_ hello: ClientHello) {
        let ciphers = hello.cipherSuites.filter { !Self.isGREASE($0) }
        let extensions = hello.extensionTypes.filter { !Self.isGREASE($0) }
        var version = hello.legacyVersion
        var offersVersion = false
        for candidate in hello.supportedVersions where !Self.isGREASE(candidate) {
            version = offersVersion ? max(version, candidate) : candidate
            offersVersion = true
        }
        let sni = extensions.contains(0) ? "d" : "i"
        let a = "t\(Self.versionText(version))\(sni)\(Self.count(ciphers.count))\(Self.count(extensions.count))\(Self.alpnText(hello.firstALPN))"

        let cipherList = Self.list(ciphers.sorted())
        let extensionList = Self.list(extensions.filter { $0 != 0 && $0 != 16 }.sorted())
        let algorithms = Self.list(hello.signatureAlgorithms.filter { !Self.isGREASE($0) })
        let extensionPart = algorithms.isEmpty ? extensionList : extensionList + [UInt8(ascii: "_")] + algorithms
        let b = cipherList.isEmpty ? "000000000000" : Self.truncatedHash(cipherList)
        let c = extensionList.isEmpty ? "000000000000" : Self.truncatedHash(extensionPart)
        fingerprint = "\(a)_\(b)_\(c)"
        prefix = a
        self.cipherList = cipherList
        self.extensionPart = extensionPart
    }

    /// Whether `text` can be the JA4 fingerprint of a TLS-over-TCP client (`t13d1516h2_8daaf6152771_b186095e22b6`):
    /// `t`, a version, `d` or `i`, two two-digit counts, two ALPN characters (any case), then two 12-digit
    /// lowercase hex hashes. For configuration: anything else could never match.
    package static func isWellFormed(_ text: String) -> Bool {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[1].utf8.count == 12, parts[2].utf8.count == 12 else { return false }
        let a = Array(parts[0].utf8)
        guard a.count == 10 else { return false }
        let isDigit = { (byte: UInt8) in (48...57).contains(byte) }
        let isLowerAlnum = { (byte: UInt8) in isDigit(byte) || (97...122).contains(byte) }
        let isAlnum = { (byte: UInt8) in isLowerAlnum(byte) || (65...90).contains(byte) }
        let isHex = { (part: Substring) in part.utf8.allSatisfy { isDigit($0) || (97...102).contains($0) } }
        return a[0] == UInt8(ascii: "t") && isLowerAlnum(a[1]) && isLowerAlnum(a[2]) && (a[3] == UInt8(ascii: "d") || a[3] == UInt8(ascii: "i"))
            && a[4...7].allSatisfy(isDigit) && isAlnum(a[8]) && isAlnum(a[9]) && isHex(parts[1]) && isHex(parts[2])
    }

    /// RFC 8701: 0x0a0a, 0x1a1a, ... 0xfafa.
    package static func isGREASE(_ value: UInt16) -> Bool {
        value & 0x0F0F == 0x0A0A && value >> 8 == value & 0xFF
    }

    private static func versionText(_ version: UInt16) -> String {
        switch version {
        case 0x0304: return "13"
        case 0x0303: return "12"
        case 0x0302: return "11"
        case 0x0301: return "10"
        case 0x0300: return "s3"
        case 0x0002: return "s2"
        case 0xFEFF: return "d1"
        case 0xFEFD: return "d2"
        case 0xFEFC: return "d3"
        default: return "00"
        }
    }

    private static func count(_ value: Int) -> String {
        let clamped = min(value, 99)
        return clamped < 10 ? "0\(clamped)" : "\(clamped)"
    }

    /// The first and last characters of the first ALPN value; its hex form's first and last characters when
    /// either end is not an ASCII letter or digit; `00` without one.
    private static func alpnText(_ value: [UInt8]?) -> String {
        guard let value, let first = value.first, let last = value.last else { return "00" }
        let isAlnum = { (byte: UInt8) in (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) }
        if isAlnum(first), isAlnum(last) {
            return String(decoding: [first, last], as: UTF8.self)
        }
        return String(decoding: [digits[Int(first >> 4)], digits[Int(last & 0x0F)]], as: UTF8.self)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Four lowercase hex digits per value, comma-separated.
    private static func list(_ values: [UInt16]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 5)
        for (index, value) in values.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            for shift in [12, 8, 4, 0] as [UInt16] { out.append(digits[Int(value >> shift & 0x0F)]) }
        }
        return out
    }

    /// The first 12 hex digits of the SHA-256 of `bytes`.
    private static func truncatedHash(_ bytes: [UInt8]) -> String {
        let digest = SHA256.hash(data: bytes)
        var out: [UInt8] = []
        out.reserveCapacity(12)
        for byte in digest.prefix(6) {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
