import GatewayCore
import GatewayTooling
import NIOSSL
import XCTest

/// Mutual TLS: every client-certificate case, under `required` and `optional`, against the real gateway.
final class ClientAuthTests: GatewayTestCase {

    override func setUp() async throws {
        try await super.setUp()
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: required
                address: "127.0.0.1:0"
                tls: &tls
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  crl: [root.crl.pem]
                  verify_depth: 2
                routes: [ { backend: app } ]
              - name: optional
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: optional
                  client_ca: [ca.pem]
                  crl: [root.crl.der]
                  verify_depth: 2
                routes: [ { backend: app } ]
            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
    }

    /// Sends one request; returns the status, or nil when the handshake was refused.
    private func attempt(_ listener: String, client: String?) async throws -> Int? {
        let response = try await TestClient.get(port: gateway.port(listener), tls: tls(client), path: "/who")
        return response?.status
    }

    private func assertRejected(_ listener: String, client: String?, reason: HandshakeRejection.Code, file: StaticString = #filePath, line: UInt = #line) async throws {
        let before = backend.requests.count
        let status = try await attempt(listener, client: client)
        XCTAssertNil(status, "\(listener)/\(client ?? "no cert"): expected the handshake to be refused", file: file, line: line)
        let logged = await gateway.logs.waitFor {
            $0.message == "TLS handshake rejected" && $0.metadata["listener"] == listener && $0.metadata["reason"] == reason.name
        }
        XCTAssertNotNil(logged, "\(listener)/\(client ?? "no cert"): no rejection logged with reason \(reason); logs: \(gateway.logs.all.map { "\($0.message) \($0.metadata)" })", file: file, line: line)
        XCTAssertEqual(backend.requests.count, before, "nothing may reach the backend", file: file, line: line)
    }

    func testValidClientIsAccepted() async throws {
        for listener in ["required", "optional"] {
            let status = try await attempt(listener, client: "valid")
            XCTAssertEqual(status, 200, listener)
        }
        XCTAssertEqual(backend.requests.count, 2)
    }

    func testClientViaIntermediateIsAccepted() async throws {
        for listener in ["required", "optional"] {
            let status = try await attempt(listener, client: "via-intermediate")
            XCTAssertEqual(status, 200, listener)
        }
    }

    func testInvalidClientsAreRejectedWithPreciseReasons() async throws {
        let cases: [(String, HandshakeRejection.Code)] = [
            ("expired", .expired),
            ("not-yet-valid", .notYetValid),
            ("other-ca", .unknownCA),
            ("self-signed", .selfSigned),
            ("revoked", .revoked),
            ("revoked-intermediate", .revoked),
            ("server-auth-only", .usage),
            ("too-deep", .chainTooLong),
        ]
        for listener in ["required", "optional"] {
            for (client, reason) in cases {
                try await assertRejected(listener, client: client, reason: reason)
            }
        }
    }

    func testRejectionLogNamesThePresentedCertificate() async throws {
        try await assertRejected("required", client: "revoked", reason: .revoked)
        let record = await gateway.logs.waitFor { $0.message == "TLS handshake rejected" }
        XCTAssertEqual(record?.metadata["subject"], "CN=revoked-client,C=US")
        XCTAssertEqual(record?.metadata["issuer"], "CN=Test Root CA,O=Test,C=US")
        XCTAssertNotNil(record?.metadata["serial"])
        // One format for the client in every log line: address and port as operators write them.
        let client = try XCTUnwrap(record?.metadata["client"])
        XCTAssertNotNil(client.wholeMatch(of: /127\.0\.0\.1:\d+/), client)
    }

    func testMissingCertificate() async throws {
        try await assertRejected("required", client: nil, reason: .noCertificate)
        // optional: let through as "no certificate".
        let status = try await attempt("optional", client: nil)
        XCTAssertEqual(status, 200)
    }

    func testIdentityIsComputedOnceAndCached() async throws {
        let verifier = try XCTUnwrap(GatewayRuntime.load(configPath: gateway.configPath).listeners.first?.tls?.verifier)
        let der = try pki.clients["valid"]!.map { try $0.certificate.serializeAsPEM().derBytes }
        guard case .verified(let first) = verifier.verify(der: der), case .verified(let second) = verifier.verify(der: der) else {
            return XCTFail("valid chain must verify")
        }
        XCTAssertTrue(first === second, "a returning chain must reuse the cached identity")
        XCTAssertEqual(first.subject, "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertEqual(first.uris, ["spiffe://test/ns/ops/sa/valid"])
        XCTAssertEqual(first.dnsNames, ["client.test"])
        XCTAssertEqual(first.emails, ["valid@test"])
        XCTAssertEqual(first.sha256Fingerprint.count, 64)
        XCTAssertEqual(first.sha1Fingerprint.count, 40)
        XCTAssertTrue(first.leafPEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
        // The cache never outlives validity: verifying "a year later" fails even on a hit.
        if case .verified = verifier.verify(der: der, now: Date().addingTimeInterval(365 * 86400)) {
            XCTFail("an expired certificate must not be served from the cache")
        }
    }
}
