import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// TLS session resumption skips BoringSSL's verification callback: the gateway verifies the session's client
/// certificate itself, so a resumed connection carries the same verified identity as a full handshake, and a
/// client cannot drop an identity header a plugin set by naming it in `Connection`.
final class SessionResumptionTests: GatewayTestCase {

    override func setUp() async throws {
        try await super.setUp()
        let tagger = try PluginFixtures.build("tagger")
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins: [ { library: \(tagger), config: { tag: id } } ]
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
    }

    /// One request through `openssl s_client`; returns its output (handshake summary and response).
    private func sClient(_ version: String, certificate: Bool, session: String, save: Bool, path: String) throws -> String {
        var command = "printf 'GET \(path) HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | "
            + "openssl s_client -connect 127.0.0.1:\(gateway.port("mtls")) -servername localhost \(version) -CAfile \(pki.path("ca.pem")) -ign_eof "
        if certificate { command += "-cert \(pki.path("valid.pem")) -key \(pki.path("valid.key")) " }
        command += save ? "-sess_out \(session)" : "-sess_in \(session)"
        return try GatewayProcess.runCommand("/bin/sh", ["-c", command + " 2>&1"]).stdout
    }

    func testResumedSessionsCarryTheVerifiedIdentity() throws {
        for version in ["-tls1_2", "-tls1_3"] {
            let session = pki.path("session\(version).pem")
            let full = try sClient(version, certificate: true, session: session, save: true, path: "/full\(version)")
            XCTAssertTrue(full.contains("HTTP/1.1 200"), full)
            XCTAssertTrue(FileManager.default.fileExists(atPath: session), "s_client saved the session")
            // The resumed connection presents no certificate: the session's is verified again.
            let resumed = try sClient(version, certificate: false, session: session, save: false, path: "/resumed\(version)")
            XCTAssertTrue(resumed.contains("Reused, TLSv1."), "the session was resumed (\(version)):\n\(resumed)")
            XCTAssertTrue(resumed.contains("HTTP/1.1 200"), resumed)
            let received = backend.requests.first { $0.head.uri == "/resumed\(version)" }
            XCTAssertEqual(received?.head.headers.first(name: "x-id-subject"), "CN=valid-client,OU=ops,O=Test,C=US",
                           "a resumed \(version) session is forwarded with the verified identity")
        }
    }

    func testConnectionHeaderCannotRemoveAPluginHeader() async throws {
        var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
        options.certificateChain = pki.path("valid.pem")
        options.key = pki.path("valid.key")
        let client = try await TestClient.connect(port: gateway.port("mtls"), tls: options)
        try await client.send("GET /hop HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, x-id-subject, x-drop\r\nX-Drop: 1\r\n\r\n")
        let response = await client.readResponse()
        await client.close()
        XCTAssertEqual(response?.status, 200)
        let received = try XCTUnwrap(backend.requests.first { $0.head.uri == "/hop" })
        XCTAssertEqual(received.head.headers.first(name: "x-id-subject"), "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertFalse(received.head.headers.contains(name: "x-drop"), "headers the client named in Connection are still removed")
        XCTAssertFalse(received.head.headers.contains(name: "connection"))
    }
}
