import Foundation
import XCTest

/// Backends named by host name, in the real `gateway run` (as nobody) against a real DNS server on loopback
/// (dnsmasq) whose answer changes during the test: traffic moves to the new address without a reload, every
/// address is a server with its own health, and with the DNS server down the last known addresses stay (across
/// a reload too).
final class BackendDiscoveryTests: GatewayTestCase {
    private func config(port: Int, adminPort: Int, dnsPort: Int, backendPort: Int, extra: String = "") -> String {
        "resolver: { servers: [ \"127.0.0.1:\(dnsPort)\" ], timeout: 300ms }\n"
            + mtlsConfig(port: port, adminPort: adminPort, plugins: [],
                         backends: "[ { name: app, servers: [ { address: \"api.test:\(backendPort)\" } ], resolve_interval: 1s\(extra) } ]")
    }

    /// Two backends on one port, at 127.0.0.2 and 127.0.0.3: which one answers says which address DNS gave.
    private func startPair() async throws -> (TestBackend, TestBackend, Int) {
        let port = try unusedPort()
        let two = TestBackend(name: "two"), three = TestBackend(name: "three")
        try await two.start(host: "127.0.0.2", port: port)
        try await three.start(host: "127.0.0.3", port: port)
        addTeardown { await two.stop(); await three.stop() }
        return (two, three, port)
    }

    private func answer(_ port: Int) async throws -> String {
        let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/who")
        return "\(response?.status ?? 0) \(response?.text ?? "")"
    }

    func testTrafficFollowsTheDNSAnswerWithoutAReloadAndKeepsItWhenDNSIsDown() async throws {
        let (_, _, backendPort) = try await startPair()
        let dns = try Dnsmasq.start(hosts: ["127.0.0.2 api.test"], directory: pki.directory)
        defer { dns.stop() }
        let port = try unusedPort(), adminPort = try unusedPort()
        let gateway = try await runGateway(config(port: port, adminPort: adminPort, dnsPort: dns.port, backendPort: backendPort),
                                           name: "dns", adminPort: adminPort)
        defer { _ = gateway.terminate() }
        let first = try await answer(port)
        XCTAssertEqual(first, "200 ok two", "resolved at start-up, before the first request")

        try dns.setHosts(["127.0.0.3 api.test"])
        var moved = false
        for _ in 0..<60 where !moved {
            try await Task.sleep(nanoseconds: 200_000_000)
            moved = try await answer(port) == "200 ok three"
        }
        XCTAssertTrue(moved, "traffic moves to the new address within a few TTLs, without a reload")
        XCTAssertTrue(gateway.log.contains("backend servers changed by DNS"), gateway.log)
        XCTAssertFalse(gateway.log.contains("configuration reloaded"))
        let metrics = try await gateway.metrics()
        XCTAssertEqual(metrics.value("gateway_backend_servers", ["backend": "app"]), 1)
        XCTAssertNil(metrics.value("gateway_backend_server_healthy", ["backend": "app", "server": "api.test:\(backendPort)/127.0.0.2:\(backendPort)"]),
                     "the series of an address DNS took away is gone")
        XCTAssertEqual(metrics.value("gateway_backend_server_healthy", ["backend": "app", "server": "api.test:\(backendPort)/127.0.0.3:\(backendPort)"]), 1)
        XCTAssertGreaterThanOrEqual(metrics.value("gateway_backend_resolutions_total", ["backend": "app", "outcome": "success"]) ?? 0, 2)

        // DNS down: the last known address stays, through several intervals and a reload.
        dns.stop()
        try await Task.sleep(nanoseconds: 2_500_000_000)
        for _ in 0..<5 {
            let stays = try await answer(port)
            XCTAssertEqual(stays, "200 ok three")
        }
        XCTAssertTrue(gateway.log.contains("backend host name did not resolve: keeping its last known addresses"), gateway.log)
        let reload = try await gateway.admin("POST", "/reload")
        XCTAssertEqual(reload?.status, 200, reload?.text ?? "")
        for _ in 0..<5 {
            let afterReload = try await answer(port)
            XCTAssertEqual(afterReload, "200 ok three", "a reload takes the known addresses over instead of waiting for DNS")
        }
        let failed = try await gateway.metrics().value("gateway_backend_resolutions_total", ["backend": "app", "outcome": "failure"]) ?? 0
        XCTAssertGreaterThanOrEqual(failed, 1)
    }

    /// A name with two addresses is two servers: one refusing connections is ejected on its own (passive
    /// health), its sibling keeps serving, and no request fails.
    func testEveryAddressIsAServerWithItsOwnHealth() async throws {
        let (two, three, backendPort) = try await startPair()
        await three.stop()
        let dns = try Dnsmasq.start(hosts: ["127.0.0.2 api.test", "127.0.0.3 api.test"], directory: pki.directory)
        defer { dns.stop() }
        let port = try unusedPort(), adminPort = try unusedPort()
        let gateway = try await runGateway(config(port: port, adminPort: adminPort, dnsPort: dns.port, backendPort: backendPort,
                                                  extra: ", passive_health: { consecutive_failures: 1, eject_for: 60s }"), name: "dns-two", adminPort: adminPort)
        defer { _ = gateway.terminate() }
        for _ in 0..<8 {
            let served = try await answer(port)
            XCTAssertEqual(served, "200 ok two")
        }
        XCTAssertEqual(two.requests.count, 8)
        let metrics = try await gateway.metrics()
        XCTAssertEqual(metrics.value("gateway_backend_servers", ["backend": "app"]), 2)
        let twoLabel = "api.test:\(backendPort)/127.0.0.2:\(backendPort)", threeLabel = "api.test:\(backendPort)/127.0.0.3:\(backendPort)"
        XCTAssertEqual(metrics.value("gateway_backend_server_healthy", ["backend": "app", "server": twoLabel]), 1)
        XCTAssertEqual(metrics.value("gateway_backend_server_healthy", ["backend": "app", "server": threeLabel]), 0)
        XCTAssertEqual(metrics.value("gateway_backend_ejections_total", ["backend": "app", "server": threeLabel]), 1)
    }

    /// Without `resolver`, the system's resolver (getaddrinfo: /etc/hosts here) is asked.
    func testWithoutAResolverTheSystemResolverIsAsked() async throws {
        let port = try unusedPort(), adminPort = try unusedPort()
        let gateway = try await runGateway(mtlsConfig(port: port, adminPort: adminPort, plugins: [],
                                                      backends: "[ { name: app, servers: [ { address: \"localhost:\(backend.port)\" } ], dns_family: ipv4 } ]"),
                                           name: "dns-system", adminPort: adminPort)
        defer { _ = gateway.terminate() }
        let served = try await answer(port)
        XCTAssertEqual(served, "200 ok backend")
        let metrics = try await gateway.metrics()
        XCTAssertEqual(metrics.value("gateway_backend_server_healthy", ["backend": "app", "server": "localhost:\(backend.port)/127.0.0.1:\(backend.port)"]), 1)
    }
}
