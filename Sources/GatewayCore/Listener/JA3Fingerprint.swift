import Crypto

/// The JA3 fingerprint of a TLS client (Salesforce, github.com/salesforce/ja3): the MD5 of
/// `version,ciphers,extensions,groups,point formats`, decimal values joined by `-` in the order offered, GREASE
/// values left out. Clients that shuffle their extensions (Chrome since version 110) get a new JA3 on every
/// connection, which is why JA4 sorts them; JA3 is kept for the tools and threat feeds that still use it.
/// Checked against Salesforce's reference implementation on FoxIO's captures (`JA3FingerprintTests`).
package struct JA3Fingerprint: Sendable, Equatable, CustomStringConvertible {
    /// The lowercase hex MD5 of `full`, e.g. `ada70206e40642a3e4461f35503241d5`.
    package let fingerprint: String
    /// `769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0`.
    package let full: String

    package var description: String { fingerprint }

    /// Computed once per TLS connection, with the hello's JA4.
    package init(_ hello: ClientHello) {
        var text: [UInt8] = []
        text.reserveCapacity(64 + 6 * (hello.cipherSuites.count + hello.extensionTypes.count + hello.supportedGroups.count))
        Self.append(UInt64(hello.legacyVersion), to: &text)
        text.append(UInt8(ascii: ","))
        Self.append(hello.cipherSuites.lazy.filter { !JA4Fingerprint.isGREASE($0) }.map(UInt64.init), to: &text)
        text.append(UInt8(ascii: ","))
        Self.append(hello.extensionTypes.lazy.filter { !JA4Fingerprint.isGREASE($0) }.map(UInt64.init), to: &text)
        text.append(UInt8(ascii: ","))
        Self.append(hello.supportedGroups.lazy.filter { !JA4Fingerprint.isGREASE($0) }.map(UInt64.init), to: &text)
        text.append(UInt8(ascii: ","))
        Self.append(hello.ecPointFormats.lazy.map(UInt64.init), to: &text)
        full = String(decoding: text, as: UTF8.self)
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        for byte in Insecure.MD5.hash(data: text) {
            hex.append(Self.digits[Int(byte >> 4)])
            hex.append(Self.digits[Int(byte & 0x0F)])
        }
        fingerprint = String(decoding: hex, as: UTF8.self)
    }

    /// Whether `text` can be a JA3 fingerprint: 32 lowercase hex digits.
    package static func isWellFormed(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func append(_ values: some Sequence<UInt64>, to text: inout [UInt8]) {
        var first = true
        for value in values {
            if !first { text.append(UInt8(ascii: "-")) }
            first = false
            append(value, to: &text)
        }
    }

    private static func append(_ value: UInt64, to text: inout [UInt8]) {
        if value >= 10 { append(value / 10, to: &text) }
        text.append(UInt8(ascii: "0") + UInt8(value % 10))
    }
}
