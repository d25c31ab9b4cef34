import Crypto
import Foundation
import SwiftASN1
import X509

/// A parsed OCSP response (RFC 6960 4.2.1), and its validation for one certificate: the basic response type
/// only, signed by the certificate's issuer or by a responder certificate the issuer issued for OCSP signing.
package struct OCSPResponseMessage: Sendable {
    package enum Status: Sendable, Equatable {
        case good
        case revoked(at: Date)
        case unknown
    }

    package struct SingleResponse: Sendable {
        package var certID: OCSPCertificateID?
        package var status: Status
        package var thisUpdate: Date
        package var nextUpdate: Date?
    }

    package enum ResponderID: Sendable {
        case byName(DistinguishedName)
        case byKey([UInt8])
    }

    /// The responseStatus: 0 successful; 1 malformedRequest, 2 internalError, 3 tryLater, 5 sigRequired, 6 unauthorized.
    package var responseStatus: Int
    package var responderID: ResponderID?
    package var producedAt: Date?
    package var responses: [SingleResponse] = []
    package var certificates: [Certificate] = []
    package var tbsBytes: [UInt8] = []
    package var signatureAlgorithm: ASN1ObjectIdentifier?
    package var signatureBytes: [UInt8] = []

    package static let basicResponseType: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]
    /// Clocks differ: an answer produced or updated this far in the future is still accepted.
    package static let leeway: TimeInterval = 300
    /// An answer without nextUpdate (RFC 5019: newer information is always available) is accepted only if its
    /// thisUpdate is this recent: an old one replayed is refused.
    package static let maxAgeWithoutNextUpdate: TimeInterval = 3600

    package init(derEncoded bytes: [UInt8]) throws {
        let root = try Self.parse(bytes, what: "OCSPResponse")
        guard root.identifier == .sequence, case .constructed(let top) = root.content else { throw OCSPError("OCSPResponse is not a SEQUENCE") }
        var items = top.makeIterator()
        guard let statusNode = items.next(), statusNode.identifier == .enumerated, case .primitive(let statusBytes) = statusNode.content,
            statusBytes.count == 1
        else { throw OCSPError("responseStatus is not a one-byte ENUMERATED") }
        responseStatus = Int(statusBytes.first!)
        guard let wrapper = items.next() else {
            guard responseStatus != 0 else { throw OCSPError("a successful OCSPResponse has no responseBytes") }
            return
        }
        guard items.next() == nil else { throw OCSPError("OCSPResponse has trailing fields") }
        guard responseStatus == 0 else { return }
        guard wrapper.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific), case .constructed(let wrapped) = wrapper.content,
            let responseBytes = wrapped.first(where: { _ in true }), case .constructed(let typeAndBytes) = responseBytes.content
        else { throw OCSPError("responseBytes malformed") }
        var parts = typeAndBytes.makeIterator()
        guard let typeNode = parts.next(), let octets = parts.next(), parts.next() == nil else { throw OCSPError("ResponseBytes must have two fields") }
        let type = try ASN1ObjectIdentifier(derEncoded: typeNode)
        guard type == Self.basicResponseType else { throw OCSPError("response type \(type) is not id-pkix-ocsp-basic") }
        let basic = try Self.parse(Array(try ASN1OctetString(derEncoded: octets).bytes), what: "BasicOCSPResponse")
        try readBasic(basic)
    }

    private static func parse(_ bytes: [UInt8], what: String) throws -> ASN1Node {
        do { return try DER.parse(bytes) } catch { throw OCSPError("\(what) is not DER: \(error)") }
    }

    private mutating func readBasic(_ node: ASN1Node) throws {
        guard node.identifier == .sequence, case .constructed(let fields) = node.content else { throw OCSPError("BasicOCSPResponse is not a SEQUENCE") }
        let items = Array(fields)
        guard items.count == 3 || items.count == 4 else { throw OCSPError("BasicOCSPResponse has \(items.count) fields") }
        tbsBytes = Array(items[0].encodedBytes)
        signatureAlgorithm = try CertificateRevocationList.algorithmOID(items[1])
        signatureBytes = Array(try ASN1BitString(derEncoded: items[2]).bytes)
        if items.count == 4 {
            guard items[3].identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific), case .constructed(let wrapped) = items[3].content,
                let sequence = wrapped.first(where: { _ in true }), case .constructed(let certs) = sequence.content
            else { throw OCSPError("certs malformed") }
            for cert in certs {
                certificates.append(try Certificate(derEncoded: Array(cert.encodedBytes)))
                guard certificates.count <= 8 else { throw OCSPError("more than 8 certificates in the response") }
            }
        }
        guard items[0].identifier == .sequence, case .constructed(let dataFields) = items[0].content else { throw OCSPError("ResponseData is not a SEQUENCE") }
        var data = Array(dataFields)[...]
        if let first = data.first, first.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
            guard case .constructed(let wrapped) = first.content, let versionNode = wrapped.first(where: { _ in true }),
                try Int(derEncoded: versionNode) == 0
            else { throw OCSPError("ResponseData version is not v1") }
            data = data.dropFirst()
        }
        guard data.count >= 3 else { throw OCSPError("ResponseData is truncated") }
        let responder = data.removeFirst()
        guard case .constructed(let responderInner) = responder.content, let value = responderInner.first(where: { _ in true }) else {
            throw OCSPError("responderID malformed")
        }
        switch (responder.identifier.tagClass, responder.identifier.tagNumber) {
        case (.contextSpecific, 1): responderID = .byName(try DistinguishedName(derEncoded: value))
        case (.contextSpecific, 2): responderID = .byKey(Array(try ASN1OctetString(derEncoded: value).bytes))
        default: throw OCSPError("responderID is neither byName nor byKey")
        }
        let produced = data.removeFirst()
        guard produced.identifier == .generalizedTime else { throw OCSPError("producedAt is not a GeneralizedTime") }
        producedAt = try CertificateRevocationList.time(produced)
        let list = data.removeFirst()
        guard list.identifier == .sequence, case .constructed(let singles) = list.content else { throw OCSPError("responses is not a SEQUENCE") }
        for single in singles {
            responses.append(try Self.single(single))
            guard responses.count <= 64 else { throw OCSPError("more than 64 responses") }
        }
        if let extensions = data.first {
            guard extensions.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific), data.count == 1 else {
                throw OCSPError("unexpected field in ResponseData")
            }
        }
    }

    private static func single(_ node: ASN1Node) throws -> SingleResponse {
        guard node.identifier == .sequence, case .constructed(let fields) = node.content else { throw OCSPError("SingleResponse is not a SEQUENCE") }
        var items = Array(fields)[...]
        guard items.count >= 3 else { throw OCSPError("SingleResponse is truncated") }
        let certID = try OCSPCertificateID.parse(items.removeFirst())
        let statusNode = items.removeFirst()
        let status: Status
        switch (statusNode.identifier.tagClass, statusNode.identifier.tagNumber) {
        case (.contextSpecific, 0): status = .good
        case (.contextSpecific, 1):
            guard case .constructed(let revokedFields) = statusNode.content, let time = revokedFields.first(where: { _ in true }),
                time.identifier == .generalizedTime
            else { throw OCSPError("RevokedInfo malformed") }
            status = .revoked(at: try CertificateRevocationList.time(time))
        case (.contextSpecific, 2): status = .unknown
        default: throw OCSPError("certStatus is not good, revoked or unknown")
        }
        let thisNode = items.removeFirst()
        guard thisNode.identifier == .generalizedTime else { throw OCSPError("thisUpdate is not a GeneralizedTime") }
        let thisUpdate = try CertificateRevocationList.time(thisNode)
        var nextUpdate: Date?
        if let next = items.first, next.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
            guard case .constructed(let wrapped) = next.content, let time = wrapped.first(where: { _ in true }), time.identifier == .generalizedTime else {
                throw OCSPError("nextUpdate malformed")
            }
            nextUpdate = try CertificateRevocationList.time(time)
            items = items.dropFirst()
        }
        if let extensions = items.first {
            guard extensions.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific), items.count == 1 else {
                throw OCSPError("unexpected field in SingleResponse")
            }
        }
        return SingleResponse(certID: certID, status: status, thisUpdate: thisUpdate, nextUpdate: nextUpdate)
    }

    /// The answer for `id`, after checking who signed the response and when: the certificate's status and until
    /// when it may be reused (its nextUpdate), or why the response cannot be used.
    package func validate(for id: OCSPCertificateID, issuer: Certificate, now: Date) -> Result<SingleResponse, OCSPError> {
        guard responseStatus == 0 else {
            let names = [1: "malformedRequest", 2: "internalError", 3: "tryLater", 5: "sigRequired", 6: "unauthorized"]
            return .failure(OCSPError("the responder answered \(names[responseStatus] ?? "status \(responseStatus)")"))
        }
        guard let single = responses.first(where: { $0.certID == id }) else {
            return .failure(OCSPError("the response has no answer for the certificate asked about"))
        }
        guard let algorithmOID = signatureAlgorithm, let algorithm = CertificateRevocationList.knownAlgorithms[algorithmOID] else {
            return .failure(OCSPError("the response is signed with an unsupported algorithm \(signatureAlgorithm.map { "\($0)" } ?? "?")"))
        }
        let signer: Certificate
        if matches(issuer) {
            signer = issuer
        } else if let delegate = certificates.first(where: { matches($0) }) {
            if let problem = Self.delegateProblem(delegate, issuer: issuer, now: now) { return .failure(OCSPError(problem)) }
            signer = delegate
        } else {
            return .failure(OCSPError("the response is signed neither by '\(issuer.subject)' nor by a responder certificate it carries"))
        }
        guard signer.publicKey.isValidSignature(signatureBytes, for: tbsBytes, signatureAlgorithm: algorithm) else {
            return .failure(OCSPError("the response's signature does not verify with '\(signer.subject)'"))
        }
        if let producedAt, producedAt > now.addingTimeInterval(Self.leeway) {
            return .failure(OCSPError("the response was produced in the future (\(producedAt))"))
        }
        if single.thisUpdate > now.addingTimeInterval(Self.leeway) {
            return .failure(OCSPError("the response's thisUpdate \(single.thisUpdate) is in the future"))
        }
        if let next = single.nextUpdate, next < now {
            return .failure(OCSPError("the response is stale: its nextUpdate \(next) has passed"))
        }
        if single.nextUpdate == nil, single.thisUpdate < now.addingTimeInterval(-Self.maxAgeWithoutNextUpdate) {
            return .failure(OCSPError("the response is stale: it has no nextUpdate and its thisUpdate \(single.thisUpdate) is more than an hour old"))
        }
        return .success(single)
    }

    private func matches(_ certificate: Certificate) -> Bool {
        switch responderID {
        case .byName(let name): return certificate.subject == name
        case .byKey(let hash): return Array(Insecure.SHA1.hash(data: Array(certificate.publicKey.subjectPublicKeyInfoBytes))) == hash
        case nil: return false
        }
    }

    /// RFC 6960 4.2.2.2: a delegated responder's certificate is issued by the CA itself and allows OCSP signing.
    private static func delegateProblem(_ delegate: Certificate, issuer: Certificate, now: Date) -> String? {
        guard delegate.issuer == issuer.subject, issuer.publicKey.isValidSignature(delegate.signature, for: delegate) else {
            return "the responder certificate '\(delegate.subject)' is not issued by '\(issuer.subject)'"
        }
        guard let usage = try? delegate.extensions.extendedKeyUsage, usage.contains(.ocspSigning) else {
            return "the responder certificate '\(delegate.subject)' does not allow OCSP signing (extended key usage)"
        }
        guard delegate.notValidBefore <= now, now <= delegate.notValidAfter else {
            return "the responder certificate '\(delegate.subject)' is not valid now"
        }
        return nil
    }
}
