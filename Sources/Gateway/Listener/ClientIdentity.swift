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

    init(presented: [Certificate], der: [[UInt8]]) {
        let leaf = presented[0]
        self.presentedDER = der
        self.subject = leaf.subject.description
        self.issuer = leaf.issuer.description
        self.serialHex = leaf.serialNumber.bytes.drop(while: { $0 == 0 }).map { Self.hexUpper($0) }.joined()
        self.sha1Fingerprint = Insecure.SHA1.hash(data: der[0]).map { Self.hexLower($0) }.joined()
        self.sha256Fingerprint = SHA256.hash(data: der[0]).map { Self.hexLower($0) }.joined()
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
        self.leafPEM = PEMDocument(type: "CERTIFICATE", derBytes: der[0]).pemString + "\n"
        self.chainPEM = der.map { PEMDocument(type: "CERTIFICATE", derBytes: $0).pemString + "\n" }.joined()
    }

    private static func hexUpper(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }

    private static func hexLower(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }

    static func formatIP(_ bytes: [UInt8]) -> String {
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
