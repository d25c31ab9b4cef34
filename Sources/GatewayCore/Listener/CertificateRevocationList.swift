import Foundation
import SwiftASN1
import X509

/// A parsed X.509 CRL (RFC 5280 section 5): who issued it, when it expires, and which serials it revokes.
///
/// Neither swift-nio-ssl nor swift-certificates parse CRLs, so this is written by hand on SwiftASN1. Only what
/// revocation checking needs is kept; entry and CRL extensions are skipped, except that an unknown *critical*
/// CRL extension makes the CRL unusable, as RFC 5280 requires.
package struct CertificateRevocationList: Sendable {
    package var issuer: DistinguishedName
    package var thisUpdate: Date
    package var nextUpdate: Date?
    /// Revoked serial numbers, normalised to have no leading zero bytes.
    package var revokedSerials: Set<[UInt8]>
    package var tbsBytes: [UInt8]
    package var signatureAlgorithm: ASN1ObjectIdentifier
    package var signatureBytes: [UInt8]

    /// Parses every CRL in a file: PEM (`-----BEGIN X509 CRL-----`, several allowed) or a single DER CRL.
    package static func parseFile(_ data: Data) throws -> [CertificateRevocationList] {
        let bytes = [UInt8](data)
        if let text = String(bytes: bytes, encoding: .utf8), text.contains("-----BEGIN") {
            let documents = try PEMDocument.parseMultiple(pemString: text)
            let crls = documents.filter { $0.discriminator == "X509 CRL" }
            guard !crls.isEmpty else { throw CRLError("no '-----BEGIN X509 CRL-----' block in PEM file") }
            return try crls.map { try CertificateRevocationList(derEncoded: $0.derBytes) }
        }
        return [try CertificateRevocationList(derEncoded: bytes)]
    }

    package init(derEncoded bytes: [UInt8]) throws {
        let root: ASN1Node
        do { root = try DER.parse(bytes) } catch { throw CRLError("not DER: \(error)") }
        guard case .constructed(let top) = root.content, root.identifier == .sequence else {
            throw CRLError("expected a SEQUENCE (CertificateList)")
        }
        var parts = top.makeIterator()
        guard let tbs = parts.next(), let algorithm = parts.next(), let signature = parts.next(), parts.next() == nil else {
            throw CRLError("CertificateList must have exactly three elements")
        }
        self.tbsBytes = Array(tbs.encodedBytes)
        self.signatureAlgorithm = try Self.algorithmOID(algorithm)
        let bitString = try ASN1BitString(derEncoded: signature)
        self.signatureBytes = Array(bitString.bytes)

        guard case .constructed(let tbsItems) = tbs.content else { throw CRLError("TBSCertList is not a SEQUENCE") }
        let items = Array(tbsItems)
        var index = 0
        if index < items.count, items[index].identifier == .integer {
            let version = try Int(derEncoded: items[index])
            guard version == 1 else { throw CRLError("unsupported CRL version \(version + 1)") }
            index += 1
        }
        guard index + 3 <= items.count else { throw CRLError("TBSCertList is truncated") }
        let innerAlgorithm = try Self.algorithmOID(items[index])
        guard innerAlgorithm == signatureAlgorithm else {
            throw CRLError("signature algorithm in TBSCertList does not match the outer one")
        }
        index += 1
        self.issuer = try DistinguishedName(derEncoded: items[index])
        index += 1
        self.thisUpdate = try Self.time(items[index])
        index += 1
        self.nextUpdate = nil
        if index < items.count, items[index].identifier == .utcTime || items[index].identifier == .generalizedTime {
            self.nextUpdate = try Self.time(items[index])
            index += 1
        }
        var revoked = Set<[UInt8]>()
        if index < items.count, items[index].identifier == .sequence {
            guard case .constructed(let entries) = items[index].content else { throw CRLError("revokedCertificates malformed") }
            for entry in entries {
                guard case .constructed(let fields) = entry.content, let serialNode = fields.first(where: { _ in true }) else {
                    throw CRLError("revoked certificate entry malformed")
                }
                let serial = try ArraySlice<UInt8>(derEncoded: serialNode)
                revoked.insert(Self.normalise(serial))
            }
            index += 1
        }
        if index < items.count {
            let extensionsNode = items[index]
            guard extensionsNode.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) else {
                throw CRLError("unexpected element in TBSCertList")
            }
            try Self.rejectUnknownCriticalExtensions(extensionsNode)
            index += 1
        }
        self.revokedSerials = revoked
    }

    package func isRevoked(serial: Certificate.SerialNumber) -> Bool {
        revokedSerials.contains(Self.normalise(serial.bytes))
    }

    /// Checks the CRL's signature with the public key of the CA that issued it.
    package func isSignatureValid(by issuerKey: Certificate.PublicKey) -> Bool {
        guard let algorithm = Self.knownAlgorithms[signatureAlgorithm] else { return false }
        return issuerKey.isValidSignature(signatureBytes, for: tbsBytes, signatureAlgorithm: algorithm)
    }

    package static func normalise(_ serial: ArraySlice<UInt8>) -> [UInt8] {
        Array(serial.drop(while: { $0 == 0 }))
    }

    /// The signature algorithms accepted on CRLs and OCSP responses.
    package static let knownAlgorithms: [ASN1ObjectIdentifier: Certificate.SignatureAlgorithm] = [
        [1, 2, 840, 10045, 4, 3, 2]: .ecdsaWithSHA256,
        [1, 2, 840, 10045, 4, 3, 3]: .ecdsaWithSHA384,
        [1, 2, 840, 10045, 4, 3, 4]: .ecdsaWithSHA512,
        [1, 2, 840, 113549, 1, 1, 11]: .sha256WithRSAEncryption,
        [1, 2, 840, 113549, 1, 1, 12]: .sha384WithRSAEncryption,
        [1, 2, 840, 113549, 1, 1, 13]: .sha512WithRSAEncryption,
        [1, 3, 101, 112]: .ed25519,
    ]

    package static func algorithmOID(_ node: ASN1Node) throws -> ASN1ObjectIdentifier {
        guard case .constructed(let fields) = node.content, let oidNode = fields.first(where: { _ in true }) else {
            throw CRLError("AlgorithmIdentifier malformed")
        }
        return try ASN1ObjectIdentifier(derEncoded: oidNode)
    }

    package static func time(_ node: ASN1Node) throws -> Date {
        if node.identifier == .utcTime {
            let t = try UTCTime(derEncoded: node)
            return try Self.date(t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        }
        if node.identifier == .generalizedTime {
            let t = try GeneralizedTime(derEncoded: node)
            return try Self.date(t.year, t.month, t.day, t.hours, t.minutes, t.seconds)
        }
        throw CRLError("expected UTCTime or GeneralizedTime")
    }

    private static func date(_ y: Int, _ mo: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) throws -> Date {
        var components = DateComponents()
        (components.year, components.month, components.day) = (y, mo, d)
        (components.hour, components.minute, components.second) = (h, mi, s)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let date = calendar.date(from: components) else { throw CRLError("invalid date") }
        return date
    }

    private static let understoodExtensions: Set<ASN1ObjectIdentifier> = [
        [2, 5, 29, 20],  // cRLNumber
        [2, 5, 29, 35],  // authorityKeyIdentifier
    ]

    private static func rejectUnknownCriticalExtensions(_ wrapper: ASN1Node) throws {
        guard case .constructed(let inner) = wrapper.content, let sequence = inner.first(where: { _ in true }),
            case .constructed(let extensions) = sequence.content
        else { throw CRLError("crlExtensions malformed") }
        for ext in extensions {
            let parsed = try Certificate.Extension(derEncoded: ext)
            if parsed.critical && !understoodExtensions.contains(parsed.oid) {
                throw CRLError("unsupported critical CRL extension \(parsed.oid)")
            }
        }
    }
}

package struct CRLError: Error, CustomStringConvertible {
    package var description: String
    package init(_ description: String) { self.description = description }
}
