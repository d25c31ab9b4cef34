import Crypto
import Foundation
import SwiftASN1
import X509

/// The client certificate's identity, computed once when a chain is first verified and then shared by every
/// connection that presents the same chain (see `ClientCertificateVerifier`). Plugins read these fields; nothing
/// here is recomputed per request.
public final class ClientIdentity: Sendable {
    /// The presented leaf and chain as DER, leaf first, as the client sent them.
    public let presentedDER: [[UInt8]]
    /// Subject and issuer in RFC 2253 order (most specific first), as OpenSSL and nginx print them.
    public let subject: String
    public let issuer: String
    /// Serial number, uppercase hex without separators ($ssl_client_serial).
    public let serialHex: String
    public let sha1Fingerprint: String
    public let sha256Fingerprint: String
    public let notBefore: Date
    public let notAfter: Date
    public let dnsNames: [String]
    public let uris: [String]
    public let ipAddresses: [String]
    public let emails: [String]
    public let leafPEM: String
    public let chainPEM: String
    /// notBefore / notAfter as OpenSSL and nginx print them ($ssl_client_v_start/_end): `Sep  1 22:43:21 2027 GMT`.
    public let notBeforeText: String
    public let notAfterText: String
    /// The same fields as C views for plugins, allocated once with the identity.
    package let views: Views
    /// The subject's and issuer's attributes, decoded, for `get_dn_value` (RFC 2253 order).
    package let subjectValues: [DNValue]
    package let issuerValues: [DNValue]

    /// One attribute of a distinguished name: its OID, OpenSSL's short name, and its value as a stable view.
    package struct DNValue: Sendable {
        package let oid: String
        package let shortName: String?
        package let value: StableBytes
    }

    package final class Views: Sendable {
        package let subject, issuer, serial, sha1, sha256, notBefore, notAfter, leafPEM, chainPEM: StableBytes
        package let dns, uris, ips, emails, chainDER: [StableBytes]

        package init(_ i: ClientIdentity.Fields) {
            subject = StableBytes(i.subject)
            issuer = StableBytes(i.issuer)
            serial = StableBytes(i.serial)
            sha1 = StableBytes(i.sha1)
            sha256 = StableBytes(i.sha256)
            notBefore = StableBytes(i.notBefore)
            notAfter = StableBytes(i.notAfter)
            leafPEM = StableBytes(i.leafPEM)
            chainPEM = StableBytes(i.chainPEM)
            dns = i.dns.map { StableBytes($0) }
            uris = i.uris.map { StableBytes($0) }
            ips = i.ips.map { StableBytes($0) }
            emails = i.emails.map { StableBytes($0) }
            chainDER = i.der.map { StableBytes($0) }
        }
    }

    package struct Fields {
        package var subject, issuer, serial, sha1, sha256, notBefore, notAfter, leafPEM, chainPEM: String
        package var dns, uris, ips, emails: [String]
        package var der: [[UInt8]]
    }

    package init(presented: [Certificate], der: [[UInt8]]) {
        let leaf = presented[0]
        self.presentedDER = der
        self.subject = DistinguishedNameFormatter.rfc2253(leaf.subject)
        self.issuer = DistinguishedNameFormatter.rfc2253(leaf.issuer)
        let serial = leaf.serialNumber.bytes.drop(while: { $0 == 0 })
        self.serialHex = serial.isEmpty ? "00" : Self.hex(serial, digits: Self.upperDigits)
        self.sha1Fingerprint = Self.hex(Insecure.SHA1.hash(data: der[0]), digits: Self.lowerDigits)
        self.sha256Fingerprint = Self.hex(SHA256.hash(data: der[0]), digits: Self.lowerDigits)
        self.notBefore = leaf.notValidBefore
        self.notAfter = leaf.notValidAfter
        var dns: [String] = [], uris: [String] = [], ips: [String] = [], emails: [String] = []
        if let sans = try? leaf.extensions.subjectAlternativeNames {
            for name in sans {
                switch name {
                case .dnsName(let n): dns.append(n)
                case .uniformResourceIdentifier(let u): uris.append(u)
                case .rfc822Name(let e): emails.append(e)
                case .ipAddress(let octets): ips.append(Self.formatIP(Array(octets.bytes)))
                default: break
                }
            }
        }
        (self.dnsNames, self.uris, self.ipAddresses, self.emails) = (dns, uris, ips, emails)
        self.leafPEM = Self.pem(der[0])
        self.chainPEM = der.map(Self.pem).joined()
        self.notBeforeText = Self.opensslTime(leaf.notValidBefore)
        self.notAfterText = Self.opensslTime(leaf.notValidAfter)
        func values(_ name: DistinguishedName) -> [DNValue] {
            DistinguishedNameFormatter.attributes(name).map { DNValue(oid: $0.oid, shortName: $0.short, value: StableBytes($0.value)) }
        }
        self.subjectValues = values(leaf.subject)
        self.issuerValues = values(leaf.issuer)
        self.views = Views(Fields(
            subject: subject, issuer: issuer, serial: serialHex, sha1: sha1Fingerprint, sha256: sha256Fingerprint,
            notBefore: notBeforeText, notAfter: notAfterText, leafPEM: leafPEM, chainPEM: chainPEM,
            dns: dnsNames, uris: uris, ips: ipAddresses, emails: emails, der: der
        ))
    }

    /// ASN1_TIME_print's format: month, day padded to two with a space, time, year, GMT. Computed with
    /// gmtime_r: Foundation's Calendar and TimeZone cost tens of microseconds to build on Linux.
    package static func opensslTime(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        let day = parts.tm_mday < 10 ? " \(parts.tm_mday)" : "\(parts.tm_mday)"
        return "\(months[Int(parts.tm_mon)]) \(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) \(Int(parts.tm_year) + 1900) GMT"
    }

    /// A certificate in PEM with a final newline, as OpenSSL writes it (64-character base64 lines). SwiftASN1's
    /// PEMDocument.pemString was most of the identity computation's time (String index arithmetic).
    package static func pem(_ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN CERTIFICATE-----\n" + base64 + "\n-----END CERTIFICATE-----\n"
    }

    private static let upperDigits = Array("0123456789ABCDEF".utf8)
    private static let lowerDigits = Array("0123456789abcdef".utf8)

    /// Bytes as hex, two digits each, in one allocation.
    package static func hex(_ bytes: some Sequence<UInt8>, digits: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexLower(_ b: UInt8) -> String { hex([b], digits: lowerDigits) }

    package static func formatIP(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        if bytes.count == 16 {
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) {
                groups.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16))
            }
            return groups.joined(separator: ":")
        }
        return bytes.map { hexLower($0) }.joined()
    }
}
