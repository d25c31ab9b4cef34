import Foundation
import XCTest

/// `proxy_protocol` in the real `gateway run` (as nobody): the address of a PROXY header (v1 and v2, from curl,
/// HAProxy and a Python client that splits the header over reads) is what the backend's X-Forwarded-For and the
/// Audit lines carry, and every bad input has its outcome, asserted through the client and the metrics.
final class ProxyProtocolTests: GatewayTestCase {
    private func config(required: Int, optional: Int, admin: Int) -> String {
        let tls = "{ certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }"
        return """
        admin: { address: "127.0.0.1:\(admin)" }
        listeners:
          - name: balanced
            address: "127.0.0.1:\(required)"
            proxy_protocol: { mode: required, trusted: [ 127.0.0.1 ] }
            limits: { handshake_timeout: 1s, max_connections_per_ip: 2 }
            tls: \(tls)
            plugins: [ { library: libAudit.so, config: { path: \(pki.path("audit.log")) } } ]
            routes: [ { backend: app } ]
          - name: mixed
            address: "127.0.0.1:\(optional)"
            proxy_protocol: { mode: optional, trusted: [ "127.0.0.1/32", "::1" ] }
            limits: { max_connections_per_ip: 2 }
            tls: \(tls)
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
        """
    }

    private static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// A v2 PROXY header for a TCP4 client `source`:`port` that connected to 192.0.2.1:443, with `tlvs`.
    private static func v2(_ source: [UInt8], port: UInt16 = 40000, tlvs: [UInt8] = []) -> [UInt8] {
        ProxyProtocolHeaderTests.v2(source + [192, 0, 2, 1, UInt8(port >> 8), UInt8(port & 0xFF), 0x01, 0xBB] + tlvs)
    }

    /// Runs python/proxy_client.py against `port` and returns its results, one per connection.
    private func client(port: Int, header: [UInt8] = [], split: [Int] = [], source: String = "127.0.0.1", onlyHeader: Bool = false, wait: Double = 5, connections: Int = 1) throws -> [[String: Any]] {
        var arguments = [
            "--port", "\(port)", "--source", source, "--header", Self.hex(header), "--split", split.map(String.init).joined(separator: ","),
            "--connections", "\(connections)", "--wait", "\(wait)",
            "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
        ]
        if onlyHeader { arguments.append("--only-header") }
        return try PythonHelper.finish(PythonHelper.start("proxy_client.py", arguments)) as? [[String: Any]] ?? []
    }

    private func forwardedFor() -> [String] { backend.requests.map { $0.head.headers["x-forwarded-for"].joined(separator: ",") } }

    /// Waits until the listener's counters of gateway_proxy_protocol_total are `expected` (outcomes not named: 0;
    /// `atLeast`: that many or more); returns the counters.
    @discardableResult
    private func assertOutcomes(
        admin: Int, listener: String, _ expected: [String: Double], atLeast: [String: Double] = [:], file: StaticString = #filePath, line: UInt = #line
    ) async throws -> [String: Double] {
        let outcomes = ["v1", "v2", "local", "absent", "untrusted", "missing", "malformed", "truncated", "timeout"]
        var seen: [String: Double] = [:]
        let deadline = Date().addingTimeInterval(10)
        repeat {
            let response = try await TestClient.get(port: admin, tls: nil, path: "/metrics", host: "127.0.0.1")
            let samples = try MetricSamples(exposition: response?.text ?? "")
            for outcome in outcomes {
                seen[outcome] = samples.value("gateway_proxy_protocol_total", ["listener": listener, "outcome": outcome]) ?? -1
            }
            let matched = outcomes.allSatisfy { outcome in
                atLeast[outcome].map { seen[outcome]! >= $0 } ?? (seen[outcome] == expected[outcome, default: 0])
            }
            if matched { return seen }
            try await Task.sleep(nanoseconds: 100_000_000)
        } while Date() < deadline
        XCTFail("\(listener): outcomes \(seen.filter { $0.value != 0 }), expected \(expected), at least \(atLeast)", file: file, line: line)
        return seen
    }

    func testHeadersOverSeveralReadsAndEveryBadInputOutcome() async throws {
        let required = try unusedPort(), optional = try unusedPort(), admin = try unusedPort()
        let gateway = try await runGateway(config(required: required, optional: optional, admin: admin), name: "proxy", adminPort: admin)

        // v2 in three reads, v1 in two: the backend sees the header's client, not the balancer.
        let v2 = Self.v2([198, 51, 100, 7])
        XCTAssertEqual(try client(port: required, header: v2, split: [5, 14]).first?["status"] as? Int, 200)
        let v1 = Array("PROXY TCP4 198.51.100.8 192.0.2.1 40000 443\r\n".utf8)
        XCTAssertEqual(try client(port: required, header: v1, split: [9]).first?["status"] as? Int, 200)
        // LOCAL (a balancer's own connection): the socket's address. Unknown TLVs are skipped.
        XCTAssertEqual(try client(port: required, header: ProxyProtocolHeaderTests.v2(command: 0, family: 0, [])).first?["status"] as? Int, 200)
        let tlvs: [UInt8] = [0xEA, 0x00, 0x04, 0x76, 0x70, 0x63, 0x65, 0x02, 0x00, 0x01, 0x61]
        XCTAssertEqual(try client(port: required, header: Self.v2([198, 51, 100, 9], tlvs: tlvs)).first?["status"] as? Int, 200)
        // curl's own v1 header (its real address).
        let curl = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--haproxy-protocol", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"),
            "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:\(required)/who",
        ])
        XCTAssertEqual(curl.stdout, "200", curl.stderr)
        XCTAssertEqual(forwardedFor(), ["198.51.100.7", "198.51.100.8", "127.0.0.1", "198.51.100.9", "127.0.0.1"])

        // max_connections_per_ip counts the header's client (2 open at most), not the balancer's address; the
        // refused third is counted as client_limit, not as a v1 connection served.
        let limited = try client(port: required, header: Array("PROXY TCP4 198.51.100.50 192.0.2.1 40000 443\r\n".utf8), connections: 3)
        XCTAssertEqual(limited.map { $0["status"] as? Int }, [200, 200, nil], "\(limited)")
        XCTAssertNotNil(limited.last?["closed"])

        // Each bad input: the connection is closed, nothing reaches the backend.
        let before = backend.requests.count
        let malformed = try client(port: required, header: Array("PROXY TCP4 198.51.100.8 192.0.2.1 040000 443\r\n".utf8), onlyHeader: true)
        XCTAssertNotNil(malformed.first?["closed"], "malformed: \(malformed)")
        let truncated = try client(port: required, header: Array(v2.prefix(20)), onlyHeader: true, wait: 0.3)
        XCTAssertEqual(truncated.first?["open"] as? Bool, true, "half a header: the gateway waits for the rest")
        let missing = try client(port: required)
        XCTAssertNotNil(missing.first?["closed"], "required, TLS without a header: \(missing)")
        let untrusted = try client(port: required, header: v2, source: "127.0.0.7")
        XCTAssertNotNil(untrusted.first?["closed"], "a peer outside trusted: \(untrusted)")
        let slow = try client(port: required, header: Array("PROXY TCP4 ".utf8), onlyHeader: true, wait: 4)
        XCTAssertNotNil(slow.first?["closed"], "no complete header within handshake_timeout (1s): \(slow)")
        XCTAssertEqual(backend.requests.count, before)
        try await assertOutcomes(admin: admin, listener: "balanced", [
            "v2": 2, "v1": 4, "local": 1, "malformed": 1, "truncated": 1, "missing": 1, "untrusted": 1, "timeout": 1,
        ])

        // optional: a header only from a trusted peer; without one, the socket's address.
        XCTAssertEqual(try client(port: optional).first?["status"] as? Int, 200)
        XCTAssertEqual(try client(port: optional, header: Array("PROXY TCP4 198.51.100.20 192.0.2.1 40000 443\r\n".utf8)).first?["status"] as? Int, 200)
        XCTAssertNotNil(try client(port: optional, header: v2, source: "127.0.0.7").first?["closed"])
        XCTAssertEqual(try client(port: optional, source: "127.0.0.7").first?["status"] as? Int, 200)
        XCTAssertEqual(forwardedFor().suffix(3), ["127.0.0.1", "198.51.100.20", "127.0.0.7"])
        // A trusted peer without a header is still a client with a per-IP limit of its own.
        let direct = try client(port: optional, connections: 3)
        XCTAssertEqual(direct.map { $0["status"] as? Int }, [200, 200, nil], "\(direct)")
        try await assertOutcomes(admin: admin, listener: "mixed", ["absent": 4, "v1": 1, "untrusted": 1])

        let metrics = try MetricSamples(exposition: try await TestClient.get(port: admin, tls: nil, path: "/metrics", host: "127.0.0.1")?.text ?? "")
        XCTAssertEqual(metrics.value("gateway_connections_refused_total", ["listener": "balanced", "reason": "client_limit"]), 1)
        XCTAssertEqual(metrics.value("gateway_connections_refused_total", ["listener": "mixed", "reason": "client_limit"]), 1)
        XCTAssertEqual(gateway.terminate(), 0)
        let audit = try String(contentsOfFile: pki.path("audit.log"), encoding: .utf8)
        for client in ["198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.100.50"] {
            XCTAssertTrue(audit.contains("\"client_address\":\"\(client)\""), "audit line for \(client):\n\(audit)")
        }
    }

    /// HAProxy in TCP mode in front (`send-proxy-v2`, with health checks): the backend and the Audit line see
    /// curl's address, not HAProxy's. HAProxy's checks send a v2 LOCAL header and close (often with a reset,
    /// before the gateway has read the peer's address): counted as `local`, or nothing, never as an error.
    func testBehindHAProxySendProxyV2() async throws {
        let required = try unusedPort(), optional = try unusedPort(), admin = try unusedPort(), front = try unusedPort()
        let gateway = try await runGateway(config(required: required, optional: optional, admin: admin), name: "proxy", adminPort: admin)
        let haproxy = try HAProxy(
            front: front, backend: "  server gateway 127.0.0.1:\(required) send-proxy-v2 check inter 200ms", configPath: pki.path("haproxy.cfg"),
            maxConnections: 100
        )
        defer { haproxy.stop() }

        let curl = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--retry", "10", "--retry-connrefused", "--retry-delay", "1", "--interface", "127.0.0.7",
            "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"),
            "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:\(front)/who", "https://localhost:\(front)/again",
        ])
        XCTAssertEqual(curl.stdout, "200200", curl.stderr)
        XCTAssertEqual(forwardedFor(), ["127.0.0.7", "127.0.0.7"], "curl's address, from HAProxy's v2 header")
        try await Task.sleep(nanoseconds: 700_000_000)  // a few health checks
        try await assertOutcomes(admin: admin, listener: "balanced", ["v2": 1], atLeast: ["local": 1])
        XCTAssertEqual(gateway.terminate(), 0)
        let audit = try String(contentsOfFile: pki.path("audit.log"), encoding: .utf8)
        XCTAssertEqual(audit.split(separator: "\n").filter { $0.contains("\"client_address\":\"127.0.0.7\"") }.count, 2, audit)
    }

    /// A shutdown while a connection still waits for the rest of its header closes it at once (no request of it
    /// can be in flight), rather than leaving it to handshake_timeout or shutdown_timeout (both 30 s here).
    func testShutdownClosesAConnectionWaitingForItsHeader() async throws {
        let port = try unusedPort(), admin = try unusedPort()
        let gateway = try await runGateway("""
            shutdown_timeout: 30s
            admin: { address: "127.0.0.1:\(admin)" }
            listeners:
              - name: balanced
                address: "127.0.0.1:\(port)"
                proxy_protocol: { trusted: [ 127.0.0.1 ] }
                limits: { handshake_timeout: 30s }
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, name: "quiesce", adminPort: admin)
        let waiting = try PythonHelper.start("proxy_client.py", [
            "--port", "\(port)", "--header", Self.hex(Array("PROXY TCP4 198.51.100".utf8)), "--only-header", "--wait", "8",
            "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
        ])
        try await Task.sleep(nanoseconds: 700_000_000)
        gateway.signal(SIGTERM)
        let result = try PythonHelper.finish(waiting) as? [[String: Any]] ?? []
        XCTAssertNotNil(result.first?["closed"], "closed by the shutdown, not left open: \(result)")
        gateway.process.waitUntilExit()
        XCTAssertEqual(gateway.process.terminationStatus, 0)
        XCTAssertFalse(gateway.log.contains("shutdown timeout reached"), gateway.log)
    }

    func testConfigurationErrorsNameTheKey() throws {
        func listener(_ proxyProtocol: String) -> String {
            """
            listeners:
              - name: a
                address: "127.0.0.1:0"
                protocol: http
                proxy_protocol: \(proxyProtocol)
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:1" } ] } ]
            """
        }
        let decoding = try pki.configProblems(listener("{ mode: sometimes }"))
        assertProblem(decoding, "listeners[0].proxy_protocol.mode: 'sometimes' is not one of: required | optional")
        assertProblem(decoding, "listeners[0].proxy_protocol.trusted: missing required key")
        let ranges = try pki.configProblems(listener("{ trusted: [ 10.0.0.1/8, \"2001:db8::/129\", example.com, 10.0.0.0/-1 ] }"))
        assertProblem(ranges, "listeners[0].proxy_protocol.trusted[0]: '10.0.0.1/8' has bits set past its /8 prefix (did you mean 10.0.0.0/8?)")
        assertProblem(ranges, "listeners[0].proxy_protocol.trusted[1]: '2001:db8::/129': the prefix length must be a number from 0 to 128")
        assertProblem(ranges, "listeners[0].proxy_protocol.trusted[2]: 'example.com' is not an IPv4 or IPv6 address")
        assertProblem(ranges, "listeners[0].proxy_protocol.trusted[3]: '10.0.0.0/-1': the prefix length must be a number from 0 to 32")
        assertProblem(try pki.configProblems(listener("{ trusted: [] }")), "listeners[0].proxy_protocol.trusted: must name the balancers")
    }
}
