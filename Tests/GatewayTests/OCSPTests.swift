import Foundation
import GatewayCore
import GatewayTooling
import X509
import XCTest

/// `tls.revocation.ocsp`: client certificates checked against a real OCSP responder (`openssl ocsp`), named in
/// their authorityInfoAccess or configured, with a delegated signer; answers cached until their nextUpdate.
final class OCSPTests: RevocationTestCase {
    private var responderPort = 0
    private var delegate: IssuedCertificate!
    private var responders: [OpenSSLResponder] = []

    override func setUp() async throws {
        try await super.setUp()
        responderPort = try unusedPort()
        let f = CertificateFactory.self
        // A delegated responder: issued by the CA for OCSP signing only.
        delegate = try f.makeLeaf(f.name(commonName: "Test OCSP Responder"), issuer: pki.rootCA, usages: [.ocspSigning])
        for name in ["ocsp-good", "ocsp-revoked", "ocsp-unknown"] {
            try pki.addClient(name, try f.makeLeaf(f.name(commonName: name), issuer: pki.rootCA, ocspURLs: ["http://127.0.0.1:\(responderPort)"]))
        }
        addTeardown { [weak self] in self?.responders.forEach { $0.stop() } }
    }

    /// Starts openssl's responder knowing ocsp-good (valid) and ocsp-revoked (revoked); ocsp-unknown is not in
    /// its index.
    @discardableResult
    private func startResponder(port: Int? = nil, signer: IssuedCertificate? = nil, requests: Int? = nil) async throws -> OpenSSLResponder {
        let responder = try OpenSSLResponder(
            directory: pki.directory, port: port ?? responderPort, ca: pki.rootCA, signer: signer ?? delegate,
            entries: [.valid(pki.clients["ocsp-good"]![0]), .revoked(pki.clients["ocsp-revoked"]![0])], requests: requests
        )
        responders.append(responder)
        try await responder.waitReady()
        return responder
    }

    func testGoodRevokedAndUnknownCertificatesFromTheResponderInTheirAuthorityInfoAccess() async throws {
        let responder = try await startResponder()
        try await start("{ ocsp: leaf }")
        let good = try await status("ocsp-good")
        XCTAssertEqual(good, 200, responder.log)
        let revoked = try await status("ocsp-revoked")
        XCTAssertNil(revoked)
        let revokedLog = await rejection(.revoked, "is revoked according to the OCSP responder \(responder.url)")
        XCTAssertNotNil(revokedLog, "\(gateway.logs.all.suffix(3).map(\.metadata))")
        let unknown = try await status("ocsp-unknown")
        XCTAssertNil(unknown)
        let unknownLog = await rejection(.revocationUnavailable, "(unknown_status)")
        XCTAssertNotNil(unknownLog)
        // Clients without an OCSP responder are refused too: their status cannot be learnt.
        let plain = try await status("valid")
        XCTAssertNil(plain)
        let noURL = await rejection(.revocationUnavailable, "(no_url): the certificate names no OCSP responder")
        XCTAssertNotNil(noURL)
        XCTAssertEqual(backend.requests.count, 1)

        let samples = try metrics()
        for result in ["good", "revoked", "unavailable"] {
            XCTAssertGreaterThanOrEqual(samples.value("gateway_revocation_checks_total", ["listener": "mtls", "source": "ocsp", "result": result]) ?? 0, 1, result)
        }
        XCTAssertNotNil(samples.value("gateway_revocation_next_update_seconds", ["source": "ocsp"]))
        XCTAssertEqual(samples.value("gateway_revocation_ocsp_answers"), 3, "good, revoked and unknown")
        XCTAssertLessThan(samples.value("gateway_revocation_ocsp_oldest_answer_age_seconds") ?? 999, 60)
    }

    func testAnswersAreCachedUntilTheirNextUpdate() async throws {
        // The responder answers one query and exits: every later handshake must be served from the cache.
        let responder = try await startResponder(requests: 1)
        try await start("{ ocsp: leaf }")
        for attempt in 0..<5 {
            let status = try await status("ocsp-good")
            XCTAssertEqual(status, 200, "handshake \(attempt): \(responder.log)")
        }
        for _ in 0..<50 where responder.isRunning { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertFalse(responder.isRunning, "the responder was asked once")
        XCTAssertEqual(try metrics().value("gateway_revocation_fetches_total", ["source": "ocsp", "result": "ok"]), 1)
    }

    func testTheResponderStoppedDeniesByDefaultAndAdmitsUnderAllow() async throws {
        try await start("{ ocsp: leaf, fetch_timeout: 1s }")
        let denied = try await status("ocsp-good")
        XCTAssertNil(denied)
        let logged = await rejection(.revocationUnavailable, "(connect_failed)")
        XCTAssertNotNil(logged, "\(gateway.logs.all.suffix(3).map(\.metadata))")
        let outcome = await gateway.reload(yaml: mtlsConfig(plugins: [], tls: ["revocation: { ocsp: leaf, fetch_timeout: 1s, unknown: allow }"]))
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        let admitted = try await status("ocsp-good")
        XCTAssertEqual(admitted, 200)
        // Revoked stays revoked under allow, once the responder can say so.
        try await startResponder()
        let revoked = try await status("ocsp-revoked")
        XCTAssertNil(revoked)
    }

    func testAResponderCertificateWithoutOCSPSigningIsNotBelieved() async throws {
        let f = CertificateFactory.self
        let impostor = try f.makeLeaf(f.name(commonName: "Not a responder"), issuer: pki.rootCA, usages: [.clientAuth])
        try await startResponder(signer: impostor)
        try await start("{ ocsp: leaf }")
        let refused = try await status("ocsp-good")
        XCTAssertNil(refused)
        let logged = await rejection(.revocationUnavailable, "does not allow OCSP signing")
        XCTAssertNotNil(logged, "\(gateway.logs.all.suffix(3).map(\.metadata))")
    }

    func testTheCAItselfMaySignAndAConfiguredResponderOverridesTheCertificates() async throws {
        // Another port than the certificates name: only ocsp_responder leads there.
        let port = try unusedPort()
        let responder = try await startResponder(port: port, signer: pki.rootCA)
        try await start("{ ocsp: leaf, ocsp_responder: \"\(responder.url)\" }")
        let good = try await status("ocsp-good")
        XCTAssertEqual(good, 200, responder.log)
        let plain = try await status("valid")
        XCTAssertNil(plain, "not in the responder's index: unknown")
        let revoked = try await status("ocsp-revoked")
        XCTAssertNil(revoked)
    }

    func testChainModeAsksAboutTheIntermediateToo() async throws {
        let f = CertificateFactory.self
        let intermediate = try f.makeCA(f.name(commonName: "OCSP Intermediate"), issuer: pki.rootCA, ocspURLs: ["http://127.0.0.1:\(responderPort)"])
        let intermediateResponderPort = try unusedPort()
        let leaf = try f.makeLeaf(f.name(commonName: "ocsp-chain"), issuer: intermediate, ocspURLs: ["http://127.0.0.1:\(intermediateResponderPort)"])
        try pki.addClient("ocsp-chain", leaf, chain: [intermediate])
        // The root's responder knows the intermediate as revoked; the intermediate's responder knows the leaf as good.
        let rootResponder = try OpenSSLResponder(directory: pki.directory, port: responderPort, ca: pki.rootCA, signer: pki.rootCA, entries: [.revoked(intermediate)])
        let intermediateResponder = try OpenSSLResponder(directory: pki.directory, port: intermediateResponderPort, ca: intermediate, signer: intermediate, entries: [.valid(leaf)])
        responders += [rootResponder, intermediateResponder]
        try await rootResponder.waitReady()
        try await intermediateResponder.waitReady()

        try await start("{ ocsp: leaf }")
        let leafOnly = try await status("ocsp-chain")
        XCTAssertEqual(leafOnly, 200, intermediateResponder.log)
        let outcome = await gateway.reload(yaml: mtlsConfig(plugins: [], tls: ["revocation: { ocsp: chain }"]))
        XCTAssertTrue(outcome.success)
        let chain = try await status("ocsp-chain")
        XCTAssertNil(chain)
        let logged = await rejection(.revoked, "issuer certificate 'CN=OCSP Intermediate,C=US' serial")
        XCTAssertNotNil(logged, "\(gateway.logs.all.suffix(3).map(\.metadata))")
    }

    /// Answers still needed are asked for again in the background before they run out (here every second),
    /// and a revocation the responder learns reaches a connection that is already open, at its next request.
    func testAnswersAreRefreshedWhileNeededAndARevocationReachesAnOpenConnection() async throws {
        let first = try await startResponder()
        try await start("{ ocsp: leaf, refresh_interval: 1s }")
        let client = try await TestClient.connect(port: gateway.port("mtls"), tls: tls("ocsp-good"))
        try await client.send("GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let ok = await client.readResponse()
        XCTAssertEqual(ok?.status, 200, first.log)
        for _ in 0..<60 where first.log.components(separatedBy: "Received request").count - 1 < 3 { try await Task.sleep(nanoseconds: 100_000_000) }
        XCTAssertGreaterThanOrEqual(first.log.components(separatedBy: "Received request").count - 1, 3, "asked again in the background: \(first.log)")

        // The responder now knows the certificate as revoked.
        first.stop()
        let revoking = try OpenSSLResponder(
            directory: pki.directory, port: responderPort, ca: pki.rootCA, signer: delegate, entries: [.revoked(pki.clients["ocsp-good"]![0])]
        )
        responders.append(revoking)
        try await revoking.waitReady()
        for _ in 0..<60 where !revoking.log.contains("Received request") { try await Task.sleep(nanoseconds: 100_000_000) }
        try await Task.sleep(nanoseconds: 300_000_000)
        try await client.send("GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let refused = await client.readResponse()
        XCTAssertEqual(refused?.status, 403, revoking.log)
        XCTAssertTrue(refused?.text.contains("certificate_revoked") ?? false, refused?.text ?? "")
        XCTAssertEqual(backend.requests.count, 1)
    }
}
