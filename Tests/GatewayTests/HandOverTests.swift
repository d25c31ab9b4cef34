import Foundation
import XCTest

/// `reuse_port`: a new gateway process binds the port the old one still serves, and the old one drains, under
/// keep-alive load, without a failed request. Both run as nobody (Linux shares a SO_REUSEPORT address only
/// between sockets of the same user).
final class HandOverTests: GatewayTestCase {
    private func config(port: Int, admin: Int, audit: String, reusePort: Bool = true) -> String {
        """
        drain_delay: 1s
        shutdown_timeout: 5s
        admin: { address: "127.0.0.1:\(admin)" }
        listeners:
          - name: handover
            address: "127.0.0.1:\(port)"
            reuse_port: \(reusePort)
            tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
            plugins: [ { library: libAudit.so, config: { path: \(audit) } } ]
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
        """
    }

    private func lines(_ path: String) -> Int {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").filter { $0.contains("\"path\":\"/load\"") }.count
    }

    func testANewProcessTakesOverThePortWhileTheOldOneDrains() async throws {
        let port = try unusedPort(), oldAdmin = try unusedPort(), newAdmin = try unusedPort(), strayAdmin = try unusedPort()
        let oldAudit = pki.path("old-audit.log"), newAudit = pki.path("new-audit.log")
        let old = try await runGateway(config(port: port, admin: oldAdmin, audit: oldAudit), name: "old", adminPort: oldAdmin)

        // Without reuse_port the port cannot be shared: that gateway does not start, and says why.
        do {
            let stray = try await runGateway(config(port: port, admin: strayAdmin, audit: pki.path("stray-audit.log"), reusePort: false), name: "stray", adminPort: strayAdmin)
            XCTFail("a second gateway without reuse_port started on a port in use")
            _ = stray.terminate()
        } catch {
            let log = (try? String(contentsOfFile: pki.path("stray.log"), encoding: .utf8)) ?? ""
            XCTAssertTrue("\(error)\(log)".lowercased().contains("address already in use"), "\(error)")
        }

        let load = try PythonHelper.start("loadgen.py", [
            "--port", "\(port)", "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--processes", "2", "--threads", "4", "--duration", "8", "--path", "/load",
        ])
        try await Task.sleep(nanoseconds: 1_500_000_000)
        let new = try await runGateway(config(port: port, admin: newAdmin, audit: newAudit), name: "new", adminPort: newAdmin)
        try await Task.sleep(nanoseconds: 500_000_000)
        XCTAssertEqual(old.terminate(), 0, "the old gateway drains and exits 0")
        let result = try PythonHelper.finish(load) as? [String: Any] ?? [:]
        let failures = result["failures"] as? [String] ?? ["no result"]
        let requests = result["requests"] as? Int ?? 0
        print("hand-over: \(requests) requests, statuses \(result["statuses"] ?? [:]), failures \(failures.count); old served \(lines(oldAudit)), new \(lines(newAudit))")
        XCTAssertEqual(failures, [], "no request may fail while the new process takes over")
        XCTAssertEqual(result["statuses"] as? [String: Int], ["200": requests])
        XCTAssertEqual(new.terminate(), 0)
        XCTAssertGreaterThan(lines(oldAudit), 0)
        XCTAssertGreaterThan(lines(newAudit), 0, "the new process served once the old one left")
        XCTAssertEqual(lines(oldAudit) + lines(newAudit), requests)
    }
}
