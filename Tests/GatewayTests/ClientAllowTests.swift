import Foundation
import GatewayCore
import GatewayTooling
import SwiftASN1
import XCTest

/// `tls.client_allow`: pins and subjectAltName matchers a verified client must also satisfy, refused in the
/// handshake with their own reasons. The pins are computed with the openssl command, not with the gateway's code.
final class ClientAllowTests: GatewayTestCase {
    /// `openssl x509 -fingerprint -sha256` of a client's leaf: colon-separated hex.
    private func certificatePin(_ client: String) throws -> String {
        let result = try GatewayProcess.runCommand("/usr/bin/openssl", ["x509", "-in", pki.path("\(client).pem"), "-noout", "-fingerprint", "-sha256"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return String(result.stdout.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The HPKP pin of a client's leaf key: base64 of the SHA-256 of its DER SubjectPublicKeyInfo.
    private func spkiPin(_ client: String) throws -> String {
        let script = "openssl x509 -in '\(pki.path("\(client).pem"))' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
        let result = try GatewayProcess.runCommand("/bin/sh", ["-c", script])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func listener(_ name: String, _ allow: String) -> String {
        """
          - name: \(name)
            address: "127.0.0.1:0"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: required
              client_ca: [ca.pem]
              client_allow: \(allow)
            routes: [ { backend: app } ]
        """
    }

    private func startGateway() async throws {
        let valid = try certificatePin("valid")
        let intermediateKey = try spkiPin("via-intermediate")
        gateway = try await GatewayHarness(yaml: """
            listeners:
            \(listener("cert-pin", "{ cert_sha256: [\"\(valid)\"] }"))
            \(listener("spki-pin", "{ spki_sha256: [\"\(intermediateKey)\"] }"))
            \(listener("spiffe", "{ uri_prefix: [\"spiffe://test/ns/ops/\"] }"))
            \(listener("names", "{ dns: [CLIENT.test], email: [nobody@test] }"))
            \(listener("both", "{ spki_sha256: [\"\(intermediateKey)\"], uri_prefix: [\"spiffe://test/\"] }"))
            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
    }

    private func status(_ listener: String, _ client: String) async throws -> Int? {
        try await TestClient.get(port: gateway.port(listener), tls: tls(client), path: "/who")?.status
    }

    private func assertRefused(_ listener: String, _ client: String, _ reason: HandshakeRejection.Code, detail: String,
                               file: StaticString = #filePath, line: UInt = #line) async throws {
        let got = try await status(listener, client)
        XCTAssertNil(got, "\(listener)/\(client): the handshake must be refused", file: file, line: line)
        let logged = await gateway.logs.waitFor {
            $0.message == "TLS handshake rejected" && $0.metadata["listener"] == listener && $0.metadata["reason"] == reason.name
        }
        XCTAssertNotNil(logged, "\(listener)/\(client): no rejection with reason \(reason)", file: file, line: line)
        XCTAssertTrue(logged?.metadata["detail"]?.contains(detail) ?? false, "detail: \(logged?.metadata["detail"] ?? "-")", file: file, line: line)
    }

    func testPinsAndSubjectAltNameMatchersAdmitOnlyTheirClients() async throws {
        try await startGateway()
        // Certificate pin (openssl's colon format): only that certificate.
        let pinned = try await status("cert-pin", "valid")
        XCTAssertEqual(pinned, 200)
        try await assertRefused("cert-pin", "via-intermediate", .pinMismatch, detail: "matches no pin in client_allow")
        // Key pin (HPKP base64): the client whose key it is, with its chain.
        let keyPinned = try await status("spki-pin", "via-intermediate")
        XCTAssertEqual(keyPinned, 200)
        try await assertRefused("spki-pin", "valid", .pinMismatch, detail: "'CN=valid-client")
        // A SPIFFE trust domain path: the valid client's URI SAN is spiffe://test/ns/ops/sa/valid.
        let spiffe = try await status("spiffe", "valid")
        XCTAssertEqual(spiffe, 200)
        try await assertRefused("spiffe", "via-intermediate", .sanMismatch, detail: "no DNS, URI or email subjectAltName")
        // Exact DNS name, compared without case; an email that the client does not have.
        let named = try await status("names", "valid")
        XCTAssertEqual(named, 200)
        // Both kinds: the key pin matches, the SAN does not (the intermediate's client has none).
        try await assertRefused("both", "via-intermediate", .sanMismatch, detail: "matches no subjectAltName")
        try await assertRefused("both", "valid", .pinMismatch, detail: "matches no pin")
        XCTAssertEqual(backend.requests.count, 4, "refused clients reach nothing")
    }

    func testRefusedClientsAreCountedByTheirReason() async throws {
        try await startGateway()
        _ = try await status("cert-pin", "via-intermediate")
        _ = try await status("spiffe", "via-intermediate")
        let runtime = gateway.server.runtime
        // The client sees the alert before the gateway's handshake handler has counted the refusal: wait for it.
        var samples = try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
        for _ in 0..<50 where (samples.value("gateway_tls_handshakes_total", ["listener": "spiffe", "result": "failure", "reason": "san_mismatch"]) ?? 0) < 1 {
            try await Task.sleep(nanoseconds: 100_000_000)
            samples = try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
        }
        XCTAssertEqual(samples.value("gateway_tls_handshakes_total", ["listener": "cert-pin", "result": "failure", "reason": "pin_mismatch"]), 1)
        XCTAssertEqual(samples.value("gateway_tls_handshakes_total", ["listener": "spiffe", "result": "failure", "reason": "san_mismatch"]), 1)
        XCTAssertEqual(samples.value("gateway_tls_handshakes_total", ["listener": "spiffe", "result": "failure", "reason": "pin_mismatch"]), 0)
    }

    func testBadAllowListsAreNamedByKeyPath() throws {
        let issues = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  client_allow: { cert_sha256: [abc], spki_sha256: ["not base64!"], dns: ["*.test"], uri_prefix: ["spiffe"], email: [nobody] }
                routes: [ { backend: b } ]
              - name: m
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_allow: { dns: [a.test] }
                routes: [ { backend: b } ]
              - name: n
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: optional
                  client_ca: [ca.pem]
                  client_allow: {}
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        for expected in [
            "listeners[0].tls.client_allow.cert_sha256[0]: 'abc' is not a SHA-256 digest",
            "listeners[0].tls.client_allow.spki_sha256[0]: 'not base64!' is not a SHA-256 digest",
            "listeners[0].tls.client_allow.dns[0]: '*.test' is not a DNS name to compare exactly",
            "listeners[0].tls.client_allow.uri_prefix[0]: 'spiffe' is not a URI prefix with a scheme",
            "listeners[0].tls.client_allow.email[0]: 'nobody' is not an email address",
            "listeners[1].tls.client_allow: set, but client_auth is none",
            "listeners[2].tls.client_allow: empty",
        ] {
            assertProblem(issues, expected)
        }
    }

    func testTheSubjectPublicKeyInfoIsCutFromTheCertificateAsOpenSSLSeesIt() throws {
        let result = try GatewayProcess.runCommand("/bin/sh", ["-c",
            "openssl x509 -in '\(pki.path("valid.pem"))' -pubkey -noout | openssl pkey -pubin -outform der | od -An -v -tx1 | tr -d ' \\n'"])
        var serializer = DER.Serializer()
        try serializer.serialize(try XCTUnwrap(pki.clients["valid"]?.first?.certificate))
        let der = serializer.serializedBytes
        let spki = try XCTUnwrap(ClientAllowList.subjectPublicKeyInfo(of: der))
        XCTAssertEqual(spki.map { String(format: "%02x", $0) }.joined(), result.stdout)
        XCTAssertNil(ClientAllowList.subjectPublicKeyInfo(of: [0x30, 0x03, 0x02, 0x01, 0x00]), "not a certificate")
        XCTAssertEqual(ClientAllowList.decodeDigest(String(repeating: "aB", count: 32))?.count, 32)
        XCTAssertNil(ClientAllowList.decodeDigest(String(repeating: "a", count: 63)))
        XCTAssertNil(ClientAllowList.decodeDigest(String(repeating: "a", count: 62) + "\u{FF11}\u{FF12}"), "fullwidth digits are not hex here")
        XCTAssertNil(ClientAllowList.decodeDigest(String(repeating: "g", count: 64)))
        XCTAssertEqual(ClientAllowList.decodeDigest(String(repeating: "0F", count: 32)), Array(repeating: 0x0F, count: 32))
        XCTAssertNil(GatewayServer.IdentityMatch.normalise("\u{FF11}\u{FF12}"))
        XCTAssertEqual(GatewayServer.IdentityMatch.normalise("0A:bC"), "0abc")
    }
}
