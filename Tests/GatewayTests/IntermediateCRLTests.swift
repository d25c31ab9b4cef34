import Foundation
import GatewayCore
import GatewayTooling
import SwiftASN1
import XCTest

/// A CRL published by an issuing intermediate, with only the root in `client_ca` (the usual PKI): checked against
/// the intermediate the client presents.
final class IntermediateCRLTests: GatewayTestCase {
    private func start(crl: String) async throws {
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  crl: [root.crl.pem, \(crl)]
                routes: [ { backend: app } ]
            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
    }

    private func status(_ client: String) async throws -> Int? {
        try await TestClient.get(port: gateway.port("mtls"), tls: tls(client), path: "/who")?.status
    }

    private func rejection(_ reason: HandshakeRejection.Code) async -> LogCapture.Record? {
        await gateway.logs.waitFor { $0.message == "TLS handshake rejected" && $0.metadata["reason"] == reason.name }
    }

    /// A second client of the intermediate, revoked by the intermediate's own CRL.
    private func addRevokedClientOfTheIntermediate() throws -> IssuedCertificate {
        let f = CertificateFactory.self
        let leaf = try f.makeLeaf(f.name(commonName: "revoked-by-intermediate"), issuer: pki.intermediateCA)
        try pki.addClient("revoked-by-intermediate", leaf, chain: [pki.intermediateCA])
        return leaf
    }

    func testTheIntermediatesCRLRevokesItsClientsWithOnlyTheRootTrusted() async throws {
        let revoked = try addRevokedClientOfTheIntermediate()
        try pki.write("intermediate.crl.pem", CRLBuilder.pem(try CRLBuilder.make(issuer: pki.intermediateCA, revoked: [revoked.certificate.serialNumber])))
        try await start(crl: "intermediate.crl.pem")
        let good = try await status("via-intermediate")
        XCTAssertEqual(good, 200)
        let refused = try await status("revoked-by-intermediate")
        XCTAssertNil(refused)
        let logged = await rejection(.revoked)
        XCTAssertTrue(logged?.metadata["detail"]?.contains("revoked by the CRL of 'CN=Test Intermediate CA") ?? false, "\(String(describing: logged))")
        // The root's CRL still applies to the root's own clients.
        let rootRevoked = try await status("revoked")
        XCTAssertNil(rootRevoked)
        XCTAssertEqual(backend.requests.count, 1)
        let runtime = gateway.server.runtime
        let samples = try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
        XCTAssertEqual(samples.value("gateway_revocation_checks_total", ["listener": "mtls", "source": "crl_file", "result": "good"]), 1)
        XCTAssertEqual(samples.value("gateway_revocation_checks_total", ["listener": "mtls", "source": "crl_file", "result": "revoked"]), 2)
    }

    func testACRLNotSignedByThePresentedIntermediateRefusesItsClients() async throws {
        // The intermediate's name, another key: revocation of its clients cannot be checked, so they are refused.
        let f = CertificateFactory.self
        let impostor = try f.makeCA(f.name(commonName: "Test Intermediate CA", organization: "Test"))
        try pki.write("forged-intermediate.crl.pem", CRLBuilder.pem(try CRLBuilder.make(issuer: pki.intermediateCA, revoked: [], signer: impostor.privateKey)))
        try await start(crl: "forged-intermediate.crl.pem")
        let refused = try await status("via-intermediate")
        XCTAssertNil(refused)
        let logged = await rejection(.crlInvalid)
        XCTAssertTrue(logged?.metadata["detail"]?.contains("none is validly signed by the certificate of that CA this client presented") ?? false,
                      "\(String(describing: logged))")
        // Clients of other paths are not concerned.
        let other = try await status("valid")
        XCTAssertEqual(other, 200)
    }

    func testAnExpiredIntermediateCRLRefusesItsClients() async throws {
        try pki.write("stale-intermediate.crl.pem", CRLBuilder.pem(try CRLBuilder.make(
            issuer: pki.intermediateCA, revoked: [], thisUpdate: Date() - 3 * 86400, nextUpdate: Date() + 2)))
        try await start(crl: "stale-intermediate.crl.pem")
        // The gauge shows the earliest nextUpdate of the listener's CRLs: the intermediate's (2 s), not the
        // root's (7 days).
        let runtime = gateway.server.runtime
        let samples = try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
        let seconds = try XCTUnwrap(samples.value("gateway_crl_next_update_seconds", ["listener": "mtls"]))
        XCTAssertTrue(seconds <= 2.5 && seconds > -60, "\(seconds)")
        let before = try await status("via-intermediate")
        XCTAssertEqual(before, 200)
        try await Task.sleep(nanoseconds: 3_000_000_000)
        // Past nextUpdate: the cached verification is not reused, and the client is refused.
        let after = try await status("via-intermediate")
        XCTAssertNil(after)
        let logged = await rejection(.crlExpired)
        XCTAssertNotNil(logged)
    }

    func testACRLOfTheCAAboveATrustAnchorIsALoadError() throws {
        // Only the intermediate trusted: paths end there, so the root's CRL (which revokes another
        // intermediate) could never be checked.
        try pki.write("intermediate-only.pem", pki.intermediateCA.certificatePEM)
        let issues = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [intermediate-only.pem]
                  crl: [root.crl.pem]
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(issues, "listeners[0].tls.crl[0]: CRL in 'root.crl.pem' is issued by 'CN=Test Root CA,O=Test,C=US', which issued the client_ca certificate 'CN=Test Intermediate CA,O=Test,C=US' but is not in client_ca itself")
    }

    func testTheVerifierChecksAPathCRLsSignatureOncePerIssuer() throws {
        let revoked = try addRevokedClientOfTheIntermediate()
        let crl = try CertificateRevocationList(derEncoded: try CRLBuilder.make(issuer: pki.intermediateCA, revoked: [revoked.certificate.serialNumber]))
        let verifier = ClientCertificateVerifier(anchors: [pki.rootCA.certificate], crls: [], pathCRLs: [crl], maxDepth: 4)
        func der(_ client: String) throws -> [[UInt8]] {
            try pki.clients[client]!.map { issued in
                var serializer = DER.Serializer()
                try serializer.serialize(issued.certificate)
                return serializer.serializedBytes
            }
        }
        guard case .verified = verifier.verify(der: try der("via-intermediate")) else { return XCTFail("the intermediate's good client") }
        guard case .rejected(let rejection, _) = verifier.verify(der: try der("revoked-by-intermediate")) else { return XCTFail("revoked") }
        XCTAssertEqual(rejection.code, .revoked)
        // Without the path CRL the same client verifies: the CRL, and nothing else, refused it.
        let without = ClientCertificateVerifier(anchors: [pki.rootCA.certificate], crls: [], maxDepth: 4)
        guard case .verified = without.verify(der: try der("revoked-by-intermediate")) else { return XCTFail("without the CRL") }
    }
}
