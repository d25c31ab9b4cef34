import Crypto
import Foundation
import SwiftASN1
import X509

/// A listener's `client_allow`, compiled: which verified client certificates it admits. Pins (of the leaf
/// certificate or of its public key) and subjectAltName matchers are two conditions: with pins, the leaf must
/// match one; with matchers, one SAN must match one; with both, both must hold (as Envoy's
/// `verify_certificate_hash`/`_spki` and `match_typed_subject_alt_names`). Checked once per verified chain (the
/// verifier caches only admitted chains), so a handshake of a returning client costs nothing more.
package struct ClientAllowList: Sendable {
    package var certificateSHA256: Set<[UInt8]> = []
    package var spkiSHA256: Set<[UInt8]> = []
    package var dns: Set<String> = []
    package var uriPrefixes: [String] = []
    package var emails: Set<String> = []

    private var hasPins: Bool { !certificateSHA256.isEmpty || !spkiSHA256.isEmpty }
    private var hasNameMatchers: Bool { !dns.isEmpty || !uriPrefixes.isEmpty || !emails.isEmpty }

    /// Compiles `config`; every bad entry is reported under `path` (e.g. `listeners[0].tls.client_allow`).
    package init?(_ config: ClientAllowConfig, path: String, issues: ConfigIssueCollector) {
        var valid = true
        func digest(_ text: String, _ keyPath: String) -> [UInt8]? {
            if let bytes = Self.decodeDigest(text) { return bytes }
            issues.add(keyPath, "'\(text)' is not a SHA-256 digest (64 hex digits, colons allowed, or 44 characters of base64)")
            valid = false
            return nil
        }
        for (i, text) in config.certSHA256.enumerated() {
            if let bytes = digest(text, "\(path).cert_sha256[\(i)]") { certificateSHA256.insert(bytes) }
        }
        for (i, text) in config.spkiSHA256.enumerated() {
            if let bytes = digest(text, "\(path).spki_sha256[\(i)]") { spkiSHA256.insert(bytes) }
        }
        for (i, name) in config.dns.enumerated() {
            guard !name.isEmpty, !name.contains("*"), !name.contains(where: \.isWhitespace) else {
                issues.add("\(path).dns[\(i)]", "'\(name)' is not a DNS name to compare exactly (no wildcards)")
                valid = false
                continue
            }
            dns.insert(name.lowercased())
        }
        for (i, prefix) in config.uriPrefix.enumerated() {
            // A scheme and something after it: an empty or scheme-less prefix would admit far more than meant.
            guard let colon = prefix.firstIndex(of: ":"), colon != prefix.startIndex, prefix.index(after: colon) != prefix.endIndex else {
                issues.add("\(path).uri_prefix[\(i)]", "'\(prefix)' is not a URI prefix with a scheme (e.g. spiffe://prod.example.org/)")
                valid = false
                continue
            }
            uriPrefixes.append(prefix)
        }
        for (i, address) in config.email.enumerated() {
            guard address.contains("@"), !address.contains(where: \.isWhitespace) else {
                issues.add("\(path).email[\(i)]", "'\(address)' is not an email address")
                valid = false
                continue
            }
            emails.insert(address.lowercased())
        }
        if valid, !hasPins, !hasNameMatchers {
            issues.add(path, "empty: give cert_sha256, spki_sha256, dns, uri_prefix or email (or remove client_allow)")
            valid = false
        }
        guard valid else { return nil }
    }

    /// Why `leaf` (whose DER is `leafDER`) is not admitted; nil when it is.
    package func rejection(leaf: Certificate, leafDER: [UInt8]) -> HandshakeRejection? {
        if hasPins {
            let certificate = Array(SHA256.hash(data: leafDER))
            var pinned = certificateSHA256.contains(certificate)
            if !pinned, !spkiSHA256.isEmpty, let spki = Self.subjectPublicKeyInfo(of: leafDER) {
                pinned = spkiSHA256.contains(Array(SHA256.hash(data: spki)))
            }
            if !pinned {
                return .init(.pinMismatch, "certificate '\(leaf.subject)' (SHA-256 \(Self.hex(certificate))) matches no pin in client_allow")
            }
        }
        if hasNameMatchers {
            var names: [String] = []
            let sans: SubjectAlternativeNames?
            do {
                sans = try leaf.extensions.subjectAlternativeNames
            } catch {
                return .init(.malformed, "certificate '\(leaf.subject)' has a malformed subjectAltName: \(error)")
            }
            for name in sans ?? SubjectAlternativeNames() {
                switch name {
                case .dnsName(let value):
                    if dns.contains(value.lowercased()) { return nil }
                    names.append("DNS:\(value)")
                case .uniformResourceIdentifier(let value):
                    if uriPrefixes.contains(where: { value.hasPrefix($0) }) { return nil }
                    names.append("URI:\(value)")
                case .rfc822Name(let value):
                    if emails.contains(value.lowercased()) { return nil }
                    names.append("email:\(value)")
                default:
                    continue
                }
            }
            let shown = names.isEmpty ? "no DNS, URI or email subjectAltName" : names.prefix(8).joined(separator: ", ")
            return .init(.sanMismatch, "certificate '\(leaf.subject)' (\(shown)) matches no subjectAltName in client_allow")
        }
        return nil
    }

    /// The DER SubjectPublicKeyInfo of a certificate, as it is in the certificate (what HPKP-style pins hash):
    /// Certificate -> tbsCertificate -> [version], serial, signature, issuer, validity, subject, SPKI.
    package static func subjectPublicKeyInfo(of certificateDER: [UInt8]) -> ArraySlice<UInt8>? {
        guard let root = try? DER.parse(certificateDER), case .constructed(let certificate) = root.content,
            let tbs = certificate.first(where: { _ in true }), case .constructed(let fields) = tbs.content
        else { return nil }
        var items = Array(fields)
        if let first = items.first, first.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
            items.removeFirst()
        }
        guard items.count > 5 else { return nil }
        return items[5].encodedBytes
    }

    /// 32 bytes from 64 hex digits (colons allowed) or from base64.
    package static func decodeDigest(_ text: String) -> [UInt8]? {
        // ASCII only: Character.isHexDigit also accepts fullwidth digits, which UInt8(_:radix:) does not.
        let hexDigits = Array(text.utf8.filter { $0 != UInt8(ascii: ":") })
        func value(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        if hexDigits.count == 64 {
            var bytes: [UInt8] = []
            for pair in stride(from: 0, to: 64, by: 2) {
                guard let high = value(hexDigits[pair]), let low = value(hexDigits[pair + 1]) else { bytes = []; break }
                bytes.append(high << 4 | low)
            }
            if bytes.count == 32 { return bytes }
        }
        if let data = Data(base64Encoded: text), data.count == 32 { return Array(data) }
        return nil
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
