import Foundation
import GatewayCore
import GatewayTooling
import NIOSSL
import XCTest

/// The bundled ClientCertHeaders plugin, loaded with dlopen into the real gateway.
final class ClientCertHeadersTests: GatewayTestCase {

    static var library: String { Bundle.main.bundleURL.appendingPathComponent("libClientCertHeaders.so").path }

    override func setUp() async throws {
        try await super.setUp()
        func listener(_ name: String, auth: String, config: String) -> String {
            """
              - name: \(name)
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: \(auth)
                  client_ca: ca.pem
                  verify_depth: 3
                plugins: [ { library: \(Self.library), config: \(config) } ]
                routes: [ { backend: app } ]
            """
        }
        gateway = try await GatewayHarness(yaml: """
            listeners:
            \(listener("elb", auth: "required", config: "{ fields: { sans: true, spiffe_id: true, tls_protocol: true, sni: true } }"))
            \(listener("optional", auth: "optional", config: "{}"))
            \(listener("aws", auth: "required", config: "{ dialect: aws }"))
            \(listener("xfcc", auth: "required", config: "{ dialect: xfcc }"))
            \(listener("rfc", auth: "required", config: "{ dialect: rfc9440, fields: { client_cert_chain: x-client-chain } }"))
            \(listener("small", auth: "required", config: "{ dialect: rfc9440, max_value_bytes: 300 }"))
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
    }

    private func send(_ listener: String, client: String?, headers: [String] = []) async throws -> TestBackend.Received? {
        var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
        if let client {
            options.certificateChain = pki.path("\(client).pem")
            options.key = pki.path("\(client).key")
        }
        let before = backend.requests.count
        let response = try await TestClient.get(port: gateway.port(listener), tls: options, path: "/id", headers: headers)
        XCTAssertEqual(response?.status, 200, listener)
        return backend.requests.count > before ? backend.requests.last : nil
    }

    private func identity(_ client: String) throws -> ClientIdentity {
        let chain = pki.clients[client]!
        return ClientIdentity(presented: chain.map(\.certificate), der: try chain.map { try $0.certificate.serializeAsPEM().derBytes })
    }

    func testASANCannotForgeAnotherListEntry() async throws {
        // Before: SANs were joined with ", " as they were, so this one URI SAN read as two entries, the second
        // an identity the CA never issued, to a backend that splits the header.
        let f = CertificateFactory.self
        let forger = try f.makeLeaf(f.name(commonName: "forger"), issuer: pki.rootCA, dnsNames: ["a.test"],
                                    uris: ["spiffe://test/ok, URI:spiffe://test/admin", "spiffe://test/100%"])
        try pki.write("forger.pem", forger.certificatePEM)
        try pki.write("forger.key", forger.privateKeyPEM)
        let sent = try await send("elb", client: "forger")
        let received = try XCTUnwrap(sent)
        let sans = try XCTUnwrap(received.head.headers.first(name: "x-forwarded-clientcert-sans"))
        XCTAssertEqual(sans, "DNS:a.test, URI:spiffe://test/ok%2C%20URI:spiffe://test/admin, URI:spiffe://test/100%25")
        let entries = sans.components(separatedBy: ", ")
        XCTAssertEqual(entries.count, 3)
        XCTAssertEqual(entries[1].dropFirst(4).removingPercentEncoding, "spiffe://test/ok, URI:spiffe://test/admin", "percent-decoding gives the SAN back")
    }

    /// A certificate whose raw URI SAN has CR LF (a CA signed it): before header sets the plugin's whole batch was
    /// refused (500 under `on_error: deny`; under `continue` nothing was added). Now that one value is left out,
    /// the others are added, and the client's spellings of every owned name are removed all the same.
    func testAValueWithCRLFIsLeftOutAndForgedHeadersStillGo() async throws {
        let f = CertificateFactory.self
        let sneaky = try f.makeLeaf(f.name(commonName: "sneaky"), issuer: pki.rootCA, uris: ["spiffe://test/a\r\nx-forwarded-clientcert-subjectdn: CN=admin"])
        try pki.write("sneaky.pem", sneaky.certificatePEM)
        try pki.write("sneaky.key", sneaky.privateKeyPEM)
        let forged = ["X-Forwarded-Clientcert-Subjectdn: CN=forged", "x_forwarded_clientcert_spiffe_id: spiffe://forged", "X_Forwarded_Clientcert: forged"]
        for _ in 0..<2 {
            let sent = try await send("elb", client: "sneaky", headers: forged)
            let h = try XCTUnwrap(sent).head.headers
            XCTAssertEqual(h["x-forwarded-clientcert-subjectdn"], ["CN=sneaky,C=US"], "the certificate's subject, once; the client's gone")
            XCTAssertFalse(h.contains(name: "x-forwarded-clientcert-spiffe-id"), "the value with CR LF is left out")
            XCTAssertFalse(h.contains(name: "x_forwarded_clientcert_spiffe_id"))
            XCTAssertFalse(h.contains(name: "x_forwarded_clientcert"))
            XCTAssertEqual(h["x-forwarded-clientcert"].count, 1, "the escaped PEM, added")
            XCTAssertEqual(h.first(name: "x-forwarded-clientcert-clientverify"), "SUCCESS")
        }
        let warned = await gateway.logs.waitFor { $0.message.contains("x-forwarded-clientcert-spiffe-id omitted: its value has a NUL, CR or LF") }
        XCTAssertNotNil(warned)
    }

    /// The connection's own values are the connection's: two connections with one certificate and different TLS
    /// versions and SNI each get theirs (the identity's set is shared, the connection's sets by their values).
    func testEachConnectionGetsItsOwnTLSValues() async throws {
        func values(maximumVersion: TLSVersion?, serverName: String?) async throws -> (String?, String?, String?) {
            var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
            options.certificateChain = pki.path("valid.pem")
            options.key = pki.path("valid.key")
            options.maximumVersion = maximumVersion
            options.serverName = serverName
            let before = backend.requests.count
            let response = try await TestClient.get(port: gateway.port("elb"), tls: options, path: "/id")
            XCTAssertEqual(response?.status, 200)
            XCTAssertEqual(backend.requests.count, before + 1)
            let h = try XCTUnwrap(backend.requests.last).head.headers
            return (h.first(name: "x-forwarded-clientcert-tls-protocol"), h.first(name: "x-forwarded-clientcert-sni"), h.first(name: "x-forwarded-clientcert-subjectdn"))
        }
        for _ in 0..<2 {
            let a = try await values(maximumVersion: nil, serverName: "localhost")
            let b = try await values(maximumVersion: .tlsv12, serverName: nil)
            XCTAssertEqual(a.0, "TLSv1.3")
            XCTAssertEqual(a.1, "localhost")
            XCTAssertEqual(b.0, "TLSv1.2")
            XCTAssertNil(b.1, "no SNI: no header")
            XCTAssertEqual(a.2, "CN=valid-client,OU=ops,O=Test,C=US")
            XCTAssertEqual(b.2, a.2)
        }
    }

    func testELBDialectValues() async throws {
        let sent = try await send("elb", client: "valid")
        let received = try XCTUnwrap(sent)
        let h = received.head.headers
        let id = try identity("valid")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-subjectdn"), "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-issuerdn"), "CN=Test Root CA,O=Test,C=US")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-fingerprint"), id.sha1Fingerprint)
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-clientverify"), "SUCCESS")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-serialnumber"), id.serialHex)
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-end"), id.notAfterText)
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert")?.removingPercentEncoding, id.leafPEM)
        XCTAssertFalse(h.first(name: "x-forwarded-clientcert")?.contains("\n") ?? true)
        XCTAssertTrue(h.first(name: "x-forwarded-clientcert-ciphers")?.contains("TLS_AES_128_GCM_SHA256") ?? false)
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-sans"), "DNS:client.test, URI:spiffe://test/ns/ops/sa/valid, email:valid@test")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-spiffe-id"), "spiffe://test/ns/ops/sa/valid")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-tls-protocol"), "TLSv1.3")
        XCTAssertEqual(h.first(name: "x-forwarded-clientcert-sni"), "localhost")
        XCTAssertNil(h.first(name: "x-forwarded-clientcert-start"), "extras are off unless enabled")
    }

    func testClientCannotSpoofOwnedHeaders() async throws {
        let names = ["subjectdn", "issuerdn", "fingerprint", "clientverify", "serialnumber", "ciphers", "end", "start", "sans",
                     "spiffe-id", "chain", "tls-protocol", "tls-cipher", "sni", "alpn", "ja4", "ja3"].map { "x-forwarded-clientcert-\($0)" } + ["x-forwarded-clientcert"]
        var forged: [String] = []
        for name in names {
            forged.append("\(name): CN=forged")
            forged.append("\(name.uppercased()): CN=FORGED")
            forged.append("\(name.replacingOccurrences(of: "-", with: "_")): CN=forged_underscore")
            forged.append("\(name): CN=forged-again")
        }
        for (listener, client) in [("elb", "valid"), ("optional", "valid"), ("optional", nil)] as [(String, String?)] {
            let sent = try await send(listener, client: client, headers: forged)
            let received = try XCTUnwrap(sent)
            for (name, value) in received.head.headers {
                XCTAssertFalse(value.lowercased().contains("forged"), "\(listener)/\(client ?? "none"): \(name): \(value) reached the backend")
            }
            let verify = received.head.headers["x-forwarded-clientcert-clientverify"]
            XCTAssertEqual(verify, [client == nil ? "NONE" : "SUCCESS"])
            if client == nil {
                XCTAssertNil(received.head.headers.first(name: "x-forwarded-clientcert-subjectdn"))
                XCTAssertNil(received.head.headers.first(name: "x-forwarded-clientcert"))
            }
        }
    }

    /// The header list is made once per connection and reused for its requests: keep-alive connections of
    /// different clients (and one without a certificate), their requests interleaved, each get their own
    /// identity on every request, and a forged value is stripped on every request, not only the first.
    func testInterleavedKeepAliveConnectionsKeepTheirOwnIdentity() async throws {
        func connect(_ client: String?) async throws -> TestClient {
            var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
            if let client {
                options.certificateChain = pki.path("\(client).pem")
                options.key = pki.path("\(client).key")
            }
            return try await TestClient.connect(port: gateway.port("optional"), tls: options)
        }
        let expected: [(client: String?, subject: String?)] = [
            ("valid", "CN=valid-client,OU=ops,O=Test,C=US"), ("via-intermediate", "CN=intermediate-client,C=US"), (nil, nil),
        ]
        var connections: [TestClient] = []
        for (client, _) in expected { connections.append(try await connect(client)) }
        for round in 0..<4 {
            for (index, connection) in connections.enumerated() {
                let before = backend.requests.count
                let forged = round % 2 == 1 ? "X-Forwarded-Clientcert-Subjectdn: CN=forged\r\n" : ""
                try await connection.send("GET /id HTTP/1.1\r\nHost: localhost\r\n\(forged)\r\n")
                let response = await connection.readResponse()
                XCTAssertEqual(response?.status, 200, "round \(round), connection \(index)")
                XCTAssertEqual(backend.requests.count, before + 1)
                let headers = try XCTUnwrap(backend.requests.last).head.headers
                XCTAssertEqual(headers["x-forwarded-clientcert-subjectdn"], expected[index].subject.map { [$0] } ?? [], "round \(round), connection \(index)")
                XCTAssertEqual(headers["x-forwarded-clientcert-clientverify"], [expected[index].client == nil ? "NONE" : "SUCCESS"])
                XCTAssertEqual(headers["x-forwarded-clientcert-ciphers"].count, 1)
            }
        }
        for connection in connections { await connection.close() }
    }

    func testAWSDialect() async throws {
        let sent = try await send("aws", client: "valid")
        let h = try XCTUnwrap(sent).head.headers
        let id = try identity("valid")
        XCTAssertEqual(h.first(name: "x-amzn-mtls-clientcert-serial-number"), id.serialHex)
        XCTAssertEqual(h.first(name: "x-amzn-mtls-clientcert-subject"), id.subject)
        XCTAssertEqual(h.first(name: "x-amzn-mtls-clientcert-issuer"), id.issuer)
        let validity = try XCTUnwrap(h.first(name: "x-amzn-mtls-clientcert-validity"))
        XCTAssertNotNil(validity.range(of: #"^NotBefore=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;NotAfter=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"#, options: .regularExpression), validity)
        XCTAssertEqual(h.first(name: "x-amzn-mtls-clientcert-leaf")?.removingPercentEncoding, id.leafPEM)
    }

    func testXFCCDialect() async throws {
        let sent = try await send("xfcc", client: "valid")
        let h = try XCTUnwrap(sent).head.headers
        let id = try identity("valid")
        let xfcc = try XCTUnwrap(h.first(name: "x-forwarded-client-cert"))
        let parts = xfcc.components(separatedBy: ";")
        XCTAssertEqual(parts.first, "Hash=\(id.sha256Fingerprint)")
        XCTAssertTrue(parts.contains("Subject=\"CN=valid-client,OU=ops,O=Test,C=US\""), xfcc)
        XCTAssertTrue(parts.contains("URI=spiffe://test/ns/ops/sa/valid"), xfcc)
        XCTAssertTrue(parts.contains("DNS=client.test"), xfcc)
        let cert = try XCTUnwrap(parts.first { $0.hasPrefix("Cert=\"") })
        XCTAssertEqual(String(cert.dropFirst(6).dropLast()).removingPercentEncoding, id.leafPEM)
    }

    func testRFC9440DialectAndRename() async throws {
        let sent = try await send("rfc", client: "via-intermediate")
        let h = try XCTUnwrap(sent).head.headers
        let chain = try pki.clients["via-intermediate"]!.map { try $0.certificate.serializeAsPEM().derBytes }
        XCTAssertEqual(h.first(name: "client-cert"), ":\(Data(chain[0]).base64EncodedString()):")
        XCTAssertEqual(h.first(name: "x-client-chain"), ":\(Data(chain[1]).base64EncodedString()):")
        XCTAssertNil(h.first(name: "client-cert-chain"))
    }

    func testOversizedValueIsOmittedAndLogged() async throws {
        let sent = try await send("small", client: "valid")
        let h = try XCTUnwrap(sent).head.headers
        XCTAssertNil(h.first(name: "client-cert"), "a value over max_value_bytes is left out, not cut")
        let logged = await gateway.logs.waitFor { $0.message.contains("header client-cert omitted: its value has") }
        XCTAssertNotNil(logged)
    }

    func testBadHeaderNameIsAConfigError() throws {
        let config = pki.path("bad-ccH.yaml")
        try """
            listeners:
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                plugins: [ { library: \(Self.library), config: { fields: { subjectdn: "X-Subject!" } } } ]
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("rejected its config: fields.subjectdn: header name 'X-Subject!' must be 1 to 40 of lowercase letters, digits, '_' and '-'"), result.stderr)
    }

    /// The config is decoded by the SDK's strict typed decoder: a misspelt or mistyped key is an error that
    /// names it.
    func testConfigErrorsNameTheKey() throws {
        let cases: [(config: String, error: String)] = [
            ("{ dialekt: aws }", "config: unknown key 'dialekt'; known: dialect, fields, fingerprint_algorithm, max_value_bytes, xfcc_elements"),
            ("{ max_value_bytes: big }", "max_value_bytes: expected an integer"),
            ("{ fields: { sans: 3 } }", "fields.sans: expected a header name or true/false"),
            ("{ fields: { nope: true } }", "fields.nope: unknown field for dialect elb"),
            ("{ xfcc_elements: Hash }", "xfcc_elements: expected an array"),
        ]
        let refusals = try validateRefuses(library: Self.library, cases.map(\.config))
        for (item, stderr) in zip(cases, refusals) {
            XCTAssertTrue(stderr.contains("rejected its config: \(item.error)"), "\(item.config): \(stderr)")
        }
    }
}
