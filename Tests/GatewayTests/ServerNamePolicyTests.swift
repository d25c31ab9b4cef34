import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// Two client populations with different CAs on one port: each certificate entry carries its own client policy,
/// chosen by the server name before the CertificateRequest is sent; a request whose Host selects the other
/// policy is answered 421.
final class ServerNamePolicyTests: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        // localhost: clients of the test root (the listener's policy); api.test: clients of the other CA only,
        // which must also carry the SPIFFE ID of their trust domain.
        let f = CertificateFactory.self
        try pki.addClient("other-spiffe", try f.makeLeaf(f.name(commonName: "other-spiffe-client"), issuer: pki.otherCA, uris: ["spiffe://elsewhere/app"]))
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: shared
                address: "127.0.0.1:0"
                tls:
                  client_auth: required
                  client_ca: [ca.pem]
                  certificates:
                    - { cert: server.pem, key: server.key }
                    - { cert: server-api.pem, key: server-api.key, client_ca: [other-root.pem], client_allow: { uri_prefix: ["spiffe://elsewhere/"] } }
                    - { cert: server-wild.pem, key: server-wild.key, client_auth: none }
                routes: [ { backend: app } ]
            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
    }

    private func options(_ client: String?, serverName: String) -> TestClient.TLSOptions {
        var options = tls(client)
        options.serverName = serverName
        return options
    }

    private func get(_ client: String?, serverName: String, host: String) async throws -> TestClient.Response? {
        let connection = try await TestClient.connect(port: gateway.port("shared"), tls: options(client, serverName: serverName))
        defer { Task { await connection.close() } }
        try? await connection.send("GET /who HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        return await connection.readResponse()
    }

    private func refusedWith(_ reason: HandshakeRejection.Code, sni: String) async -> Bool {
        await gateway.logs.waitFor {
            $0.message == "TLS handshake rejected" && $0.metadata["reason"] == reason.name && $0.metadata["sni"] == sni
        } != nil
    }

    func testEachServerNameAdmitsItsOwnClientsOnly() async throws {
        let rootClient = try await get("valid", serverName: "localhost", host: "localhost")
        XCTAssertEqual(rootClient?.status, 200)
        let otherClient = try await get("other-spiffe", serverName: "api.test", host: "api.test")
        XCTAssertEqual(otherClient?.status, 200)

        let crossed = try await get("other-spiffe", serverName: "localhost", host: "localhost")
        XCTAssertNil(crossed)
        let unknownAtLocalhost = await refusedWith(.unknownCA, sni: "localhost")
        XCTAssertTrue(unknownAtLocalhost)
        let crossedBack = try await get("valid", serverName: "api.test", host: "api.test")
        XCTAssertNil(crossedBack)
        let unknownAtAPI = await refusedWith(.unknownCA, sni: "api.test")
        XCTAssertTrue(unknownAtAPI)
        // The other CA's client without the SPIFFE ID: the api.test policy's own allow-list.
        let notAllowed = try await get("other-ca", serverName: "api.test", host: "api.test")
        XCTAssertNil(notAllowed)
        let sanMismatch = await refusedWith(.sanMismatch, sni: "api.test")
        XCTAssertTrue(sanMismatch)
        // *.wild.test asks for no certificate at all.
        let anonymous = try await get(nil, serverName: "x.wild.test", host: "x.wild.test")
        XCTAssertEqual(anonymous?.status, 200)
        XCTAssertEqual(backend.requests.count, 3)
    }

    func testAHostOfAnotherPolicyIsMisdirected() async throws {
        // Verified for localhost (root CA), asking for api.test (other CA only): 421, nothing forwarded.
        let misdirected = try await get("valid", serverName: "localhost", host: "api.test:443")
        XCTAssertEqual(misdirected?.status, 421)
        XCTAssertTrue(misdirected?.text.contains("host 'api.test' is not served on a connection for server name 'localhost'") ?? false)
        // Anonymous on *.wild.test, asking for localhost: 421 too.
        let anonymous = try await get(nil, serverName: "x.wild.test", host: "localhost")
        XCTAssertEqual(anonymous?.status, 421)
        // Routes match `*.wild.test` at any depth, so a deeper name belongs to that certificate's policy too
        // (TLS would not select the certificate for it, the router would route it there).
        let deep = try await get("valid", serverName: "localhost", host: "a.b.wild.test")
        XCTAssertEqual(deep?.status, 421)
        let deepSame = try await get(nil, serverName: "x.wild.test", host: "a.b.wild.test")
        XCTAssertEqual(deepSame?.status, 200)
        // A Host of the same policy is fine (the default certificate's policy for an unknown name).
        let same = try await get("valid", serverName: "localhost", host: "unknown.example")
        XCTAssertEqual(same?.status, 200)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/who", "/who"], "only the two requests of their own policy")
    }

    /// The same policies, an intermediate's CRL and the 421 in the real `gateway run`, as nobody (files handed
    /// over to it as a deployment would, keys 0600).
    func testThePoliciesHoldInTheRealProcessRunAsNobody() async throws {
        let f = CertificateFactory.self
        let revoked = try f.makeLeaf(f.name(commonName: "revoked-by-intermediate"), issuer: pki.intermediateCA)
        try pki.addClient("revoked-by-intermediate", revoked, chain: [pki.intermediateCA])
        try pki.write("intermediate.crl.pem", CRLBuilder.pem(try CRLBuilder.make(issuer: pki.intermediateCA, revoked: [revoked.certificate.serialNumber])))
        let port = try unusedPort(), adminPort = try unusedPort()
        let running = try await runGateway("""
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: shared
                address: "127.0.0.1:\(port)"
                tls:
                  client_auth: required
                  client_ca: [ca.pem]
                  crl: [root.crl.pem, intermediate.crl.pem]
                  certificates:
                    - { cert: server.pem, key: server.key }
                    - { cert: server-api.pem, key: server-api.key, client_ca: [other-root.pem], client_allow: { uri_prefix: ["spiffe://elsewhere/"] } }
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, name: "policies", adminPort: adminPort)
        defer { _ = running.terminate() }
        func status(_ client: String, _ serverName: String, _ host: String) async throws -> Int? {
            var options = tls(client)
            options.serverName = serverName
            let connection = try await TestClient.connect(port: port, tls: options)
            defer { Task { await connection.close() } }
            try? await connection.send("GET /who HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            return await connection.readResponse()?.status
        }
        let root = try await status("valid", "localhost", "localhost")
        XCTAssertEqual(root, 200)
        let intermediate = try await status("via-intermediate", "localhost", "localhost")
        XCTAssertEqual(intermediate, 200)
        let revokedByIntermediate = try await status("revoked-by-intermediate", "localhost", "localhost")
        XCTAssertNil(revokedByIntermediate)
        let other = try await status("other-spiffe", "api.test", "api.test")
        XCTAssertEqual(other, 200)
        let notAllowed = try await status("other-ca", "api.test", "api.test")
        XCTAssertNil(notAllowed)
        let misdirected = try await status("valid", "localhost", "api.test")
        XCTAssertEqual(misdirected, 421)
        for reason in ["reason=certificate_revoked", "reason=san_mismatch"] {
            let logged = await running.waitForLog(reason)
            XCTAssertTrue(logged, "\(reason) in:\n\(running.log)")
        }
        XCTAssertEqual(backend.requests.count, 3)
    }

    func testACertificatesPolicyIsCheckedLikeTheListeners() throws {
        let issues = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: server.pem, key: server.key }
                    - { cert: server-api.pem, key: server-api.key, client_auth: required, verify_depth: 40, client_ca: [missing.pem] }
                    - { cert: server-wild.pem, key: server-wild.key, client_allow: { dns: [a.test] } }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        for expected in [
            "listeners[0].tls.certificates[1].verify_depth: must be between 1 and 16, got 40",
            "listeners[0].tls.certificates[1].client_ca[0]:",
            "listeners[0].tls.certificates[2].client_allow: set, but client_auth is none",
        ] {
            assertProblem(issues, expected)
        }
    }
}
