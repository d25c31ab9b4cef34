import Crypto
import _CryptoExtras
import Foundation
import NIOConcurrencyHelpers
import SwiftASN1
import X509

/// Verifies a client's presented chain against a listener's CA bundle and CRLs, synchronously, on the event loop
/// that runs the handshake.
///
/// Why not BoringSSL's verifier: it reports failures only as one opaque error, cannot check our CRLs, and loses
/// the presented certificate, so a rejected client could not be logged or audited. Why not swift-certificates'
/// `Verifier`: it is async (a hop off the event loop per handshake) and measurably slower. This is a small
/// RFC 5280 path check (signatures, validity, CA constraints, key usage, clientAuth EKU, depth, CRLs) over
/// swift-certificates' parsed types and swift-crypto's signature checks.
///
/// Successful results are cached by the SHA-256 of the presented chain: a returning client costs a hash and a
/// table look-up instead of signature checks, and reuses the already computed `ClientIdentity`. Time validity and
/// CRL expiry are re-checked on every hit; the cache lives and dies with the compiled listener (a reload makes a
/// new one).
package final class ClientCertificateVerifier: Sendable {
    package struct Verified: Sendable {
        package var identity: ClientIdentity
        /// The window in which every certificate of the chain is valid.
        package var validFrom: Date
        package var validUntil: Date
        /// The earliest nextUpdate of the CRLs consulted; after it the chain must be checked again.
        package var crlNextUpdate: Date?
        /// The verified path, leaf first, up to the trust anchor (and the anchors above it): what online
        /// revocation checks (`RevocationChecker`) look at.
        package var path: [Certificate]
    }

    /// Outcome of one verification: the identity on success, or the reason plus whatever could be parsed.
    package enum Outcome: Sendable {
        case verified(ClientIdentity)
        case rejected(HandshakeRejection, presented: ClientIdentity?)
    }

    private let anchorsBySubject: [DistinguishedName: [Certificate]]
    private let crlsByIssuer: [DistinguishedName: CertificateRevocationList]
    /// CRLs whose issuer is no trust anchor (an issuing intermediate's, typically): applied when a verified path
    /// presents their issuer, once checked against that certificate (freshest first).
    private let pathCRLsByIssuer: [DistinguishedName: [CertificateRevocationList]]
    /// Whether a path CRL (by its index in `pathCRLsByIssuer[issuer]`) verifies with an issuer certificate.
    private let pathCRLChecks = NIOLockedValueBox<[PathCRLCheck: Bool]>([:])

    private struct PathCRLCheck: Hashable {
        var issuer: Certificate
        var index: Int
    }
    package let maxDepth: Int
    /// CRL files are configured for this policy (`gateway_revocation_checks_total{source="crl_file"}`).
    package var hasCRLs: Bool { !crlsByIssuer.isEmpty || !pathCRLsByIssuer.isEmpty }
    /// The earliest nextUpdate among this verifier's CRLs (trust anchors' and path CRLs): past it, every
    /// certificate such a CRL covers is refused (`crl_expired`) until fresh CRLs are loaded.
    package let earliestCRLNextUpdate: Date?
    /// The listener's `client_allow`: pins and subjectAltName matchers a verified leaf must also satisfy.
    private let allow: ClientAllowList?
    private let cache = NIOLockedValueBox<[SHA256Digest: Verified]>([:])
    /// The chain each verified leaf came with (by the leaf's SHA-256), to re-verify resumed TLS sessions.
    private let chainsByLeaf = NIOLockedValueBox<[SHA256Digest: [[UInt8]]]>([:])
    package static let cacheLimit = 10_000
    /// The most DER bytes of presented certificates read at all (a chain of 4096-bit RSA certificates is
    /// about 1.5 KB each): more is refused before anything is parsed.
    package static let maxPresentedBytes = 64 * 1024

    /// The largest RSA key accepted in a presented certificate (as Go's crypto/tls).
    package static let maxRSABits = 8192

    /// The most certificates a client may present: the leaf, `maxDepth` intermediates and a root.
    package var maxPresented: Int { maxDepth + 2 }

    /// The most signature checks one verification may make: two per link of the longest allowed path (an
    /// anchor and a presented candidate), so a handshake's verification cost is bounded whatever the client
    /// sends. Candidates whose subject key identifier contradicts the authority key identifier cost none.
    package var signatureBudget: Int { 2 * (maxDepth + 2) }

    /// The extended key usage a leaf must allow when it lists any: clientAuth for a listener; the x509-limbo
    /// harness (`gateway limbo`) also runs the path checks for serverAuth.
    private let leafUsage: ExtendedKeyUsage.Usage

    /// `crls` are signed by a certificate of `anchors` (checked at load); `pathCRLs` by none of them: each is
    /// checked when a path presents its issuer. `place(_:anchors:)` sorts CRLs into the two.
    package init(
        anchors: [Certificate], crls: [CertificateRevocationList], pathCRLs: [CertificateRevocationList] = [], maxDepth: Int,
        allow: ClientAllowList? = nil, leafUsage: ExtendedKeyUsage.Usage = .clientAuth
    ) {
        self.allow = allow
        self.leafUsage = leafUsage
        self.earliestCRLNextUpdate = (crls + pathCRLs).compactMap(\.nextUpdate).min()
        self.pathCRLsByIssuer = Dictionary(grouping: pathCRLs, by: \.issuer).mapValues { $0.sorted { $0.thisUpdate > $1.thisUpdate } }
        self.anchorsBySubject = Dictionary(grouping: anchors, by: \.subject)
        self.crlsByIssuer = Dictionary(crls.map { ($0.issuer, $0) }, uniquingKeysWith: { a, b in
            // Keep the freshest CRL when a file lists several for one CA.
            a.thisUpdate >= b.thisUpdate ? a : b
        })
        self.maxDepth = maxDepth
    }

    /// Verifies the chain as presented (leaf first). `der` are the same certificates as DER bytes.
    package func verify(der: [[UInt8]], now: Date = Date()) -> Outcome {
        var signatureChecks = 0
        return verify(der: der, now: now, signatureChecks: &signatureChecks).outcome
    }

    /// `verify`, with the verified path (leaf first, up to the trust anchor) when the chain verifies.
    package func verifyWithPath(der: [[UInt8]], now: Date = Date()) -> (outcome: Outcome, path: [Certificate]) {
        var signatureChecks = 0
        return verify(der: der, now: now, signatureChecks: &signatureChecks)
    }

    /// `verify`, counting the signature checks it made (tests state the bound).
    package func verify(der: [[UInt8]], now: Date = Date(), signatureChecks: inout Int) -> (outcome: Outcome, path: [Certificate]) {
        guard !der.isEmpty else { return (.rejected(.init(.noCertificate, "client sent no certificate"), presented: nil), []) }
        // Bounded before anything is parsed or hashed: a client cannot make verification cost more by sending more.
        guard der.count <= maxPresented else {
            return (.rejected(.init(.chainTooLong, "client presented \(der.count) certificates; at most \(maxPresented) (verify_depth + 2) are read"), presented: nil), [])
        }
        let totalBytes = der.reduce(0) { $0 + $1.count }
        guard totalBytes <= Self.maxPresentedBytes else {
            return (.rejected(.init(.chainTooLong, "client presented \(totalBytes) bytes of certificates; at most \(Self.maxPresentedBytes) are read"), presented: nil), [])
        }
        var hasher = SHA256()
        for cert in der {
            var length = UInt32(cert.count).bigEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            hasher.update(data: cert)
        }
        let key = hasher.finalize()
        if let hit = cache.withLockedValue({ $0[key] }),
            hit.validFrom <= now, now <= hit.validUntil, hit.crlNextUpdate.map({ now <= $0 }) ?? true
        {
            return (.verified(hit.identity), hit.path)
        }

        let presented: [Certificate]
        do {
            presented = try der.map { try Certificate(derEncoded: $0) }
        } catch {
            return (.rejected(.init(.malformed, "presented certificate does not parse: \(error)"), presented: nil), [])
        }
        let identity = ClientIdentity(presented: presented, der: der)
        // The cost of one signature check grows with the RSA modulus (8192 bits: ~1 ms here): bound it too.
        for certificate in presented {
            if let rsa = _RSA.Signing.PublicKey(certificate.publicKey), rsa.keySizeInBits > Self.maxRSABits {
                return (.rejected(.init(.malformed, "certificate '\(certificate.subject)' has a \(rsa.keySizeInBits)-bit RSA key; at most \(Self.maxRSABits) bits are accepted"), presented: identity), [])
            }
        }
        var signatures = SignatureBudget(limit: signatureBudget)
        defer { signatureChecks = signatures.used }
        switch check(presented, now: now, signatures: &signatures) {
        case .success(let window):
            // Only admitted chains are cached, so a cache hit needs no second look at the allow-list.
            if let rejection = allow?.rejection(leaf: presented[0], leafDER: der[0]) {
                return (.rejected(rejection, presented: identity), [])
            }
            let verified = Verified(identity: identity, validFrom: window.from, validUntil: window.until, crlNextUpdate: window.crlNextUpdate, path: window.path)
            cache.withLockedValue { cache in
                if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[key] = verified
            }
            if der.count > 1 {
                let leafKey = SHA256.hash(data: der[0])
                chainsByLeaf.withLockedValue { chains in
                    if chains.count >= Self.cacheLimit { chains.removeAll(keepingCapacity: true) }
                    chains[leafKey] = der
                }
            }
            return (.verified(identity), window.path)
        case .failure(let rejection):
            return (.rejected(rejection, presented: identity), [])
        }
    }

    /// Verifies the client of a resumed TLS session. BoringSSL does not run the verification callback when a
    /// session resumes, and keeps only the leaf in the session; the chain comes from the full handshake that
    /// created the session (sessions never outlive this verifier: a reload makes new contexts and ticket keys).
    /// Validity and CRLs are checked again, as on every cache hit.
    package func verifyResumed(leafDER: [UInt8], now: Date = Date()) -> (outcome: Outcome, path: [Certificate]) {
        let chain = chainsByLeaf.withLockedValue { $0[SHA256.hash(data: leafDER)] } ?? [leafDER]
        return verifyWithPath(der: chain, now: now)
    }

    private struct Window {
        var from: Date
        var until: Date
        var crlNextUpdate: Date?
        var path: [Certificate] = []
    }

    /// Counts signature checks against a per-verification limit, and skips a candidate issuer whose subject key
    /// identifier differs from the certificate's authority key identifier without any cryptography.
    private struct SignatureBudget {
        let limit: Int
        var used = 0

        /// Whether `issuer` signed `certificate`; nil once the budget is spent.
        mutating func signed(_ certificate: Certificate, by issuer: Certificate) -> Bool? {
            if let wanted = try? certificate.extensions.authorityKeyIdentifier?.keyIdentifier,
                let offered = try? issuer.extensions.subjectKeyIdentifier?.keyIdentifier, wanted != offered
            {
                return false
            }
            guard used < limit else { return nil }
            used += 1
            return issuer.publicKey.isValidSignature(certificate.signature, for: certificate)
        }
    }

    private func budgetSpent(_ leaf: Certificate) -> HandshakeRejection {
        .init(.chainTooLong, "verifying '\(leaf.subject)' needed more than \(signatureBudget) signature checks; refused")
    }

    private func check(_ presented: [Certificate], now: Date, signatures: inout SignatureBudget) -> Result<Window, HandshakeRejection> {
        let leaf = presented[0]
        var chain = [leaf]
        var window = Window(from: leaf.notValidBefore, until: leaf.notValidAfter, crlNextUpdate: nil)

        if let failure = checkLeafUsage(leaf) { return .failure(failure) }

        // Build the path upwards: a trust anchor wins over a presented intermediate with the same name.
        var current = leaf
        var anchored = false
        var intermediates = Array(presented.dropFirst())
        while !anchored {
            if chain.count > maxDepth + 1 {
                return .failure(.init(.chainTooLong, "chain from '\(leaf.subject)' is longer than verify_depth \(maxDepth)"))
            }
            guard let found = issuingAnchor(of: current, signatures: &signatures) else { return .failure(budgetSpent(leaf)) }
            if let anchor = found {
                chain.append(anchor)
                anchored = true
                // An intermediate listed in client_ca is trusted, but its own issuer's CRL still applies:
                // keep climbing through client_ca up to a self-issued root.
                var top = anchor
                while top.subject != top.issuer, chain.count <= maxDepth + 1 {
                    guard let found = issuingAnchor(of: top, signatures: &signatures) else { return .failure(budgetSpent(leaf)) }
                    guard let parent = found, !chain.contains(parent) else { break }
                    chain.append(parent)
                    top = parent
                }
                break
            }
            var issuerIndex: Int?
            for (index, candidate) in intermediates.enumerated() where candidate.subject == current.issuer {
                guard let signed = signatures.signed(current, by: candidate) else { return .failure(budgetSpent(leaf)) }
                if signed {
                    issuerIndex = index
                    break
                }
            }
            if let index = issuerIndex {
                let next = intermediates.remove(at: index)
                chain.append(next)
                current = next
                continue
            }
            if current.subject == current.issuer {
                guard let selfSigned = signatures.signed(current, by: current) else { return .failure(budgetSpent(leaf)) }
                if selfSigned { return .failure(.init(.selfSigned, "self-signed certificate '\(current.subject)' is not a trusted CA")) }
            }
            if anchorsBySubject[current.issuer] != nil || intermediates.contains(where: { $0.subject == current.issuer }) {
                return .failure(.init(.badSignature, "signature of '\(current.subject)' does not verify with its issuer '\(current.issuer)'"))
            }
            return .failure(.init(.unknownCA, "issuer '\(current.issuer)' of '\(current.subject)' is not a trusted CA"))
        }
        if chain.count > maxDepth + 1 {
            return .failure(.init(.chainTooLong, "chain from '\(leaf.subject)' is longer than verify_depth \(maxDepth)"))
        }

        for (position, cert) in chain.enumerated() {
            let role = position == 0 ? "certificate" : "issuer certificate"
            if now < cert.notValidBefore {
                return .failure(.init(.notYetValid, "\(role) '\(cert.subject)' is not valid before \(cert.notValidBefore)"))
            }
            if now > cert.notValidAfter {
                return .failure(.init(.expired, "\(role) '\(cert.subject)' expired at \(cert.notValidAfter)"))
            }
            window.from = max(window.from, cert.notValidBefore)
            window.until = min(window.until, cert.notValidAfter)
            if let unknown = cert.extensions.first(where: { $0.critical && !Self.understoodExtensions.contains($0.oid) }) {
                return .failure(.init(.malformed, "\(role) '\(cert.subject)' has an unsupported critical extension \(unknown.oid)"))
            }
            if let problem = Self.keyIdentifierProblem(cert) {
                return .failure(.init(.malformed, "\(role) '\(cert.subject)' \(problem)"))
            }
            // A subjectAltName that does not parse is refused, whether or not name constraints would read it.
            do {
                _ = try cert.extensions.subjectAlternativeNames
            } catch {
                return .failure(.init(.malformed, "\(role) '\(cert.subject)' has a malformed subjectAltName: \(error)"))
            }
            // RFC 5280 6.1.4 (l): self-issued intermediates do not count against a path length constraint.
            if position > 0, let failure = checkCA(cert, below: chain[1..<position].reduce(0) { $0 + ($1.subject != $1.issuer ? 1 : 0) }) {
                return .failure(failure)
            }
            // Revocation: every certificate below the trust anchor, against the CRL of its issuer: one signed by a
            // trust anchor (checked at load), or one checked against the issuer certificate of this path.
            var pathCRL: CertificateRevocationList?
            if position < chain.count - 1, crlsByIssuer[cert.issuer] == nil, pathCRLsByIssuer[cert.issuer] != nil {
                switch self.pathCRL(issuedBy: chain[position + 1]) {
                case .success(let found): pathCRL = found
                case .failure(let rejection): return .failure(rejection)
                }
            }
            if position < chain.count - 1, let crl = crlsByIssuer[cert.issuer] ?? pathCRL {
                if let next = crl.nextUpdate {
                    if now > next {
                        return .failure(.init(.crlExpired, "CRL of '\(crl.issuer)' expired at \(next); refusing certificates it covers"))
                    }
                    window.crlNextUpdate = min(window.crlNextUpdate ?? next, next)
                }
                if crl.isRevoked(serial: cert.serialNumber) {
                    return .failure(.init(.revoked, "\(role) '\(cert.subject)' serial \(cert.serialNumber) is revoked by the CRL of '\(crl.issuer)'"))
                }
            }
        }
        if let violation = NameConstraintsCheck.violation(in: chain) {
            return .failure(.init(.nameConstraints, violation))
        }
        window.path = chain
        return .success(window)
    }

    /// RFC 5280 4.2.1.1, 4.2.1.2: conforming CAs mark key identifiers non-critical (OpenSSL, Go, rustls-webpki
    /// and pyca/cryptography refuse a critical one too).
    static func keyIdentifierProblem(_ certificate: Certificate) -> String? {
        certificate.extensions.first { $0.critical && ($0.oid == [2, 5, 29, 35] || $0.oid == [2, 5, 29, 14]) }
            .map { "marks its key identifier \($0.oid) critical" }
    }

    /// Why a certificate of `client_ca` cannot be a trust anchor, or nil: the config loader refuses it, rather
    /// than every client being refused later.
    package static func anchorProblem(_ certificate: Certificate) -> String? {
        guard case .isCertificateAuthority = (try? certificate.extensions.basicConstraints) ?? .notCertificateAuthority else {
            return "is not a CA certificate (basicConstraints CA:TRUE missing)"
        }
        return keyIdentifierProblem(certificate)
    }

    /// Where a configured CRL goes: to the trust anchors' CRLs (it names an anchor and one of them signed it),
    /// to the path CRLs (it names no anchor), or nowhere, with the reason.
    package enum CRLPlacement: Equatable {
        case anchor
        case path
        case refused(String)
    }

    /// Sorts one configured CRL (`RuntimeCompiler` for each CRL file, `gateway limbo` for each testcase).
    package static func place(_ crl: CertificateRevocationList, anchors: [Certificate]) -> CRLPlacement {
        let issuers = anchors.filter { $0.subject == crl.issuer }
        if issuers.isEmpty {
            // A CA above a trust anchor is never in a verified path (paths end at the anchor): its CRL could never
            // be checked, and the anchor's revocation would silently not apply.
            if let below = anchors.first(where: { $0.issuer == crl.issuer && $0.subject != $0.issuer }) {
                return .refused("is issued by '\(crl.issuer)', which issued the client_ca certificate '\(below.subject)' but is not in client_ca itself: paths end at '\(below.subject)', so this CRL would never be checked (add '\(crl.issuer)' to client_ca)")
            }
            return .path
        }
        let signers = issuers.filter { crl.isSignatureValid(by: $0.publicKey) }
        guard !signers.isEmpty else {
            return .refused("is not validly signed by '\(crl.issuer)'")
        }
        // As for a path CRL: a CA whose key usage leaves out cRLSign may not sign CRLs (RFC 5280 4.2.1.3).
        guard signers.contains(where: { (try? $0.extensions.keyUsage).map { $0?.cRLSign ?? true } ?? false }) else {
            return .refused("is signed by '\(crl.issuer)', whose key usage lacks cRLSign")
        }
        return .anchor
    }

    /// The freshest configured CRL named for `issuer` that `issuer` signed, and may sign (cRLSign). Fails closed:
    /// a CRL configured for this issuer that it did not sign (or may not sign) leaves revocation unknown, and
    /// the client is refused (`crl_invalid`) rather than admitted unchecked. Results are cached per issuer
    /// certificate, so a signature is checked once, not per handshake.
    private func pathCRL(issuedBy issuer: Certificate) -> Result<CertificateRevocationList, HandshakeRejection> {
        let candidates = pathCRLsByIssuer[issuer.subject] ?? []
        do {
            if let usage = try issuer.extensions.keyUsage, !usage.cRLSign {
                return .failure(.init(.crlInvalid, "a CRL of '\(issuer.subject)' is configured, but that CA's key usage lacks cRLSign"))
            }
        } catch {
            return .failure(.init(.malformed, "issuer certificate '\(issuer.subject)' has a malformed extension: \(error)"))
        }
        for (index, crl) in candidates.enumerated() {
            let key = PathCRLCheck(issuer: issuer, index: index)
            let valid = pathCRLChecks.withLockedValue { $0[key] } ?? {
                let valid = crl.isSignatureValid(by: issuer.publicKey)
                pathCRLChecks.withLockedValue { checks in
                    if checks.count >= Self.cacheLimit { checks.removeAll(keepingCapacity: true) }
                    checks[key] = valid
                }
                return valid
            }()
            if valid { return .success(crl) }
        }
        return .failure(.init(.crlInvalid, "a CRL of '\(issuer.subject)' is configured, but none is validly signed by the certificate of that CA this client presented (serial \(issuer.serialNumber))"))
    }

    /// The trust anchor that signed `certificate`: .some(nil) when none did, nil when the budget ran out.
    private func issuingAnchor(of certificate: Certificate, signatures: inout SignatureBudget) -> Certificate?? {
        for anchor in anchorsBySubject[certificate.issuer] ?? [] {
            guard let signed = signatures.signed(certificate, by: anchor) else { return nil }
            if signed { return .some(anchor) }
        }
        return .some(nil)
    }

    private func checkLeafUsage(_ leaf: Certificate) -> HandshakeRejection? {
        do {
            if let eku = try leaf.extensions.extendedKeyUsage, !eku.contains(leafUsage) {
                let purpose = leafUsage == .clientAuth ? "client authentication (extended key usage lacks clientAuth)" : "\(leafUsage)"
                return .init(.usage, "certificate '\(leaf.subject)' is not allowed for \(purpose)")
            }
            if let usage = try leaf.extensions.keyUsage, !usage.digitalSignature {
                return .init(.usage, "certificate '\(leaf.subject)' key usage lacks digitalSignature")
            }
            // RFC 5280 4.2.1.10: name constraints belong in CA certificates only.
            if try leaf.extensions.nameConstraints != nil,
                case .notCertificateAuthority = try leaf.extensions.basicConstraints ?? .notCertificateAuthority
            {
                return .init(.malformed, "certificate '\(leaf.subject)' is no CA and has a nameConstraints extension")
            }
        } catch {
            return .init(.malformed, "certificate '\(leaf.subject)' has a malformed extension: \(error)")
        }
        return nil
    }

    /// `intermediatesBelow` is how many CA certificates that are not self-issued sit between this CA and the leaf.
    private func checkCA(_ ca: Certificate, below intermediatesBelow: Int) -> HandshakeRejection? {
        do {
            guard case .isCertificateAuthority(let maxPathLength) = try ca.extensions.basicConstraints else {
                return .init(.invalidCA, "issuer certificate '\(ca.subject)' is not a CA (basicConstraints)")
            }
            if let maxPathLength, intermediatesBelow > maxPathLength {
                return .init(.invalidCA, "issuer certificate '\(ca.subject)' path length constraint \(maxPathLength) exceeded")
            }
            if let usage = try ca.extensions.keyUsage, !usage.keyCertSign {
                return .init(.invalidCA, "issuer certificate '\(ca.subject)' key usage lacks keyCertSign")
            }
        } catch {
            return .init(.malformed, "issuer certificate '\(ca.subject)' has a malformed extension: \(error)")
        }
        return nil
    }

    private static let understoodExtensions: Set<ASN1ObjectIdentifier> = [
        [2, 5, 29, 19],  // basicConstraints
        [2, 5, 29, 15],  // keyUsage
        [2, 5, 29, 37],  // extendedKeyUsage
        [2, 5, 29, 17],  // subjectAltName
        [2, 5, 29, 14],  // subjectKeyIdentifier
        [2, 5, 29, 35],  // authorityKeyIdentifier
        [2, 5, 29, 32],  // certificatePolicies (not enforced, as in default OpenSSL verification)
        [2, 5, 29, 30],  // nameConstraints (NameConstraintsCheck, critical or not)
    ]
}
