import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// The real `gateway run` process under continuous keep-alive load (50 connections from a Python client):
/// SIGHUP every second while the server certificate, the CA bundle, the CRL and the routes change, a broken
/// configuration in between, and SIGTERM at the end.
final class ReloadUnderLoadTests: GatewayTestCase {
    override class var backendName: String { "a" }
    /// Backend a is the fixture's `backend`.
    var backendA: TestBackend { backend }
    var backendB: TestBackend!

    override func setUp() async throws {
        try await super.setUp()
        backendB = TestBackend(name: "b")
        try await backendB.start()
        addTeardown { [backendB] in await backendB?.stop() }
        // A second server certificate for localhost (a new serial) to rotate to.
        let f = CertificateFactory.self
        let rotated = try f.makeLeaf(f.name(commonName: "localhost"), issuer: pki.rootCA, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], usages: [.serverAuth])
        try pki.write("server-rotated.pem", rotated.certificatePEM)
        try pki.write("server-rotated.key", rotated.privateKeyPEM)
    }

    struct Generation {
        var rotatedCertificate = false
        var caBundle = false
        var crl = false
        var backend = "a"
        var broken = false
    }

    private func yaml(_ g: Generation, port: Int, adminPort: Int, audit: String) -> String {
        let cert = g.rotatedCertificate ? "server-rotated" : "server"
        return """
            admin: { address: "127.0.0.1:\(adminPort)" }
            shutdown_timeout: 10s
            listeners:
              - name: mtls
                address: "127.0.0.1:\(port)"
                tls:
                  certificates: [ { cert: \(cert).pem, key: \(cert).key } ]
                  client_auth: required
                  client_ca: \(g.caBundle ? "ca-bundle.pem" : "ca.pem")
                  \(g.crl ? "crl: root.crl.pem" : "")
                plugins: [ { library: libAudit.so, config: { path: \(audit) } } ]
                routes: [ { backend: \(g.backend) } ]
            backends:
              - { name: a, servers: [ { address: "127.0.0.1:\(backendA.port)" } ] }
              - { name: b, servers: [ { address: "127.0.0.1:\(backendB.port)" } ] }
            \(g.broken ? "unknown_top_level_key: true" : "")
            """
    }

    private func curl(_ port: Int, client: String) throws -> GatewayProcess.Result {
        try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cert", pki.path("\(client).pem"), "--key", pki.path("\(client).key"),
            "--cacert", pki.path("ca.pem"), "https://localhost:\(port)/check",
        ])
    }

    /// Keep-alive clients that also open new connections now and then (every 40 requests), so that both open
    /// connections moving on to a new configuration and new handshakes are exercised.
    private func loadArguments(_ port: Int, seconds: Double) -> [String] {
        ["--port", "\(port)", "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
         "--processes", "5", "--threads", "10", "--duration", "\(seconds)", "--path", "/load", "--requests-per-connection", "40"]
    }

    func testSIGHUPEverySecondUnderLoadFailsNoRequest() async throws {
        let port = try unusedPort(), adminPort = try unusedPort()
        let config = pki.path("reload.yaml"), audit = pki.path("reload-audit.log")
        var generation = Generation()
        try yaml(generation, port: port, adminPort: adminPort, audit: audit).write(toFile: config, atomically: true, encoding: .utf8)
        let gateway = try RunningGateway(config: config, adminPort: adminPort, logPath: pki.path("reload-gateway.log"))
        try await gateway.waitReady()
        XCTAssertEqual(try curl(port, client: "revoked").stdout, "200", "not revoked yet")
        XCTAssertNotEqual(try curl(port, client: "other-ca").stdout, "200", "the other CA is not trusted yet")

        let load = try PythonHelper.start("loadgen.py", loadArguments(port, seconds: 12))
        // Every second: one change and a SIGHUP. Step 6 writes a broken file, step 7 repairs it.
        let steps: [(String, (inout Generation) -> Void)] = [
            ("server certificate", { $0.rotatedCertificate = true }),
            ("routes", { $0.backend = "b" }),
            ("CA bundle", { $0.caBundle = true }),
            ("CRL", { $0.crl = true }),
            ("routes back", { $0.backend = "a" }),
            ("broken file", { $0.broken = true }),
            ("repaired file", { $0.broken = false }),
            ("server certificate back", { $0.rotatedCertificate = false }),
            ("routes again", { $0.backend = "b" }),
            ("server certificate again", { $0.rotatedCertificate = true }),
        ]
        for (name, change) in steps {
            try await Task.sleep(nanoseconds: 1_000_000_000)
            change(&generation)
            try yaml(generation, port: port, adminPort: adminPort, audit: audit).write(toFile: config, atomically: true, encoding: .utf8)
            gateway.signal(SIGHUP)
            if name == "broken file" {
                try await Task.sleep(nanoseconds: 300_000_000)
                XCTAssertTrue(gateway.log.contains("reload failed"), "a broken file is reported")
                XCTAssertTrue(gateway.log.contains("unknown_top_level_key: unknown key"), "with the validate message")
            }
        }
        let result = try XCTUnwrap(try PythonHelper.finish(load) as? [String: Any])
        let failures = result["failures"] as? [String] ?? ["no result"]
        let requests = result["requests"] as? Int ?? 0
        let serials = result["serials"] as? [String: Int] ?? [:]
        let backends = result["backends"] as? [String: Int] ?? [:]
        print("reload under load: \(requests) requests in 12 s, statuses \(result["statuses"] ?? "?"), \(serials.count) server certificates seen, backends \(backends)")
        XCTAssertEqual(failures, [], "no request failed during the reloads")
        XCTAssertEqual(result["statuses"] as? [String: Int], ["200": requests], "every answer was a 200")
        XCTAssertGreaterThan(requests, 500)
        XCTAssertEqual(serials.count, 2, "new handshakes saw the rotated certificate (and the original one)")
        XCTAssertGreaterThan(backends["a"] ?? 0, 0)
        XCTAssertGreaterThan(backends["b"] ?? 0, 0, "the route changes took effect")

        // The final configuration: CRL and CA bundle loaded, routes to b.
        XCTAssertNotEqual(try curl(port, client: "revoked").stdout, "200", "a client revoked by the new CRL is refused on its next handshake")
        XCTAssertEqual(try curl(port, client: "other-ca").stdout, "200", "the new CA bundle is in force")
        XCTAssertTrue(gateway.log.contains("certificate_revoked"))
        let metrics = try await TestClient.get(port: adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        let m = try MetricSamples(exposition: metrics?.text ?? "")
        XCTAssertEqual(m.value("gateway_config_reloads_total", ["result": "success"]), 9)
        XCTAssertEqual(m.value("gateway_config_reloads_total", ["result": "failure"]), 1)
        XCTAssertEqual(gateway.terminate(), 0)
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.contains("\"path\":\"/load\"") }.count, requests, "one audit line per request, across every generation")
    }

    func testSIGTERMUnderLoadCompletesAcceptedRequestsAndFlushesAudit() async throws {
        let port = try unusedPort(), adminPort = try unusedPort()
        let config = pki.path("term.yaml"), audit = pki.path("term-audit.log")
        try yaml(Generation(), port: port, adminPort: adminPort, audit: audit).write(toFile: config, atomically: true, encoding: .utf8)
        let gateway = try RunningGateway(config: config, adminPort: adminPort, logPath: pki.path("term-gateway.log"))
        try await gateway.waitReady()
        let load = try PythonHelper.start("loadgen.py", loadArguments(port, seconds: 30) + ["--shutdown"])
        try await Task.sleep(nanoseconds: 3_000_000_000)
        let status = gateway.terminate()
        let result = try XCTUnwrap(try PythonHelper.finish(load) as? [String: Any])
        let requests = result["requests"] as? Int ?? 0
        print("SIGTERM under load: \(requests) requests, \(result["refused"] ?? 0) connections closed idle or refused after SIGTERM")
        XCTAssertEqual(status, 0, "graceful shutdown exits 0")
        XCTAssertEqual(result["failures"] as? [String], [], "no request the gateway accepted was cut")
        XCTAssertEqual(result["statuses"] as? [String: Int], ["200": requests])
        XCTAssertGreaterThan(requests, 100)
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, requests, "every answered request has its audit line, flushed before exit")
    }
}
