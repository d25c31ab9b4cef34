import Crypto
import SwiftASN1
import X509

/// An OCSP CertID (RFC 6960 4.1.1) with SHA-1, as RFC 5019 (the lightweight profile every public responder
/// speaks) requires, and the DER of a one-certificate OCSPRequest for it.
///
/// swift-certificates has OCSP types, but they are internal to its asynchronous `OCSPVerifierPolicy`, which
/// cannot tell a revoked certificate from an unreachable responder or say when an answer may be reused; so the
/// few structures needed are written here on SwiftASN1.
package struct OCSPCertificateID: Hashable, Sendable {
    package var issuerNameHash: [UInt8]
    package var issuerKeyHash: [UInt8]
    /// The serial number, big-endian, as swift-certificates holds it (no sign byte: `certIDDER` adds one).
    package var serial: [UInt8]

    package static let sha1: ASN1ObjectIdentifier = [1, 3, 14, 3, 2, 26]

    package init(issuerNameHash: [UInt8], issuerKeyHash: [UInt8], serial: [UInt8]) {
        self.issuerNameHash = issuerNameHash
        self.issuerKeyHash = issuerKeyHash
        self.serial = serial
    }

    /// The CertID of `certificate`, issued by `issuer`.
    package init(certificate: Certificate, issuer: Certificate) throws {
        var serializer = DER.Serializer()
        try serializer.serialize(issuer.subject)
        issuerNameHash = Array(Insecure.SHA1.hash(data: serializer.serializedBytes))
        issuerKeyHash = Array(Insecure.SHA1.hash(data: Array(issuer.publicKey.subjectPublicKeyInfoBytes)))
        serial = Array(certificate.serialNumber.bytes)
    }

    /// `OCSPRequest { tbsRequest { requestList { Request { reqCert } } } }`, unsigned, without a nonce: answers are
    /// cached and shared by every handshake of the certificate until their nextUpdate, as RFC 5019 intends.
    package var requestDER: [UInt8] {
        let request = Self.tlv(0x30, certIDDER)
        return Self.tlv(0x30, Self.tlv(0x30, Self.tlv(0x30, request)))
    }

    package var certIDDER: [UInt8] {
        let algorithm = Self.tlv(0x30, Self.tlv(0x06, [0x2B, 0x0E, 0x03, 0x02, 0x1A]) + [0x05, 0x00])
        // A positive INTEGER: a leading zero byte when the top bit is set (serial numbers are never negative).
        let integer = serial.isEmpty || serial[0] & 0x80 != 0 ? [0] + serial : serial
        return Self.tlv(0x30, algorithm + Self.tlv(0x04, issuerNameHash) + Self.tlv(0x04, issuerKeyHash) + Self.tlv(0x02, integer))
    }

    /// Reads a CertID from a response. Only SHA-1 CertIDs can match the request, so others are returned as nil.
    package static func parse(_ node: ASN1Node) throws -> OCSPCertificateID? {
        guard node.identifier == .sequence, case .constructed(let fields) = node.content else { throw OCSPError("CertID is not a SEQUENCE") }
        let items = Array(fields)
        guard items.count == 4 else { throw OCSPError("CertID has \(items.count) fields, not 4") }
        let algorithm = try CertificateRevocationList.algorithmOID(items[0])
        let nameHash = try ASN1OctetString(derEncoded: items[1])
        let keyHash = try ASN1OctetString(derEncoded: items[2])
        let serial = try ArraySlice<UInt8>(derEncoded: items[3])
        guard algorithm == sha1 else { return nil }
        return OCSPCertificateID(issuerNameHash: Array(nameHash.bytes), issuerKeyHash: Array(keyHash.bytes), serial: Array(serial))
    }

    /// A DER tag-length-value with a definite length.
    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [tag]
        let count = content.count
        if count < 0x80 {
            out.append(UInt8(count))
        } else {
            var length: [UInt8] = []
            var rest = count
            while rest > 0 {
                length.insert(UInt8(rest & 0xFF), at: 0)
                rest >>= 8
            }
            out.append(0x80 | UInt8(length.count))
            out += length
        }
        return out + content
    }
}

package struct OCSPError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
