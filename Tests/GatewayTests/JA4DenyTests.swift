import Foundation
import GatewayCore
import NIOCore
import XCTest

/// JA4 of real clients on this machine (curl, openssl s_client, Python's ssl, captured by a plain TCP listener),
/// and in the real `gateway run` (as nobody): `tls.ja4_deny` refuses openssl s_client's fingerprint at its
/// ClientHello (counted as `ja4_denied`, an Audit `handshake_rejected` line with the fingerprint), while curl
/// gets in and its fingerprints (JA4 and JA3) reach the backend (ClientCertHeaders' `ja4` and `ja3` fields) and
/// its Audit lines.
final class JA4DenyTests: GatewayTestCase {
    private func capturedHellos(_ clients: [(String, [String])]) async throws -> [ClientHello] {
        let port = try unusedPort()
        let capture = try PythonHelper.start("hello_capture.py", ["--port", "\(port)", "--count", "\(clients.count)"])
        try await Task.sleep(nanoseconds: 500_000_000)
        for (executable, arguments) in clients {
            _ = try GatewayProcess.runCommand(executable, arguments.map { $0.replacingOccurrences(of: "PORT", with: "\(port)") }, timeout: 20)
        }
        let hexes = try PythonHelper.finish(capture) as? [String] ?? []
        XCTAssertEqual(hexes.count, clients.count)
        return try hexes.map { hex in
            guard case .complete(let hello) = ClientHello.parse(ByteBuffer(bytes: [UInt8](hex: hex))) else {
                throw PluginFixtures.FixtureError(message: "not a complete ClientHello: \(hex.prefix(80))")
            }
            return hello
        }
    }

    func testRealClientsFingerprintsAndTheDenyList() async throws {
        let python = """
            import socket, ssl, sys
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                context.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost")
            except Exception:
                pass
            """
        let hellos = try await capturedHellos([
            ("/usr/bin/curl", ["-s", "--max-time", "10", "--cacert", pki.path("ca.pem"), "https://localhost:PORT/"]),
            ("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:PORT -servername localhost </dev/null >/dev/null 2>&1"]),
            ("/usr/bin/python3", ["-c", python, "PORT"]),
        ])
        let fingerprints = hellos.map { JA4Fingerprint($0).fingerprint }
        print("JA4 of real clients on this machine: curl \(fingerprints[0]), openssl s_client \(fingerprints[1]), python ssl \(fingerprints[2])")
        for fingerprint in fingerprints { XCTAssertTrue(JA4Fingerprint.isWellFormed(fingerprint), fingerprint) }
        XCTAssertTrue(fingerprints[0].hasPrefix("t13d") && fingerprints[0].dropFirst(4).dropFirst(4).hasPrefix("h2"), "curl offers TLS 1.3, SNI and h2: \(fingerprints[0])")
        let curlJA4 = fingerprints[0], opensslJA4 = fingerprints[1]
        XCTAssertNotEqual(curlJA4, opensslJA4)
        let ja3 = hellos.map { JA3Fingerprint($0).fingerprint }
        print("JA3 of real clients on this machine: curl \(ja3[0]), openssl s_client \(ja3[1]), python ssl \(ja3[2])")
        let curlJA3 = ja3[0], opensslJA3 = ja3[1]

        let port = try unusedPort(), adminPort = try unusedPort()
        let audit = pki.path("ja4-audit.log")
        let gateway = try await runGateway(mtlsConfig(port: port, adminPort: adminPort, plugins: [
            "{ library: libClientCertHeaders.so, config: { fields: { ja4: x-client-ja4, ja3: x-client-ja3 } } }",
            "{ library: libAudit.so, config: { path: \(audit), events: [ request, handshake_rejected ] } }",
            "{ library: libAudit.so, config: { path: \(audit).ja3, events: [ request, handshake_rejected ], fields: [ reason, ja4, ja3 ] } }",
        ], tls: ["ja4_deny: [ \(opensslJA4) ]"]), name: "ja4", adminPort: adminPort)
        let openssl = try GatewayProcess.runCommand("/bin/sh", ["-c", "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -cert \(pki.path("valid.pem")) -key \(pki.path("valid.key")) </dev/null 2>&1"])
        XCTAssertTrue(openssl.stdout.contains("no peer certificate available"), "openssl's fingerprint is denied before any certificate: \(openssl.stdout.suffix(600))")
        let curl = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--cacert", pki.path("ca.pem"), "https://localhost:\(port)/curl",
        ])
        XCTAssertEqual(curl.stdout, "200", curl.stderr)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/curl"])
        XCTAssertEqual(backend.requests.first?.head.headers["x-client-ja4"], [curlJA4], "the backend gets the client's JA4, computed by the gateway")
        XCTAssertEqual(backend.requests.first?.head.headers["x-client-ja3"], [curlJA3], "and its JA3")
        let metrics = try MetricSamples(exposition: try await TestClient.get(port: adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")?.text ?? "")
        XCTAssertEqual(metrics.value("gateway_tls_handshakes_total", ["listener": "mtls", "reason": "ja4_denied"]), 1)
        XCTAssertTrue(gateway.log.contains("reason=ja4_denied"), gateway.log)
        XCTAssertTrue(gateway.log.contains(opensslJA4))
        XCTAssertEqual(gateway.terminate(), 0)

        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
        let rejected = lines.filter { $0["event"] as? String == "handshake_rejected" }
        XCTAssertEqual(rejected.count, 1, "\(lines)")
        XCTAssertEqual(rejected.first?["reason"] as? String, "ja4_denied")
        XCTAssertEqual(rejected.first?["ja4"] as? String, opensslJA4)
        let requests = lines.filter { $0["event"] as? String == "request" }
        XCTAssertEqual(requests.map { $0["ja4"] as? String }, [curlJA4])
        XCTAssertEqual(requests.first?["ja3"] as? String, nil, "ja3 is written only when fields lists it")
        // The instance that lists ja3 writes it, for the refusal and for the request.
        let listed = try String(contentsOfFile: audit + ".ja3", encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
        XCTAssertEqual(listed.filter { $0["event"] as? String == "handshake_rejected" }.map { $0["ja3"] as? String }, [opensslJA3])
        XCTAssertEqual(listed.filter { $0["event"] as? String == "request" }.map { $0["ja3"] as? String }, [curlJA3])
    }

    /// `ja4_allow`: only curl's fingerprint passes; swift-nio-ssl's client is refused at its ClientHello
    /// (`ja4_not_allowed`), before its certificate is even asked for.
    func testTheAllowListAdmitsOnlyItsFingerprints() async throws {
        let curlJA4 = try await JA4Fingerprint(capturedHellos([
            ("/usr/bin/curl", ["-s", "--max-time", "10", "--cacert", pki.path("ca.pem"), "https://localhost:PORT/"]),
        ])[0]).fingerprint
        let port = try unusedPort(), adminPort = try unusedPort()
        let gateway = try await runGateway(mtlsConfig(port: port, adminPort: adminPort, plugins: [], tls: ["ja4_allow: [ \(curlJA4) ]"]),
                                           name: "ja4-allow", adminPort: adminPort)
        let curl = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--cacert", pki.path("ca.pem"), "https://localhost:\(port)/curl",
        ])
        XCTAssertEqual(curl.stdout, "200", curl.stderr)
        let other = try? await TestClient.get(port: port, tls: tls("valid"), path: "/other")
        XCTAssertNotEqual(other?.status, 200, "swift-nio-ssl's client has another fingerprint")
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/curl"])
        let metrics = try await gateway.metrics()
        XCTAssertEqual(metrics.value("gateway_tls_handshakes_total", ["listener": "mtls", "reason": "ja4_not_allowed"]), 1)
        XCTAssertTrue(gateway.log.contains("reason=ja4_not_allowed"), gateway.log)
        XCTAssertEqual(gateway.terminate(), 0)
    }

    func testAMalformedFingerprintIsAConfigurationError() throws {
        let problems = try pki.configProblems("""
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  ja4_deny: [ t13d1516h2_8daaf6152771_b186095e22b6, "t13d1516h2_8DAAF6152771_b186095e22b6", curl ]
                  ja4_allow: [ t13d1516h2_8daaf6152771_b186095e2 ]
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(problems, "listeners[0].tls.ja4_deny[1]: 't13d1516h2_8DAAF6152771_b186095e22b6' is not a JA4 fingerprint")
        assertProblem(problems, "listeners[0].tls.ja4_deny[2]: 'curl' is not a JA4 fingerprint")
        assertProblem(problems, "listeners[0].tls.ja4_allow[0]: 't13d1516h2_8daaf6152771_b186095e2' is not a JA4 fingerprint")
        let empty = try pki.configProblems("""
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], ja4_allow: [] }
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(empty, "listeners[0].tls.ja4_allow: must list at least one fingerprint (leave it out to admit every fingerprint)")
        XCTAssertFalse(problems.contains { $0.contains("ja4_deny[0]") }, "\(problems)")
    }
}
