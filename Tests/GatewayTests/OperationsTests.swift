import Foundation
import GatewayCore
import GatewayTooling
import NIOCore
import XCTest

/// The admin listener, metrics (parsed with prometheus_client), readiness, active health checks, passive
/// ejection and in-process reloads.
final class OperationsTests: GatewayTestCase {
    override class var backendName: String { "a" }


    private func admin(_ path: String, method: String = "GET", headers: [String] = ["Host: 127.0.0.1"]) async throws -> TestClient.Response {
        let client = try await TestClient.connect(port: gateway.adminPort, tls: nil)
        defer { Task { await client.close() } }
        let lines = headers.map { $0 + "\r\n" }.joined()
        try await client.send("\(method) \(path) HTTP/1.1\r\n\(lines)Content-Length: 0\r\n\r\n")
        let v1 = await client.readResponse()
        return try XCTUnwrap(v1, "admin \(method) \(path) answered")
    }

    private func metrics() async throws -> MetricSamples {
        let response = try await admin("/metrics")
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        return try MetricSamples(exposition: response.text)
    }

    private func listenerYAML(plugins: String = "", backendName: String = "app") -> String {
        """
        admin: { address: "127.0.0.1:0" }
        listeners:
          - name: mtls
            address: "127.0.0.1:0"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: required
              client_ca: ca.pem
            \(plugins)
            routes: [ { match: { path_prefix: /missing }, backend: nowhere }, { backend: \(backendName) } ]
        """
    }

    func testMetricsCountTheTrafficSent() async throws {
        let tagger = try PluginFixtures.build("tagger")
        gateway = try await GatewayHarness(yaml: listenerYAML(plugins: "plugins: [ { library: \(tagger), config: { tag: m1 } } ]") + """

            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
              - { name: nowhere, servers: [ { address: "127.0.0.1:\(try unusedPort())" } ] }
            """, in: pki.directory)
        let port = gateway.port("mtls")
        // 3 connections x 7 keep-alive requests = 21 answered 2xx; 2 requests to a dead backend: 502.
        for _ in 0..<3 {
            let client = try await TestClient.connect(port: port, tls: tls("valid"))
            for _ in 0..<7 {
                try await client.send("GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n")
                let response = await client.readResponse()
                XCTAssertEqual(response?.status, 200)
            }
            await client.close()
        }
        for _ in 0..<2 {
            let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/missing")
            XCTAssertEqual(response?.status, 502)
        }
        // Refused handshakes: 3 from another CA, 2 without a certificate, 1 expired.
        for (client, count) in [("other-ca", 3), (nil, 2), ("expired", 1)] as [(String?, Int)] {
            for _ in 0..<count { _ = try? await TestClient.get(port: port, tls: tls(client)) }
        }
        let m = try await metrics()
        let l = ["listener": "mtls"]
        XCTAssertEqual(m.value("gateway_requests_total", l.merging(["status_class": "2xx"]) { $1 }), 21)
        XCTAssertEqual(m.value("gateway_requests_total", l.merging(["status_class": "5xx"]) { $1 }), 2)
        XCTAssertEqual(m.value("gateway_requests_total", l.merging(["status_class": "4xx"]) { $1 }), 0)
        XCTAssertEqual(m.value("gateway_request_duration_seconds_count", l), 23)
        XCTAssertEqual(m.value("gateway_tls_handshakes_total", l.merging(["result": "success"]) { $1 }), 5)
        XCTAssertEqual(m.value("gateway_tls_handshakes_total", l.merging(["result": "failure", "reason": "unknown_ca"]) { $1 }), 3)
        XCTAssertEqual(m.value("gateway_tls_handshakes_total", l.merging(["result": "failure", "reason": "no_certificate"]) { $1 }), 2)
        XCTAssertEqual(m.value("gateway_tls_handshakes_total", l.merging(["result": "failure", "reason": "certificate_expired"]) { $1 }), 1)
        XCTAssertEqual(m.value("gateway_connections_accepted_total", l), 11)
        XCTAssertEqual(m.value("gateway_backend_connect_errors_total", ["backend": "nowhere"]), 2)
        let serverDays = try XCTUnwrap(m.value("gateway_certificate_expiry_days", l.merging(["kind": "server_certificate"]) { $1 }))
        XCTAssertTrue(serverDays > 89 && serverDays < 91, "the test server certificate is valid for 90 days: \(serverDays)")
        XCTAssertNotNil(m.value("gateway_certificate_expiry_days", l.merging(["kind": "client_ca"]) { $1 }))
        XCTAssertNil(m.value("gateway_crl_next_update_seconds", l), "no CRL on this listener")
        XCTAssertEqual(m.value("gateway_config_last_reload_success"), 1)
        XCTAssertEqual(m.value("gateway_backend_server_healthy", ["backend": "app"]), 1)
        // The tagger plugin counts requests through metric_define/metric_record.
        XCTAssertEqual(m.value("gateway_plugin_tagger_requests_total", ["plugin": "tagger", "listener": "mtls"]), 23)
    }

    func testAdminEndpoints() async throws {
        let tagger = try PluginFixtures.build("tagger")
        gateway = try await GatewayHarness(yaml: listenerYAML(plugins: "plugins: [ { library: \(tagger), config: { tag: p1, api_token: hunter2 } } ]") + """

            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
              - { name: nowhere, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
        let health = try await admin("/healthz")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.text, "ok\n")
        let ready = try await admin("/readyz")
        XCTAssertEqual(ready.status, 200, ready.text)

        let config = try await admin("/config")
        XCTAssertEqual(config.status, 200)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(config.body)) as? [String: Any])
        let listener = try XCTUnwrap((json["listeners"] as? [[String: Any]])?.first)
        let plugin = try XCTUnwrap((listener["plugins"] as? [[String: Any]])?.first)
        let pluginConfig = try XCTUnwrap(plugin["config"] as? [String: Any])
        XCTAssertEqual(pluginConfig["api_token"] as? String, "<redacted>")
        XCTAssertEqual(pluginConfig["tag"] as? String, "p1")
        XCTAssertFalse(config.text.contains("hunter2"))
        XCTAssertEqual(json["shutdown_timeout"] as? String, "30s", "defaults are filled in")
        XCTAssertEqual((listener["limits"] as? [String: Any])?["idle_timeout"] as? String, "60s")

        let plugins = try await admin("/plugins")
        XCTAssertEqual(plugins.status, 200)
        let chains = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(plugins.body)) as? [String: Any])?["listeners"] as? [String: Any])
        XCTAssertEqual((chains["mtls"] as? [[String: Any]])?.first?["plugin"] as? String, "tagger")

        let v2 = try await admin("/nope").status
        XCTAssertEqual(v2, 404)
        let v3 = try await admin("/metrics", method: "POST").status
        XCTAssertEqual(v3, 405)
        let v4 = try await admin("/reload", method: "GET").status
        XCTAssertEqual(v4, 405)
        let reload = try await admin("/reload", method: "POST")
        XCTAssertEqual(reload.status, 200, reload.text)
        XCTAssertTrue(reload.text.contains("\"success\" : true"), reload.text)
    }

    func testTheAdminListenerRefusesWebPagesAndRebindingNames() async throws {
        // Before: no Host or Origin check, so a page on the gateway's host could POST /reload, and a DNS
        // rebinding name could read /config.
        gateway = try await GatewayHarness(yaml: listenerYAML() + """

            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
              - { name: nowhere, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
        let port = gateway.adminPort
        let rebinding = try await admin("/config", headers: ["Host: attacker.example:\(port)"])
        XCTAssertEqual(rebinding.status, 421, rebinding.text)
        XCTAssertFalse(rebinding.text.contains("listeners"))
        let wrongPort = try await admin("/config", headers: ["Host: 127.0.0.1:1"])
        XCTAssertEqual(wrongPort.status, 421)
        let reloadsBefore = try await metrics().value("gateway_config_reloads_total", ["result": "success"]) ?? 0
        for origin in ["Origin: http://attacker.example", "Origin: null", "Sec-Fetch-Site: cross-site",
                       "Origin: http://192.168.1.50:\(port)", "Origin: http://localhost", "Origin: https://127.0.0.1:\(port + 1)"] {
            let refused = try await admin("/reload", method: "POST", headers: ["Host: 127.0.0.1:\(port)", origin])
            XCTAssertEqual(refused.status, 403, "\(origin): \(refused.text)")
        }
        let reloadsAfter = try await metrics().value("gateway_config_reloads_total", ["result": "success"]) ?? 0
        XCTAssertEqual(reloadsAfter, reloadsBefore, "no refused POST reloaded")
        for headers in [["Host: localhost:\(port)"], ["Host: 127.0.0.1:\(port)", "Origin: http://127.0.0.1:\(port)"], []] {
            let allowed = try await admin("/reload", method: "POST", headers: headers)
            XCTAssertEqual(allowed.status, 200, "\(headers): \(allowed.text)")
        }
        let readable = try await admin("/healthz", headers: ["Host: [::1]:\(port)"])
        XCTAssertEqual(readable.status, 200)
    }

    func testHealthChecksRemoveAndRestoreAServerAndReadinessFollows() async throws {
        let second = TestBackend(name: "b")
        try await second.start()
        defer { Task { await second.stop() } }
        gateway = try await GatewayHarness(yaml: listenerYAML() + """

            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" }, { address: "127.0.0.1:\(second.port)" } ]
                health_check: { path: /healthz, interval: 100ms, timeout: 100ms, healthy: 2, unhealthy: 2 }
              - { name: nowhere, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
        let port = gateway.port("mtls")
        func answeredBy(_ count: Int) async throws -> [String: Int] {
            var seen: [String: Int] = [:]
            for _ in 0..<count {
                let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/x")
                seen[response?.header("x-backend") ?? "status \(response?.status ?? 0)", default: 0] += 1
            }
            return seen
        }
        let before = try await answeredBy(10)
        XCTAssertEqual(before["a"], 5)
        XCTAssertEqual(before["b"], 5)

        backend.healthy.withLockedValue { $0 = false }
        let v5 = await gateway.logs.waitFor { $0.message.contains("backend server unhealthy") && $0.metadata["server"] == "127.0.0.1:\(self.backend.port)" }
        XCTAssertNotNil(v5)
        let during = try await answeredBy(10)
        XCTAssertEqual(during, ["b": 10], "an unhealthy server gets no traffic")
        let v6 = try await metrics().value("gateway_backend_server_healthy", ["backend": "app", "server": "127.0.0.1:\(backend.port)"])
        XCTAssertEqual(v6, 0)
        let v7 = try await admin("/readyz").status
        XCTAssertEqual(v7, 200, "one server of app is still in rotation")

        second.healthy.withLockedValue { $0 = false }
        let v8 = await gateway.logs.waitFor { $0.message.contains("backend server unhealthy") && $0.metadata["server"] == "127.0.0.1:\(second.port)" }
        XCTAssertNotNil(v8)
        let notReady = try await admin("/readyz")
        XCTAssertEqual(notReady.status, 503)
        XCTAssertTrue(notReady.text.contains("backend 'app' has no server in rotation"), notReady.text)
        let none = try await TestClient.get(port: port, tls: tls("valid"), path: "/x")
        XCTAssertEqual(none?.status, 503)
        XCTAssertEqual(none?.text, "no healthy server in backend 'app'\n")

        backend.healthy.withLockedValue { $0 = true }
        second.healthy.withLockedValue { $0 = true }
        let v9 = await gateway.logs.waitFor { $0.message.contains("healthy again") && $0.metadata["server"] == "127.0.0.1:\(self.backend.port)" }
        XCTAssertNotNil(v9)
        let v10 = await gateway.logs.waitFor { $0.message.contains("healthy again") && $0.metadata["server"] == "127.0.0.1:\(second.port)" }
        XCTAssertNotNil(v10)
        let v11 = try await admin("/readyz").status
        XCTAssertEqual(v11, 200)
        let after = try await answeredBy(10)
        XCTAssertEqual(after["a"], 5)
        XCTAssertEqual(after["b"], 5)
        XCTAssertTrue(backend.requests.allSatisfy { $0.head.uri != "/healthz" }, "probes are not proxied traffic")
    }

    func testPassiveEjectionSkipsAFailingServerAndRecovers() async throws {
        let dead = try unusedPort()
        gateway = try await GatewayHarness(yaml: listenerYAML() + """

            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(dead)" }, { address: "127.0.0.1:\(backend.port)" } ]
                passive_health: { consecutive_failures: 2, eject_for: 1s }
              - { name: nowhere, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
        let port = gateway.port("mtls")
        for _ in 0..<8 {
            let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/x")
            XCTAssertEqual(response?.status, 200, "a refused connection moves on to the next server")
        }
        func connectFailures() -> Int { gateway.logs.all.filter { $0.message == "backend connect failed" }.count }
        XCTAssertEqual(connectFailures(), 2, "after two failures in a row the dead server is ejected and not tried again")
        XCTAssertEqual(gateway.logs.all.filter { $0.message.contains("ejected") }.count, 1)
        let m = try await metrics()
        XCTAssertEqual(m.value("gateway_backend_ejections_total", ["server": "127.0.0.1:\(dead)"]), 1)
        XCTAssertEqual(m.value("gateway_backend_server_healthy", ["server": "127.0.0.1:\(dead)"]), 0)
        // After eject_for the server is tried again (and, still dead, ejected again after two more failures).
        try await Task.sleep(nanoseconds: 1_200_000_000)
        for _ in 0..<6 {
            let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/x")
            XCTAssertEqual(response?.status, 200)
        }
        XCTAssertEqual(connectFailures(), 4)
    }

    func testReloadSwapsConfigurationForNewConnectionsAndKeepsOpenOnes() async throws {
        let second = TestBackend(name: "b")
        try await second.start()
        defer { Task { await second.stop() } }
        let tagger = try PluginFixtures.build("tagger")
        func yaml(backend name: String, tag: String) -> String {
            listenerYAML(plugins: "plugins: [ { library: \(tagger), config: { tag: \(tag) } } ]", backendName: name) + """

                backends:
                  - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
                  - { name: other, servers: [ { address: "127.0.0.1:\(second.port)" } ] }
                  - { name: nowhere, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
                """
        }
        gateway = try await GatewayHarness(yaml: yaml(backend: "app", tag: "old"), in: pki.directory)
        let port = gateway.port("mtls")
        let open = try await TestClient.connect(port: port, tls: tls("valid"))
        try await open.send("GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let first = await open.readResponse()
        XCTAssertEqual(first?.header("x-backend"), "a")

        let outcome = await gateway.reload(yaml: yaml(backend: "other", tag: "new"))
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        XCTAssertEqual(gateway.port("mtls"), port, "an unchanged listener keeps its socket")
        let v12 = await gateway.logs.waitFor { $0.message.contains("tagger new created") }
        XCTAssertNotNil(v12, "new instances are created by the reload")
        XCTAssertNil(gateway.logs.all.first { $0.message.contains("tagger old destroyed") }, "old instances live while their connection is open")

        // The open connection's next request runs on the new configuration: its routes and its plugin chain,
        // and the connection stays open.
        try await open.send("GET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let second2 = await open.readResponse()
        XCTAssertEqual(second2?.header("x-backend"), "b")
        XCTAssertEqual(second2?.header("x-new-response"), "1")
        XCTAssertNil(second2?.header("x-old-response"))
        XCTAssertNil(second2?.header("connection"))
        let v14 = await gateway.logs.waitFor { $0.message.contains("tagger old destroyed") }
        XCTAssertNotNil(v14, "destroyed once its last connection moved on")
        try await open.send("GET /2b HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let third = await open.readResponse()
        XCTAssertEqual(third?.header("x-backend"), "b")
        await open.close()

        let fresh = try await TestClient.get(port: port, tls: tls("valid"), path: "/3")
        XCTAssertEqual(fresh?.header("x-backend"), "b", "new connections use the new routes")

        // A broken configuration changes nothing and names every problem.
        let broken = await gateway.reload(yaml: yaml(backend: "missing", tag: "bad").replacingOccurrences(of: "server.key", with: "absent.key"))
        XCTAssertFalse(broken.success)
        XCTAssertTrue(broken.errors.contains { $0.contains("listeners[0].routes[1].backend") }, "\(broken.errors)")
        XCTAssertTrue(broken.errors.contains { $0.contains("listeners[0].tls.certificates[0].key") }, "\(broken.errors)")
        let still = try await TestClient.get(port: port, tls: tls("valid"), path: "/4")
        XCTAssertEqual(still?.header("x-backend"), "b")
        let m = try await metrics()
        XCTAssertEqual(m.value("gateway_config_reloads_total", ["result": "success"]), 1)
        XCTAssertEqual(m.value("gateway_config_reloads_total", ["result": "failure"]), 1)
        XCTAssertEqual(m.value("gateway_config_last_reload_success"), 0)
        XCTAssertEqual(m.value("gateway_requests_total", ["listener": "mtls", "status_class": "2xx"]), 5, "counters survive reloads")
    }
}
