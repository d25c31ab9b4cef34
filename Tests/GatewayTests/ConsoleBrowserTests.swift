import Foundation
import XCTest

/// The operator's console in a real browser: Debian's Chromium driven by Playwright for Python
/// (python/console_browser.py), against the real `gateway run` as the unprivileged user, after real mTLS
/// traffic. scripts/test installs both; a machine without them fails here rather than skipping.
/// `CONSOLE_SCREENSHOTS=DIR` keeps the screenshots of each view, and `CONSOLE_TRAFFIC_SECONDS=N` sends N seconds
/// of varied traffic first (docs/images/ holds screenshots taken with both).
final class ConsoleBrowserTests: GatewayTestCase {
    private func browser(_ arguments: [String]) throws -> [String: Any] {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") else {
            throw PluginFixtures.FixtureError(message: "no /usr/bin/chromium: apt-get install chromium (scripts/test does)")
        }
        let run = try PythonHelper.capture("console_browser.py", arguments)
        let result = (try? JSONSerialization.jsonObject(with: run.stdout) as? [String: Any]) ?? [:]
        XCTAssertEqual(run.status, 0, "console_browser.py: \(String(decoding: run.stdout, as: UTF8.self)) \(run.stderr)")
        return result
    }

    func testEveryViewShowsTheTrafficAndTheReloadButtonShowsKeyPathErrors() async throws {
        let authz = try ConsoleTests.authz(named: "authz")
        let (port, adminPort) = (try unusedPort(), try unusedPort())
        let yaml = consoleConfig(listenerPort: port, adminPort: adminPort, authz: authz)
        let running = try await runGateway(yaml, name: "console", adminPort: adminPort)
        try await ConsoleTests.sendTraffic(port: port, pki: pki)
        if let seconds = ProcessInfo.processInfo.environment["CONSOLE_TRAFFIC_SECONDS"].flatMap(Double.init) {
            // For the documentation's screenshots: a few minutes of varied traffic make charts worth looking at.
            try await sendVariedTraffic(port: port, seconds: seconds)
        } else {
            // Two samples of the charts (one every 5 s) make a line.
            try await Task.sleep(nanoseconds: 5_500_000_000)
        }
        let broken = pki.path("broken.yaml")
        try yaml.replacingOccurrences(of: "routes: [ { backend: app } ]", with: "routes: [ { backend: nowhere } ]")
            .write(toFile: broken, atomically: true, encoding: .utf8)
        var arguments = ["views", "--url", "http://127.0.0.1:\(adminPort)", "--config", pki.path("console.yaml"), "--broken", broken]
        if let directory = ProcessInfo.processInfo.environment["CONSOLE_SCREENSHOTS"] { arguments += ["--screenshots", directory] }
        if ProcessInfo.processInfo.environment["CONSOLE_TRAFFIC_SECONDS"] != nil { arguments.append("--varied") }
        let result = try browser(arguments)
        XCTAssertEqual(result["checks"] as? [String], ["overview", "clients", "refusals", "expiry", "plugins", "reloads"], "\(result)")
        XCTAssertTrue(running.log.contains("reload: "), "the broken reload was logged")
        XCTAssertEqual(running.terminate(), 0)
    }

    func testABrowserWithoutTheAdminCertificateGetsNoConsole() async throws {
        let authz = try ConsoleTests.authz(named: "authz")
        let (port, adminPort) = (try unusedPort(), try unusedPort())
        let yaml = consoleConfig(listenerPort: port, adminPort: adminPort, admin: "tls: { cert: server.pem, key: server.key, client_ca: [ca.pem] }", authz: authz)
        let config = pki.path("console-mtls.yaml")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let running = try RunningGateway(config: config, adminPort: adminPort, logPath: pki.path("console-mtls.log"))
        let listening = await running.waitForLog("admin listening")
        XCTAssertTrue(listening, running.log)
        let result = try browser(["mtls", "--url", "https://127.0.0.1:\(adminPort)", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key")])
        XCTAssertEqual(result["with_certificate"] as? String, "mtls-gateway console", "\(result)")
        // The same browser, the same address: without the certificate a network error (the server ends the
        // handshake; Chromium reports ERR_SOCKET_NOT_CONNECTED or an SSL error), with it the console.
        let refusal = result["without_certificate"] as? String ?? ""
        XCTAssertTrue(refusal.contains("net::ERR_"), refusal)
        XCTAssertEqual(running.terminate(), 0)
    }

    private func sendVariedTraffic(port: Int, seconds: Double) async throws {
        let end = Date().addingTimeInterval(seconds)
        var round = 0
        while Date() < end {
            round += 1
            let client = try await TestClient.connect(port: port, tls: pki.clientTLS("valid"))
            for i in 0..<(10 + (round * 7) % 60) {
                try await client.send("GET /item/\(i) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                _ = await client.readResponse()
            }
            await client.close()
            if round % 3 == 0 {
                _ = try? await TestClient.get(port: port, tls: pki.clientTLS("via-intermediate"), path: "/admin/report")
            }
            if round % 5 == 0 { _ = try? await TestClient.get(port: port, tls: pki.clientTLS("expired")) }
            if round % 7 == 0 { _ = try? await TestClient.get(port: port, tls: pki.clientTLS("other-ca")) }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
    }

    private func consoleConfig(listenerPort: Int, adminPort: Int, admin: String = "", authz: String) -> String {
        ConsoleTests.consoleConfig(pki: pki, backendPort: backend.port, listenerPort: listenerPort, adminPort: adminPort, admin: admin, authz: authz)
    }
}
