import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// `watch: true` with the real process (unprivileged): the server certificate rotated the way a Kubernetes
/// Secret is updated (files are symlinks through `..data`, a directory symlink swapped atomically) is served
/// without a signal; a broken file in between changes nothing, and the next good one is picked up.
final class FileWatchTests: GatewayTestCase {
    private var secret: String { pki.path("secret") }

    /// Writes a `..<version>` directory with `server.pem`/`server.key` (and `ca.pem` when given) and points
    /// `..data` at it atomically.
    private func publish(_ version: String, certificate: String, key: String, clientCA: String? = nil) throws {
        let directory = "\(secret)/..\(version)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try certificate.write(toFile: "\(directory)/server.pem", atomically: true, encoding: .utf8)
        try key.write(toFile: "\(directory)/server.key", atomically: true, encoding: .utf8)
        if let clientCA { try clientCA.write(toFile: "\(directory)/ca.pem", atomically: true, encoding: .utf8) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(directory)/server.key")
        try? FileManager.default.removeItem(atPath: "\(secret)/..data_tmp")
        try FileManager.default.createSymbolicLink(atPath: "\(secret)/..data_tmp", withDestinationPath: "..\(version)")
        try Unprivileged.handOver(pki.directory)
        XCTAssertEqual(rename("\(secret)/..data_tmp", "\(secret)/..data"), 0, "rename: \(errno)")
    }

    private func serverCertificate() throws -> IssuedCertificate {
        let f = CertificateFactory.self
        return try f.makeLeaf(f.name(commonName: "localhost"), issuer: pki.rootCA, dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], usages: [.serverAuth])
    }

    /// The serial of the certificate the gateway serves now (openssl s_client, with the client certificate).
    private func servedSerial(port: Int) throws -> String {
        let script = "openssl s_client -connect 127.0.0.1:\(port) -servername localhost -cert '\(pki.path("valid.pem"))' -key '\(pki.path("valid.key"))' </dev/null 2>/dev/null | openssl x509 -noout -serial"
        return try GatewayProcess.runCommand("/bin/sh", ["-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func serial(_ certificate: IssuedCertificate) throws -> String {
        let file = pki.path("serial-\(UUID().uuidString).pem")
        try certificate.certificatePEM.write(toFile: file, atomically: true, encoding: .utf8)
        return try GatewayProcess.runCommand("/usr/bin/openssl", ["x509", "-in", file, "-noout", "-serial"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func waitForSerial(_ expected: String, port: Int, timeout: TimeInterval = 15) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var served = ""
        while Date() < deadline {
            served = try servedSerial(port: port)
            if served == expected { return served }
            try await Task.sleep(nanoseconds: 200_000_000)
        }
        return served
    }

    func testAKubernetesStyleRotationIsServedWithoutASignalAndABrokenFileChangesNothing() async throws {
        let first = try serverCertificate(), second = try serverCertificate(), third = try serverCertificate()
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        try publish("2026_01", certificate: first.certificatePEM, key: first.privateKeyPEM)
        try FileManager.default.createSymbolicLink(atPath: "\(secret)/server.pem", withDestinationPath: "..data/server.pem")
        try FileManager.default.createSymbolicLink(atPath: "\(secret)/server.key", withDestinationPath: "..data/server.key")
        let port = try unusedPort(), adminPort = try unusedPort()
        let running = try await runGateway("""
            watch: true
            watch_interval: 200ms
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: mtls
                address: "127.0.0.1:\(port)"
                tls:
                  certificates: [ { cert: secret/server.pem, key: secret/server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, name: "watch", adminPort: adminPort)
        defer { _ = running.terminate() }
        let firstServed = try servedSerial(port: port)
        XCTAssertEqual(firstServed, try serial(first))

        try publish("2026_02", certificate: second.certificatePEM, key: second.privateKeyPEM)
        let secondServed = try await waitForSerial(try serial(second), port: port)
        XCTAssertEqual(secondServed, try serial(second), "the rotated certificate is served without a signal")
        let logged = await running.waitForLog("watched files changed: reloading")
        XCTAssertTrue(logged, running.log)

        // Half-written: a certificate cut short. The reload fails, the second certificate stays.
        try publish("2026_03", certificate: String(third.certificatePEM.prefix(200)), key: third.privateKeyPEM)
        let failed = await running.waitForLog("reload after a file change failed")
        XCTAssertTrue(failed, running.log)
        let stillServed = try servedSerial(port: port)
        XCTAssertEqual(stillServed, try serial(second))
        let metrics = try await TestClient.get(port: adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        XCTAssertTrue(metrics?.text.contains(#"gateway_config_reloads_total{result="failure"} 1"#) ?? false, metrics?.text ?? "no metrics")

        // The next good one is picked up.
        try publish("2026_04", certificate: third.certificatePEM, key: third.privateKeyPEM)
        let thirdServed = try await waitForSerial(try serial(third), port: port)
        XCTAssertEqual(thirdServed, try serial(third))
        let response = try await TestClient.get(port: port, tls: tls("valid"), path: "/after")
        XCTAssertEqual(response?.status, 200)
    }

    /// Under load (keep-alive clients that also reconnect, for 10 s), the server certificate and the client CA
    /// bundle rotated through the `..data` swap every second, with a broken version in the middle: no request
    /// fails, new handshakes see the new certificates, the broken version changes nothing.
    func testRotationEverySecondUnderLoadFailsNoRequest() async throws {
        try FileManager.default.createDirectory(atPath: secret, withIntermediateDirectories: true)
        // Every bundle trusts the clients' root; every other one adds the other CA.
        func bundle(_ index: Int) -> String { pki.rootCA.certificatePEM + (index % 2 == 1 ? pki.otherCA.certificatePEM : "") }
        let certificates = try (0..<10).map { _ in try serverCertificate() }
        try publish("v0", certificate: certificates[0].certificatePEM, key: certificates[0].privateKeyPEM, clientCA: bundle(0))
        for file in ["server.pem", "server.key", "ca.pem"] {
            try FileManager.default.createSymbolicLink(atPath: "\(secret)/\(file)", withDestinationPath: "..data/\(file)")
        }
        let port = try unusedPort(), adminPort = try unusedPort()
        let running = try await runGateway("""
            watch: true
            watch_interval: 200ms
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: mtls
                address: "127.0.0.1:\(port)"
                tls:
                  certificates: [ { cert: secret/server.pem, key: secret/server.key } ]
                  client_auth: required
                  client_ca: secret/ca.pem
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, name: "rotation", adminPort: adminPort)
        defer { _ = running.terminate() }
        let load = try PythonHelper.start("loadgen.py", [
            "--port", "\(port)", "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--processes", "3", "--threads", "6", "--duration", "10", "--path", "/rotation", "--requests-per-connection", "30",
        ])
        for index in 1..<10 {
            try await Task.sleep(nanoseconds: 1_000_000_000)
            if index == 5 {
                // Half-written: the certificate cut short. Nothing changes until the next good version.
                try publish("v\(index)", certificate: String(certificates[index].certificatePEM.prefix(200)), key: certificates[index].privateKeyPEM, clientCA: bundle(index))
            } else {
                try publish("v\(index)", certificate: certificates[index].certificatePEM, key: certificates[index].privateKeyPEM, clientCA: bundle(index))
            }
        }
        let result = try XCTUnwrap(try PythonHelper.finish(load) as? [String: Any])
        let failures = result["failures"] as? [String] ?? ["no result"]
        let requests = result["requests"] as? Int ?? 0
        let serials = result["serials"] as? [String: Int] ?? [:]
        print("rotation under load: \(requests) requests in 10 s, statuses \(result["statuses"] ?? "?"), \(serials.count) server certificates seen")
        XCTAssertEqual(failures, [], "no request failed during the rotations")
        XCTAssertEqual(result["statuses"] as? [String: Int], ["200": requests], "every answer was a 200")
        XCTAssertGreaterThan(requests, 300)
        XCTAssertGreaterThanOrEqual(serials.count, 4, "new handshakes saw the rotated certificates")
        let lastServed = try await waitForSerial(try serial(certificates[9]), port: port)
        XCTAssertEqual(lastServed, try serial(certificates[9]))
        let metrics = try await TestClient.get(port: adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        let m = try MetricSamples(exposition: metrics?.text ?? "")
        XCTAssertGreaterThanOrEqual(m.value("gateway_config_reloads_total", ["result": "success"]) ?? 0, 5)
        XCTAssertGreaterThanOrEqual(m.value("gateway_config_reloads_total", ["result": "failure"]) ?? 0, 1, running.log)
    }
}
