import Foundation
import NIOHTTP1
import XCTest

/// HTTP/2 to clients on a listener that offers it (`alpn: [h2, http/1.1]`), with real clients against the real
/// `gateway run` as the unprivileged user: curl over h2 and over HTTP/1.1 on the same port, h2load, a rapid-reset
/// attacker (python/h2_rapid_reset.py, the `h2` package), CONTINUATION and PING floods (python/h2_flood.py,
/// frame by frame), and a request whose :authority asks for another certificate's client policy.
final class HTTP2Tests: GatewayTestCase {
    private func config(port: Int, openPort: Int, adminPort: Int) -> String {
        """
        admin: { address: "127.0.0.1:\(adminPort)" }
        listeners:
          - name: both
            address: "127.0.0.1:\(port)"
            alpn: [h2, "http/1.1"]
            http2: { max_resets_per_30s: 100 }
            tls:
              certificates:
                - { cert: server.pem, key: server.key }
                - { cert: server-api.pem, key: server-api.key, client_ca: [other-root.pem] }
              client_auth: required
              client_ca: ca.pem
            plugins:
              - { library: libClientCertHeaders.so, config: {} }
              - { library: libAudit.so, config: { path: \(pki.path("audit-h2.log")) } }
            routes: [ { backend: app } ]
          - name: open
            address: "127.0.0.1:\(openPort)"
            alpn: [h2]
            tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: optional, client_ca: ca.pem }
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
        """
    }

    private func curl(_ arguments: [String]) throws -> GatewayProcess.Result {
        try GatewayProcess.runCommand("/usr/bin/curl", ["-sS", "--max-time", "10"] + arguments)
    }

    func testCurlOverH2AndHTTP1SeesTheSameIdentityAndRapidResetIsCutOff() async throws {
        let (port, openPort, adminPort) = (try unusedPort(), try unusedPort(), try unusedPort())
        let running = try await runGateway(config(port: port, openPort: openPort, adminPort: adminPort), name: "h2", adminPort: adminPort)
        let client = ["--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem")]

        // The same listener, both protocols: the backend sees the same identity headers, the client's own copy
        // stripped on both.
        var subjects: [String: [String]] = [:]
        for version in ["--http2", "--http1.1"] {
            let result = try curl(client + [version, "-w", "\n%{http_version}", "-H", "X-Forwarded-Clientcert-Subjectdn: CN=forged",
                                            "https://localhost:\(port)/who\(version)"])
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stdout.hasSuffix(version == "--http2" ? "\n2" : "\n1.1"), "\(version): \(result.stdout)")
            let received = backend.requests.last { $0.head.uri == "/who\(version)" }
            subjects[version] = received?.head.headers["x-forwarded-clientcert-subjectdn"] ?? []
            XCTAssertEqual(received?.head.version, .http1_1, "the backend is spoken to in HTTP/1.1")
        }
        XCTAssertEqual(subjects["--http2"]?.count, 1, "\(subjects)")
        XCTAssertTrue(subjects["--http2"]?.first?.contains("valid-client") ?? false, "\(subjects)")
        XCTAssertEqual(subjects["--http2"], subjects["--http1.1"])

        // A body over h2 (without a length: DATA frames), a HEAD, and a POST with a length.
        let upload = try GatewayProcess.runCommand("/bin/sh", ["-c",
            "head -c 300000 /dev/zero | /usr/bin/curl -sS --max-time 10 --http2 -X PUT --data-binary @- "
            + client.joined(separator: " ") + " https://localhost:\(port)/upload"])
        XCTAssertEqual(upload.status, 0, upload.stderr)
        let uploaded = backend.requests.last { $0.head.uri == "/upload" }
        XCTAssertEqual(uploaded?.bodyBytes, 300_000, "a body without a length, in DATA frames, arrives whole")
        let head = try curl(client + ["--http2", "-I", "https://localhost:\(port)/head"])
        XCTAssertEqual(head.status, 0, head.stderr)
        XCTAssertTrue(head.stdout.hasPrefix("HTTP/2 200"), head.stdout)
        // More fields than limits.max_header_count (100): 431 from the stream, before any plugin or backend; the
        // connection serves on.
        let many = (0...100).flatMap { ["-H", "X-Field-\($0): v"] }
        let tooMany = try curl(client + ["--http2", "-o", "/dev/null", "-w", "%{http_code}"] + many + ["https://localhost:\(port)/many"])
        XCTAssertEqual(tooMany.stdout, "431", tooMany.stderr)
        XCTAssertNil(backend.requests.last { $0.head.uri == "/many" })

        // Connection coalescing: a request whose :authority selects a certificate with another client policy than
        // the connection's SNI did is 421, over h2 as over HTTP/1.1.
        let misdirected = try curl(client + ["--http2", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: api.test", "https://localhost:\(port)/other"])
        XCTAssertEqual(misdirected.stdout, "421", misdirected.stderr)

        // h2load: many streams on a few connections, no error.
        let load = try GatewayProcess.runCommand("/usr/bin/h2load", ["-n", "2000", "-c", "4", "-m", "20", "https://127.0.0.1:\(openPort)/load"])
        XCTAssertEqual(load.status, 0, load.stderr)
        XCTAssertTrue(load.stdout.contains("2000 succeeded, 0 failed, 0 errored"), load.stdout)

        // Rapid reset (CVE-2023-44487): the attacker is told to calm down (GOAWAY ENHANCE_YOUR_CALM, 0xb) and
        // closed, while a well-behaved client is served before and after.
        let attack = try PythonHelper.run("h2_rapid_reset.py", [
            "--port", String(port), "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
        ], input: "") as? [String: Any] ?? [:]
        XCTAssertEqual(attack["goaway"] as? Int, 11, "\(attack)")
        XCTAssertEqual(attack["closed"] as? Bool, true, "\(attack)")
        XCTAssertLessThan(attack["reset"] as? Int ?? 5000, 5000, "cut off before its loop ended: \(attack)")
        // CONTINUATION flood (CVE-2024-27316) and PING flood: each connection is closed (GOAWAY first; a client
        // still sending may see the reset before it), and counted by its reason.
        for attack in ["continuation", "ping"] {
            let flood = try PythonHelper.run("h2_flood.py", [
                "--port", String(port), "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--attack", attack,
            ], input: "") as? [String: Any] ?? [:]
            XCTAssertEqual(flood["closed"] as? Bool, true, "\(attack): \(flood)")
            XCTAssertLessThan(flood["sent"] as? Int ?? 2000, 2000, "\(attack) cut off before its loop ended: \(flood)")
        }
        let after = try curl(client + ["--http2", "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:\(port)/after"])
        XCTAssertEqual(after.stdout, "200", after.stderr)

        // Audit: one request line per stream, written once, with the h2 protocol's identity fields as HTTP/1.1's.
        var lines: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            lines = ((try? String(contentsOfFile: pki.path("audit-h2.log"), encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            if lines.contains(where: { $0["path"] as? String == "/after" }) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        for path in ["/who--http2", "/who--http1.1", "/upload", "/head", "/after"] {
            let matching = lines.filter { $0["path"] as? String == path && $0["event"] as? String == "request" }
            XCTAssertEqual(matching.count, 1, "\(path): \(matching)")
            XCTAssertTrue((matching.first?["subject"] as? String ?? "").contains("valid-client"), "\(path): \(matching)")
        }
        XCTAssertEqual(lines.first { $0["path"] as? String == "/upload" }?["bytes_in"] as? Int, 300_000)

        let metrics = try await running.metrics()
        XCTAssertEqual(metrics.value("gateway_http2_connections_closed_total", ["listener": "both", "reason": "rapid_reset"]), 1)
        XCTAssertEqual(metrics.value("gateway_http2_connections_closed_total", ["listener": "both", "reason": "continuation_flood"]), 1)
        XCTAssertEqual(metrics.value("gateway_http2_connections_closed_total", ["listener": "both", "reason": "control_frame_flood"]), 1)
        XCTAssertGreaterThanOrEqual(metrics.value("gateway_http2_streams_total", ["listener": "open"]) ?? 0, 2000)
        XCTAssertTrue(running.log.contains("reason=rapid_reset"), running.log)
        XCTAssertEqual(running.terminate(), 0)
    }

    func testALPNIsCheckedByKeyPath() throws {
        let issues = try pki.configProblems("""
            listeners:
              - { name: a, address: "127.0.0.1:0", protocol: http, alpn: [h2], routes: [ { backend: b } ] }
              - name: c
                address: "127.0.0.1:0"
                alpn: [h3, h2, h2]
                http2: { max_concurrent_streams: 0 }
                tls: { certificates: [ { cert: server.pem, key: server.key } ] }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(issues, "listeners[0].alpn: not allowed for protocol http")
        assertProblem(issues, "listeners[1].alpn[0]: 'h3' is not one of: h2 | http/1.1")
        assertProblem(issues, "listeners[1].alpn[2]: 'h2' is listed twice")
        assertProblem(issues, "listeners[1].http2.max_concurrent_streams: must be between 1 and 100000")
    }
}
