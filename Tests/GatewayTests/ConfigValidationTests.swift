import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// Every problem of a broken configuration is reported with its key path, in-process and through the CLI,
/// and `gateway run` with a bad config never starts listening.
final class ConfigValidationTests: XCTestCase {
    var pki: TestPKI!

    override func setUp() async throws {
        pki = try TestPKI()
    }

    private func problems(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        try pki.configProblems(yaml, file: file, line: line)
    }

    private func assertContains(_ issues: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        assertProblem(issues, expected, file: file, line: line)
    }

    static let brokenStructure = """
        listeners:
          - name: public
            address: "localhost:99999"
            protocol: htps
            client_aut: required
            tls:
              certificates: [ { cert: missing.pem, key: missing.key } ]
              client_auth: required
              verify_depth: "deep"
            routes:
              - { backend: nowhere }
        backends:
          - name: api
            servers: [ { address: "127.0.0.1", weight: 0 } ]
            connect_timeout: soon
        """

    func testLimitsOutOfRangeAreNamedByKeyPath() throws {
        let issues = try problems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                limits: { chunked_buffer_bytes: -1, max_body_bytes: -5, min_body_rate: -1 }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertContains(issues, "listeners[0].limits.chunked_buffer_bytes: must be between 0 (always stream) and 16777216")
        assertContains(issues, "listeners[0].limits.max_body_bytes: must not be negative")
        assertContains(issues, "listeners[0].limits.min_body_rate")
    }

    func testWebSocketSettingsAreCheckedByKeyPath() throws {
        let issues = try problems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                websocket: { idle_timeout: 5s, enabeld: false }
                routes: [ { backend: b } ]
              - name: m
                address: "127.0.0.1:0"
                protocol: http
                websocket: { enabled: maybe }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertContains(issues, "listeners[0].websocket.enabeld: unknown key")
        assertContains(issues, "listeners[1].websocket.enabled: expected true or false")
        // Once the file decodes, the values are checked.
        let values = try problems("""
            listeners:
              - { name: l, address: "127.0.0.1:0", protocol: http, websocket: { idle_timeout: 0s }, routes: [ { backend: b } ] }
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertContains(values, "listeners[0].websocket.idle_timeout: must be positive")
    }

    func testBackendHostNamesAndTheResolverAreCheckedByKeyPath() throws {
        let issues = try problems("""
            resolver: { servers: [ "10.0.0.2", "[::1]:5353", "dns.example:53", "10.0.0.3:0" ], timeout: 1ms }
            listeners: [ { name: l, address: "127.0.0.1:0", protocol: http, routes: [ { backend: b } ] } ]
            backends:
              - name: b
                servers: [ { address: "api.internal:8000" }, { address: "bad_host!:8000" }, { address: "-x.test:1" } ]
                resolve_interval: 500ms
            """)
        assertContains(issues, "resolver.timeout: must be at least 10ms, got 1ms")
        assertContains(issues, "resolver.servers[2]: 'dns.example:53' is not an IP address with an optional port")
        assertContains(issues, "resolver.servers[3]: '10.0.0.3:0' is not an IP address with an optional port")
        assertContains(issues, "backends[0].servers[1].address: 'bad_host!' is neither an IP address nor a host name")
        assertContains(issues, "backends[0].servers[2].address: '-x.test' is neither an IP address nor a host name")
        assertContains(issues, "backends[0].resolve_interval: must be at least 1s, got 500ms")
        XCTAssertFalse(issues.contains { $0.contains("servers[0]") || $0.contains("resolver.servers[1]") }, "\(issues)")
        let family = try problems("""
            listeners: [ { name: l, address: "127.0.0.1:0", protocol: http, routes: [ { backend: b } ] } ]
            backends: [ { name: b, servers: [ { address: "api.internal:8000" } ], dns_family: ipv5 } ]
            """)
        assertContains(family, "backends[0].dns_family: 'ipv5' is not one of: all | ipv4 | ipv6")
    }

    func testStructuralProblemsAreAllReportedWithKeyPaths() throws {
        let issues = try problems(Self.brokenStructure)
        assertContains(issues, "listeners[0].protocol: 'htps' is not one of: https | http")
        assertContains(issues, "listeners[0].client_aut: unknown key")
        assertContains(issues, "listeners[0].tls.verify_depth: expected an integer")
        assertContains(issues, "backends[0].connect_timeout: 'soon' is not a duration")
    }

    static let brokenSemantics = """
        listeners:
          - name: public
            address: "localhost:8443"
            tls:
              certificates: [ { cert: missing.pem, key: server.key }, { cert: server.pem, key: server-api.key } ]
              client_auth: required
            routes:
              - { match: { path_prefix: "v1" }, backend: nowhere }
          - name: public
            address: "127.0.0.1:99999"
            protocol: http
            routes: [ { backend: api } ]
          - name: cas
            address: "127.0.0.1:0"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: optional
              client_ca: [valid.pem]
              crl: [nope.crl]
              verify_depth: 40
            routes: [ { backend: api } ]
        backends:
          - name: api
            servers: [ { address: "127.0.0.1", weight: 0 }, { address: "127.0.0.1:8080", weight: 5000 } ]
        """

    func testSemanticProblemsAreAllReportedWithKeyPaths() throws {
        let issues = try problems(Self.brokenSemantics)
        assertContains(issues, "listeners[0].address: 'localhost' is not an IP address")
        assertContains(issues, "listeners[0].tls.certificates[0].cert: cannot read 'missing.pem': no such file")
        assertContains(issues, "listeners[0].tls.certificates[1].key: key in 'server-api.key' does not match the certificate in 'server.pem'")
        assertContains(issues, "listeners[0].tls.client_ca: required when client_auth is required")
        assertContains(issues, "listeners[0].routes[0].match.path_prefix: 'v1' must start with '/'")
        assertContains(issues, "listeners[0].routes[0].backend: no backend named 'nowhere'")
        assertContains(issues, "listeners[1].name: duplicate listener name 'public'")
        assertContains(issues, "listeners[1].address: '127.0.0.1:99999' is not an address")
        assertContains(issues, "listeners[2].tls.client_ca[0]: 'valid.pem' contains 'CN=valid-client,OU=ops,O=Test,C=US', which is not a CA certificate")
        assertContains(issues, "listeners[2].tls.crl[0]: cannot read 'nope.crl': no such file")
        assertContains(issues, "listeners[2].tls.verify_depth: must be between 1 and 16")
        assertContains(issues, "backends[0].servers[0].address: '127.0.0.1' is not host:port")
        assertContains(issues, "backends[0].servers[1].weight: must be between 1 and 1000")
        XCTAssertGreaterThanOrEqual(issues.count, 13)
    }

    func testCRLProblems() throws {
        let f = CertificateFactory.self
        let impostor = try f.makeCA(f.name(commonName: "Test Root CA", organization: "Test"))  // same name, other key
        try pki.write("forged.crl", CRLBuilder.pem(try CRLBuilder.make(issuer: pki.rootCA, revoked: [], signer: impostor.privateKey)))
        try pki.write("expired.crl", CRLBuilder.pem(try CRLBuilder.make(
            issuer: pki.rootCA, revoked: [], thisUpdate: Date() - 10 * 86400, nextUpdate: Date() - 86400)))
        try pki.write("foreign.crl", CRLBuilder.pem(try CRLBuilder.make(issuer: pki.otherCA, revoked: [])))
        try pki.write("garbage.crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
        let issues = try problems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  crl: [forged.crl, expired.crl, foreign.crl, garbage.crl]
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertContains(issues, "listeners[0].tls.crl[0]: CRL in 'forged.crl' is not validly signed by 'CN=Test Root CA,O=Test,C=US'")
        assertContains(issues, "listeners[0].tls.crl[1]: CRL in 'expired.crl' from 'CN=Test Root CA,O=Test,C=US' expired at")
        // A CRL of a CA outside client_ca is kept for paths that present that CA (IntermediateCRLTests).
        XCTAssertFalse(issues.contains { $0.contains("crl[2]") }, issues.joined(separator: "\n"))
        assertContains(issues, "listeners[0].tls.crl[3]: cannot parse CRL 'garbage.crl'")
    }

    func testValidateCommandReportsEveryProblemAndFails() throws {
        let path = pki.path("broken.yaml")
        try Self.brokenSemantics.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["validate", "--config", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("listeners[0].tls.certificates[0].cert: cannot read 'missing.pem': no such file"), result.stderr)
        XCTAssertTrue(result.stderr.contains("backends[0].servers[1].weight: must be between 1 and 1000"), result.stderr)

        let good = pki.path("good.yaml")
        try """
            listeners:
              - { name: l, address: "127.0.0.1:0", protocol: http, routes: [ { backend: b } ] }
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try GatewayProcess.run(["validate", "--config", good])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("configuration OK"))
    }

    func testRunWithBadConfigExitsWithoutListening() throws {
        let port = try unusedPort()
        let path = pki.path("bad-run.yaml")
        try """
            listeners:
              - { name: l, address: "127.0.0.1:\(port)", protocol: http, routes: [ { backend: missing } ] }
            backends: []
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["run", "--config", path], timeout: 30)
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("listeners[0].routes[0].backend: no backend named 'missing'"), result.stderr)
        XCTAssertFalse(result.stderr.contains("listening"))
    }

    func testUnreadableFileAndJSON() throws {
        let missing = try GatewayProcess.run(["validate", "--config", pki.path("nope.yaml")])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("cannot read"), missing.stderr)
        let json = pki.path("c.json")
        try #"{"listeners": [{"name": "l", "address": "127.0.0.1:0", "protocol": "http", "routes": [{"backend": "b"}]}], "backends": [{"name": "b", "servers": [{"address": "127.0.0.1:1"}]}], "extra": 1}"#
            .write(toFile: json, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["validate", "--config", json])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("extra: unknown key"), result.stderr)
    }
}
