import Foundation
import XCTest

/// A fleet on one machine: three real gateways (as nobody) behind HAProxy in TCP mode (`send-proxy-v2`, health
/// checks on each gateway's admin `/readyz`), under keep-alive load, while each gateway in turn gets SIGTERM
/// (with `drain_delay`) and is started again. No request may fail, and the backend and the Audit lines see the
/// load's own address (127.0.0.9), not HAProxy's.
final class FleetTests: GatewayTestCase {
    private func config(port: Int, admin: Int, audit: String) -> String {
        """
        drain_delay: 1500ms
        shutdown_timeout: 5s
        admin: { address: "127.0.0.1:\(admin)" }
        listeners:
          - name: fleet
            address: "127.0.0.1:\(port)"
            proxy_protocol: { mode: required, trusted: [ 127.0.0.1 ] }
            tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
            plugins: [ { library: libAudit.so, config: { path: \(audit) } } ]
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
        """
    }

    func testRollingRestartBehindHAProxyFailsNoRequest() async throws {
        let ports = try (0..<3).map { _ in (port: try unusedPort(), admin: try unusedPort()) }
        let front = try unusedPort()
        func start(_ index: Int, _ round: Int) async throws -> RunningGateway {
            let audit = pki.path("fleet-\(index)-\(round)-audit.log")
            return try await runGateway(config(port: ports[index].port, admin: ports[index].admin, audit: audit), name: "fleet-\(index)-\(round)", adminPort: ports[index].admin)
        }
        var gateways: [RunningGateway] = []
        for index in 0..<3 { gateways.append(try await start(index, 0)) }

        // Checks every 200 ms, out after 2 failures and back after 2 successes: drain_delay (1.5 s) is well
        // over the 0.4 s HAProxy needs to see a draining gateway's 503.
        let servers = ports.enumerated().map { index, pair in
            "  server g\(index) 127.0.0.1:\(pair.port) send-proxy-v2 check port \(pair.admin) inter 200ms fall 2 rise 2"
        }.joined(separator: "\n")
        let haproxy = try HAProxy(front: front, backend: """
              balance roundrobin
              option httpchk
              http-check send meth GET uri /readyz
            \(servers)
            """, configPath: pki.path("fleet-haproxy.cfg"))
        defer { haproxy.stop() }
        let warm = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--retry", "10", "--retry-connrefused", "--retry-delay", "1", "-o", "/dev/null", "-w", "%{http_code}",
            "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"), "https://localhost:\(front)/warm",
        ])
        XCTAssertEqual(warm.stdout, "200", warm.stderr)
        try await Task.sleep(nanoseconds: 600_000_000)  // every server seen up

        let load = try PythonHelper.start("loadgen.py", [
            "--port", "\(front)", "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--processes", "2", "--threads", "4", "--duration", "16", "--path", "/load", "--source", "127.0.0.9",
        ])
        try await Task.sleep(nanoseconds: 1_500_000_000)
        for index in 0..<3 {
            XCTAssertEqual(gateways[index].terminate(), 0, "gateway \(index) drains and exits 0")
            XCTAssertTrue(gateways[index].log.contains("draining before the listeners close"))
            gateways[index] = try await start(index, 1)
            try await Task.sleep(nanoseconds: 1_000_000_000)  // HAProxy sees it up again
        }
        let result = try PythonHelper.finish(load) as? [String: Any] ?? [:]
        let failures = result["failures"] as? [String] ?? ["no result"]
        let requests = result["requests"] as? Int ?? 0
        print("fleet: \(requests) requests, statuses \(result["statuses"] ?? [:]), failures \(failures.count)")
        XCTAssertEqual(failures, [], "no request may fail while the gateways restart one by one")
        XCTAssertEqual(result["statuses"] as? [String: Int], ["200": requests])
        XCTAssertGreaterThan(requests, 100)

        for gateway in gateways { XCTAssertEqual(gateway.terminate(), 0) }
        let forwarded = Set(backend.requests.filter { $0.head.uri == "/load" }.map { $0.head.headers["x-forwarded-for"].joined(separator: ",") })
        XCTAssertEqual(forwarded, ["127.0.0.9"], "the load's own address, from HAProxy's PROXY header")
        var audited = 0
        for index in 0..<3 {
            for round in 0..<2 {
                let text = (try? String(contentsOfFile: pki.path("fleet-\(index)-\(round)-audit.log"), encoding: .utf8)) ?? ""
                let lines = text.split(separator: "\n").filter { $0.contains("\"path\":\"/load\"") }
                XCTAssertTrue(lines.allSatisfy { $0.contains("\"client_address\":\"127.0.0.9\"") })
                audited += lines.count
            }
        }
        XCTAssertEqual(audited, requests, "every request audited by the gateway that served it")
    }
}
