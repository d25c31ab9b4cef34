import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import X509
import XCTest

/// The CPU a client can make one handshake's verification cost is bounded: presented certificates are
/// capped in number and bytes before parsing, candidate issuers whose key identifier contradicts the
/// certificate's are skipped without cryptography, and signature checks have a per-verification budget.
/// (Before: every presented certificate whose subject matched was signature-checked, so 70 decoy "CA"
/// certificates with 8192-bit RSA keys cost ~65 ms of event-loop CPU per rejected handshake.)
final class VerifierCostTests: XCTestCase {
    private var pki: TestPKI!
    private var verifier: ClientCertificateVerifier!

    override func setUp() async throws {
        try await super.setUp()
        pki = try TestPKI()
        verifier = ClientCertificateVerifier(anchors: [pki.rootCA.certificate], crls: [], maxDepth: 4)
    }

    /// A self-signed "CA" named like the real intermediate, with a key of its own.
    private func decoy() throws -> Certificate {
        let f = CertificateFactory.self
        return try f.makeCA(pki.intermediateCA.name).certificate
    }

    /// A client leaf issued by the real intermediate, with an authority key identifier when asked.
    private func leaf(authorityKeyIdentifier: Bool) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        let intermediate = pki.intermediateCA
        let ski = try XCTUnwrap(try intermediate.certificate.extensions.subjectKeyIdentifier).keyIdentifier
        let extensions = try Certificate.Extensions {
            try ExtendedKeyUsage([.clientAuth])
            if authorityKeyIdentifier { AuthorityKeyIdentifier(keyIdentifier: ski) }
        }
        return try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: intermediate.name, subject: try DistinguishedName { CommonName("decoyed") },
            signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions, issuerPrivateKey: .init(intermediate.privateKey)
        )
    }

    private func der(_ certificates: [Certificate]) throws -> [[UInt8]] {
        try certificates.map { try $0.serializeAsPEM().derBytes }
    }

    func testSeventyDecoysAreRefusedBeforeAnySignatureCheck() throws {
        let chain = try [leaf(authorityKeyIdentifier: false)] + (0..<70).map { _ in try decoy() } + [pki.intermediateCA.certificate]
        var checks = 0
        guard case .rejected(let rejection, _) = verifier.verify(der: try der(chain), signatureChecks: &checks).outcome else { return XCTFail("accepted") }
        XCTAssertEqual(rejection.code, .chainTooLong)
        XCTAssertEqual(rejection.detail, "client presented 72 certificates; at most 6 (verify_depth + 2) are read")
        XCTAssertEqual(checks, 0)
    }

    func testDecoysWithAnotherKeyIdentifierCostNoSignatureCheck() throws {
        let chain = try [leaf(authorityKeyIdentifier: true)] + (0..<4).map { _ in try decoy() } + [pki.intermediateCA.certificate]
        var checks = 0
        guard case .verified = verifier.verify(der: try der(chain), signatureChecks: &checks).outcome else { return XCTFail("the real chain verifies") }
        XCTAssertEqual(checks, 2, "leaf by the intermediate, intermediate by the root; the four decoys were skipped by key identifier")
    }

    func testWithoutKeyIdentifiersTheChecksStayWithinTheBudget() throws {
        let chain = try [leaf(authorityKeyIdentifier: false)] + (0..<4).map { _ in try decoy() } + [pki.intermediateCA.certificate]
        var checks = 0
        guard case .verified = verifier.verify(der: try der(chain), signatureChecks: &checks).outcome else { return XCTFail("the real chain verifies") }
        XCTAssertEqual(checks, 6, "four decoys tried, then the intermediate and the root")
        XCTAssertLessThanOrEqual(checks, verifier.signatureBudget)
        XCTAssertEqual(verifier.signatureBudget, 12)
    }

    func testOversizedChainsAreRefusedUnparsed() {
        var checks = 0
        guard case .rejected(let rejection, let presented) = verifier.verify(der: [[UInt8](repeating: 0x30, count: 70_000)], signatureChecks: &checks).outcome else {
            return XCTFail("accepted")
        }
        XCTAssertEqual(rejection.code, .chainTooLong)
        XCTAssertEqual(rejection.detail, "client presented 70000 bytes of certificates; at most 65536 are read")
        XCTAssertNil(presented)
        XCTAssertEqual(checks, 0)
    }
}
