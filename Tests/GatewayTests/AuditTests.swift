import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// The bundled Audit plugin: one JSON line per request and per refused handshake, nothing lost.
final class AuditTests: GatewayTestCase {
    var auditPath: String!

    static var library: String { Bundle.main.bundleURL.appendingPathComponent("libAudit.so").path }

    override func setUp() async throws {
        try await super.setUp()
        auditPath = pki.path("audit.log")
        gateway = try await auditGateway("{ path: \(auditPath!), queue_size: 64 }", routes: "[ { match: { path_prefix: /known/ }, backend: app } ]")
    }

    /// A gateway with one mTLS listener (`mtls`) whose chain is Audit with `config` (a YAML flow mapping).
    private func auditGateway(_ config: String, routes: String = "[ { backend: app } ]") async throws -> GatewayHarness {
        try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins: [ { library: \(Self.library), config: \(config) } ]
                routes: \(routes)
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
    }

    private var mtls: TestClient.TLSOptions {
        .init(trust: [pki.path("ca.pem")], certificateChain: pki.path("valid.pem"), key: pki.path("valid.key"))
    }

    private func lines(_ path: String) throws -> [[String: Any]] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
        }
    }

    /// `connections` clients sending `perConnection` keep-alive requests each, concurrently.
    private func load(connections: Int, perConnection: Int, path: String = "/known/x") async throws {
        try await Self.load(port: gateway.port("mtls"), tls: mtls, connections: connections, perConnection: perConnection, path: path)
    }

    private static func load(port: Int, tls: TestClient.TLSOptions, connections: Int, perConnection: Int, path: String = "/known/x") async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    let client = try await TestClient.connect(port: port, tls: tls)
                    for _ in 0..<perConnection {
                        try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        let response = await client.readResponse()
                        XCTAssertNotNil(response)
                    }
                    await client.close()
                }
            }
            try await group.waitForAll()
        }
    }

    func testEveryRequestAndRejectionIsWrittenExactlyOnce() async throws {
        try await load(connections: 50, perConnection: 400)
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: mtls, path: "/unknown")
        var expired = mtls
        expired.certificateChain = pki.path("expired.pem")
        expired.key = pki.path("expired.key")
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: expired)
        await gateway.stop()  // destroy flushes every queued line
        gateway = nil

        let all = try lines(auditPath)
        let requests = all.filter { $0["event"] as? String == "request" }
        XCTAssertEqual(requests.count, 20_001)
        let forwarded = requests.filter { $0["decision"] as? String == "forwarded" }
        XCTAssertEqual(forwarded.count, 20_000)
        XCTAssertEqual(Set(requests.compactMap { $0["request_id"] as? Int }).count, 20_001, "request ids are unique")
        XCTAssertTrue(forwarded.allSatisfy { $0["subject"] as? String == "CN=valid-client,OU=ops,O=Test,C=US" && $0["status"] as? Int == 200 })
        let sample = try XCTUnwrap(forwarded.first)
        XCTAssertEqual(sample["subject"] as? String, "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertEqual(sample["issuer"] as? String, "CN=Test Root CA,O=Test,C=US")
        XCTAssertEqual(sample["status"] as? Int, 200)
        XCTAssertEqual(sample["method"] as? String, "GET")
        XCTAssertEqual(sample["path"] as? String, "/known/x")
        XCTAssertEqual(sample["tls_version"] as? String, "TLSv1.3")
        XCTAssertEqual(sample["backend_server"] as? String, "127.0.0.1:\(backend.port)")
        XCTAssertEqual(sample["sans"] as? [String], ["DNS:client.test", "URI:spiffe://test/ns/ops/sa/valid", "email:valid@test"])
        let time = try XCTUnwrap(sample["time"] as? String)
        XCTAssertNotNil(time.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$"#, options: .regularExpression), time)
        let duration = try XCTUnwrap(sample["duration_ms"] as? Double, "duration_ms is a JSON number: \(sample)")
        XCTAssertTrue(duration >= 0 && duration < 10_000, "\(duration)")
        XCTAssertEqual(sample["bytes_in"] as? Int, 0)
        XCTAssertEqual(sample["decision"] as? String, "forwarded")
        let notFound = try XCTUnwrap(requests.first { $0["status"] as? Int == 404 })
        XCTAssertEqual(notFound["decision"] as? String, "answered_by_gateway")
        let rejected = try XCTUnwrap(all.first { $0["event"] as? String == "handshake_rejected" })
        XCTAssertEqual(rejected["reason"] as? String, "certificate_expired")
        XCTAssertEqual(rejected["subject"] as? String, "CN=expired-client,C=US")
        XCTAssertTrue((rejected["detail"] as? String)?.contains("expired at") ?? false)
    }

    /// Without `fields`, a request line holds every request field but `ja3` (the forwarded request: no
    /// answered_by, reason or flags); with it, each line holds `time`, `event` and exactly the listed fields
    /// its event has.
    func testFieldsSelectWhatEachLineHolds() async throws {
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: mtls, path: "/known/all")
        await gateway.stop()
        let all = try lines(auditPath).filter { $0["event"] as? String == "request" }
        XCTAssertEqual(all.count, 1)
        let order = [
            "time", "event", "request_id", "listener", "client_address", "client_port", "tls_version", "tls_cipher", "ja4", "subject",
            "issuer", "serial", "fingerprint", "sans", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_ms",
            "backend_server", "decision",
        ]
        XCTAssertEqual(Set(all.first?.keys.map { $0 } ?? []), Set(order))
        // In the documented order (docs/bundled-plugins.md): each key after the one before it in the line's text.
        let text = try XCTUnwrap(try String(contentsOfFile: auditPath, encoding: .utf8).split(separator: "\n").first { $0.contains("\"event\":\"request\"") })
        let places = order.map { key in text.range(of: "\"\(key)\":").map { text.distance(from: text.startIndex, to: $0.lowerBound) } ?? -1 }
        XCTAssertEqual(places, places.sorted(), "keys in order: \(text)")
        XCTAssertFalse(places.contains(-1))

        let selected = pki.path("selected.log")
        gateway = try await auditGateway(
            "{ path: \(selected), events: [ request, handshake_rejected ], fields: [ request_id, status, sans, ja3, sni, reason, detail ] }"
        )
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: mtls, path: "/x")
        var expired = mtls
        expired.certificateChain = pki.path("expired.pem")
        expired.key = pki.path("expired.key")
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: expired)
        await gateway.stop()
        gateway = nil
        let written = try lines(selected)
        let request = try XCTUnwrap(written.first { $0["event"] as? String == "request" })
        XCTAssertEqual(Set(request.keys), ["time", "event", "request_id", "status", "sans", "ja3"])
        XCTAssertEqual(request["sans"] as? [String], ["DNS:client.test", "URI:spiffe://test/ns/ops/sa/valid", "email:valid@test"])
        let rejected = try XCTUnwrap(written.first { $0["event"] as? String == "handshake_rejected" })
        XCTAssertEqual(Set(rejected.keys), ["time", "event", "sni", "ja3", "reason", "detail"])
        XCTAssertEqual(rejected["reason"] as? String, "certificate_expired")
    }

    func testRenameAndReopenLosesNoLine() async throws {
        try await load(connections: 5, perConnection: 40)
        // logrotate: rename, then signal (SIGHUP asks every plugin to reopen its files).
        try await Task.sleep(nanoseconds: 200_000_000)
        try FileManager.default.moveItem(atPath: auditPath, toPath: auditPath + ".1")
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (port, tls, gateway) = (gateway.port("mtls"), mtls, gateway!)
            group.addTask { try await Self.load(port: port, tls: tls, connections: 5, perConnection: 40) }
            group.addTask {
                try await Task.sleep(nanoseconds: 20_000_000)
                gateway.reopenPlugins()
            }
            try await group.waitForAll()
        }
        try await load(connections: 5, perConnection: 40)
        await gateway.stop()
        gateway = nil
        let old = try lines(auditPath + ".1"), new = try lines(auditPath)
        XCTAssertEqual(old.count + new.count, 600)
        XCTAssertGreaterThan(new.count, 0, "lines after the reopen go to the new file")
    }

    func testSizeRotationKeepsEveryLine() async throws {
        await gateway.stop()
        let path = pki.path("rotating.log")
        gateway = try await auditGateway("{ path: \(path), max_size: 20000, max_files: 50, fsync: always }")
        try await load(connections: 4, perConnection: 50)
        await gateway.stop()
        gateway = nil
        var total = try lines(path).count
        var rotated = 0
        for n in 1...50 where FileManager.default.fileExists(atPath: "\(path).\(n)") {
            rotated += 1
            total += try lines("\(path).\(n)").count
            let size = try FileManager.default.attributesOfItem(atPath: "\(path).\(n)")[.size] as? Int ?? 0
            XCTAssertLessThanOrEqual(size, 20000 + 4096, "a rotated file stays near max_size")
        }
        XCTAssertGreaterThan(rotated, 1)
        XCTAssertEqual(total, 200)
    }

    func testSIGHUPReopenWithTheRealProcess() async throws {
        await gateway?.stop()
        gateway = nil
        let path = pki.path("signal.log")
        let port = try unusedPort()
        let config = pki.path("signal.yaml")
        try """
            listeners:
              - name: mtls
                address: "127.0.0.1:\(port)"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins: [ { library: libAudit.so, config: { path: \(path) } } ]
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        // As the service user, the way logrotate meets it: the rotated file and the new one are that user's.
        try Unprivileged.handOver(pki.directory)
        let process = Process()
        let (executable, arguments) = Unprivileged.command(try Unprivileged.gatewayExecutable, ["run", "--config", config])
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func curl(_ count: Int) throws {
            let urls = Array(repeating: "https://localhost:\(port)/r", count: count)
            let result = try GatewayProcess.runCommand("/usr/bin/curl", [
                "-sS", "-o", "/dev/null", "--retry", "10", "--retry-connrefused", "--retry-delay", "1",
                "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"),
            ] + urls)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        try curl(30)
        usleep(300_000)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")  // logrotate: rename, then signal
        kill(process.processIdentifier, SIGHUP)
        usleep(300_000)
        try curl(30)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "SIGTERM: graceful shutdown, audit flushed, exit 0")
        XCTAssertEqual(try lines(path + ".1").count, 30)
        XCTAssertEqual(try lines(path).count, 30, "after SIGHUP the lines go to the new file")
    }

    /// A gateway whose audit file cannot take a byte (/dev/full: every write fails with ENOSPC).
    private func fullDiskGateway(_ policy: String) async throws -> GatewayHarness {
        await gateway?.stop()
        gateway = nil
        return try await GatewayHarness(yaml: mtlsConfig(adminPort: 0, plugins: [
            "{ library: \(Self.library), config: { path: /dev/full, on_write_error: \(policy), queue_size: 8, close_timeout_ms: 300 } }",
        ]), in: pki.directory)
    }

    /// `gateway_plugin_audit_queued_lines` and `gateway_plugin_audit_oldest_queued_line_timestamp_seconds`.
    private func queueGauges(_ harness: GatewayHarness) async throws -> (lines: Double, oldest: Double) {
        let response = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        let samples = try MetricSamples(exposition: response?.text ?? "")
        let labels = ["listener": "mtls", "plugin": "audit"]
        return (samples.value("gateway_plugin_audit_queued_lines", labels) ?? -1,
                samples.value("gateway_plugin_audit_oldest_queued_line_timestamp_seconds", labels) ?? -1)
    }

    private func writeErrors(_ harness: GatewayHarness) async throws -> Double {
        let response = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        return try MetricSamples(exposition: response?.text ?? "").value("gateway_plugin_audit_write_errors_total", ["listener": "mtls", "plugin": "audit"]) ?? -1
    }

    /// `on_write_error: deny` (the default): once a write fails, the listener answers 503 and forwards nothing
    /// that could not be audited; the failures are counted; the admin listener still answers although the
    /// queue is full; shutdown is bounded and the lines it could not write reach stderr, not the void.
    func testAFullDiskFailsClosed() async throws {
        let harness = try await fullDiskGateway("deny")
        gateway = harness
        var statuses: [Int] = []
        let client = try await TestClient.connect(port: harness.port("mtls"), tls: mtls)
        for _ in 0..<60 {
            try await client.send("GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")
            statuses.append(await client.readResponse()?.status ?? 0)
            if statuses.last == 503 { try await Task.sleep(nanoseconds: 20_000_000) } else { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        await client.close()
        let firstDenied = try XCTUnwrap(statuses.firstIndex(of: 503), "a request was denied once writes failed: \(statuses)")
        XCTAssertEqual(Array(statuses[firstDenied...]), Array(repeating: 503, count: statuses.count - firstDenied), "every request after the failure is denied")
        let forwarded = backend.requests.count
        XCTAssertEqual(forwarded, firstDenied, "only the requests before the first failed write reached the backend")
        let errors = try await writeErrors(harness)
        XCTAssertGreaterThan(errors, 0, "failed writes are counted")
        // The queue's gauges (ABI 1.3): lines wait, and the oldest was queued before now, so its age shows.
        let queue = try await queueGauges(harness)
        XCTAssertGreaterThan(queue.lines, 0, "lines wait for the file")
        XCTAssertGreaterThan(queue.oldest, Date().timeIntervalSince1970 - 120)
        XCTAssertLessThanOrEqual(queue.oldest, Date().timeIntervalSince1970)
        let logged = await harness.logs.waitFor { $0.message.contains("audit write to '/dev/full' failed") }
        XCTAssertNotNil(logged)
        // More lines than the queue holds were produced (60 > 8): the event loop did not block, so the
        // admin listener and the proxy kept answering (they share the loops).
        let healthy = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/healthz", host: "127.0.0.1")
        XCTAssertEqual(healthy?.status, 200)
        // Not ready while the file cannot be written (set_ready, ABI 1.3): a load balancer takes the gateway out.
        let ready = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
        XCTAssertEqual(ready?.status, 503)
        XCTAssertTrue(ready?.text.contains("plugin 'audit' on listener 'mtls' is not ready: audit log '/dev/full' cannot be written") ?? false, ready?.text ?? "")
        // A reload's new instance for the same file starts where the old one was: not ready, denying.
        let reloaded = await harness.reload()
        XCTAssertTrue(reloaded.success, "\(reloaded.errors)")
        let afterReload = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
        XCTAssertEqual(afterReload?.status, 503, "still not ready after a reload: \(afterReload?.text ?? "")")
        XCTAssertTrue(afterReload?.text.contains("could not be written before the reload") ?? false, afterReload?.text ?? "")
        let dropped = await harness.logs.waitFor(timeout: 5) { $0.message.contains("audit queue full: dropped") }
        XCTAssertNotNil(dropped, "lines that could not be queued are reported")
    }

    /// `on_write_error: allow`: requests keep flowing while the file cannot be written; the failures are
    /// counted and logged.
    func testAFullDiskWithAllowKeepsServing() async throws {
        let harness = try await fullDiskGateway("allow")
        gateway = harness
        let client = try await TestClient.connect(port: harness.port("mtls"), tls: mtls)
        for _ in 0..<20 {
            try await client.send("GET /r HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200)
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        await client.close()
        XCTAssertEqual(backend.requests.count, 20)
        let errors = try await writeErrors(harness)
        XCTAssertGreaterThan(errors, 0)
        let ready = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
        XCTAssertEqual(ready?.status, 200, "with allow, the gateway serves and stays ready: \(ready?.text ?? "")")
    }

    /// A small file system filled and then freed (tmpfs; needs root to mount, as on CI): requests are denied
    /// while the disk is full, served again once a write succeeds, and every line queued meanwhile reaches the
    /// file (the queue holds them all here).
    func testADiskThatFillsAndRecoversDeniesThenServesAndLosesNoLine() async throws {
        let mountPoint = pki.path("tmpfs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try GatewayProcess.runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mountPoint])
        try XCTSkipUnless(mounted.status == 0, "cannot mount a tmpfs here (\(mounted.stderr)); needs root")
        addTeardown { _ = try? GatewayProcess.runCommand("/bin/umount", ["-l", mountPoint]) }
        let audit = "\(mountPoint)/audit.log"
        await gateway?.stop()
        let harness = try await GatewayHarness(yaml: mtlsConfig(adminPort: 0, plugins: [
            "{ library: \(Self.library), config: { path: \(audit), fsync: always } }",
        ]), in: pki.directory)
        gateway = harness
        let client = try await TestClient.connect(port: harness.port("mtls"), tls: mtls)
        func request(_ path: String) async throws -> Int {
            try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return await client.readResponse()?.status ?? 0
        }
        let before = try await request("/before")
        XCTAssertEqual(before, 200)
        // Fill the file system to the last block.
        let filler = "\(mountPoint)/filler"
        _ = try GatewayProcess.runCommand("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=1024", "count=1024"])
        var denied = 0, served = 0
        for index in 0..<40 {
            let status = try await request("/full/\(index)")
            if status == 503 { denied += 1 } else if status == 200 { served += 1 }
            if denied >= 3 { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertGreaterThanOrEqual(denied, 3, "requests are denied while the disk is full (served \(served) first)")
        let whileFull = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
        XCTAssertEqual(whileFull?.status, 503, whileFull?.text ?? "")
        try FileManager.default.removeItem(atPath: filler)
        // The writer retries (at most 1 s apart): the next successful write lifts the denial.
        var recovered = false
        var deniedAfter = 0
        for index in 0..<60 {
            let status = try await request("/after/\(index)")
            if status == 200 { recovered = true; break }
            if status == 503 { deniedAfter += 1 }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertTrue(recovered, "requests are served again once the disk has room")
        let afterwards = try await TestClient.get(port: harness.adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
        XCTAssertEqual(afterwards?.status, 200, "ready again: \(afterwards?.text ?? "")")
        var drained = (lines: -1.0, oldest: -1.0)
        for _ in 0..<30 {
            drained = try await queueGauges(harness)
            if drained.lines == 0 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(drained.lines, 0, "the queue drains once the disk has room")
        XCTAssertEqual(drained.oldest, 0, "and no line waits")
        await client.close()
        await harness.stop()
        gateway = nil
        let written = try lines(audit)
        let paths = written.compactMap { $0["path"] as? String }
        XCTAssertTrue(paths.contains("/before"))
        XCTAssertEqual(paths.filter { $0.hasPrefix("/full/") }.count, served + denied, "every request of the full period, denied or not, is in the file")
        XCTAssertTrue(paths.contains { $0.hasPrefix("/after/") })
        let deniedLines = written.filter { $0["status"] as? Int == 503 }
        XCTAssertEqual(deniedLines.count, denied + deniedAfter, "each denial is audited")
        XCTAssertEqual(deniedLines.first?["reason"] as? String, "audit log unavailable")
        XCTAssertEqual(deniedLines.first?["decision"] as? String, "answered")
    }

    /// The real process with its audit file on /dev/full: SIGTERM ends it within the close timeout (it used to
    /// retry forever), and every line it could not write is on its stderr, prefixed.
    func testShutdownWithAFullDiskIsBoundedAndSpillsToStderr() async throws {
        await gateway?.stop()
        gateway = nil
        let port = try unusedPort(), adminPort = try unusedPort()
        let running = try await runGateway(mtlsConfig(port: port, adminPort: adminPort, plugins: [
            "{ library: libAudit.so, config: { path: /dev/full, on_write_error: allow, close_timeout_ms: 500 } }",
        ]), name: "full", adminPort: adminPort)
        let client = try await TestClient.connect(port: port, tls: mtls)
        for index in 0..<5 {
            try await client.send("GET /spill/\(index) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200)
        }
        await client.close()
        XCTAssertEqual(running.terminate(), 0, "SIGTERM ends the process although the audit file takes nothing")
        let log = running.log
        let spilled = log.split(separator: "\n").filter { $0.hasPrefix("audit-unwritten: ") }
        XCTAssertEqual(spilled.count, 5, "every unwritten line is on stderr:\n\(log)")
        for index in 0..<5 {
            XCTAssertTrue(spilled.contains { $0.contains("\"path\":\"/spill/\(index)\"") }, "line of /spill/\(index)")
        }
        XCTAssertTrue(log.contains("could not be written before shutdown: 5 line(s) written to stderr instead"), log)
    }

    /// logrotate renames the file, but the directory was made read-only meanwhile: the reopen on SIGHUP
    /// cannot create the new file, says so, and the lines keep going to the renamed one; once the directory
    /// is writable again the next SIGHUP moves them to a new file. No line is lost. (The real process as
    /// nobody: root ignores directory permissions.)
    func testAReadOnlyDirectoryAtReopenKeepsTheOldFileAndLosesNoLine() async throws {
        try XCTSkipUnless(Unprivileged.runsUnprivileged, "needs root to start the gateway as another user (root would ignore the read-only directory)")
        await gateway?.stop()
        gateway = nil
        let logDirectory = pki.path("logs")
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let path = "\(logDirectory)/audit.log"
        let port = try unusedPort(), adminPort = try unusedPort()
        let running = try await runGateway(mtlsConfig(port: port, adminPort: adminPort, plugins: [
            "{ library: libAudit.so, config: { path: \(path), fsync: always } }",
        ]), name: "readonly", adminPort: adminPort)
        // A new connection per batch: SIGHUP also reloads, and a connection of the old configuration closes
        // after its current response.
        func requests(_ prefix: String, _ count: Int) async throws {
            let client = try await TestClient.connect(port: port, tls: mtls)
            for index in 0..<count {
                try await client.send("GET /\(prefix)/\(index) HTTP/1.1\r\nHost: localhost\r\n\r\n")
                let response = await client.readResponse()
                XCTAssertEqual(response?.status, 200)
            }
            await client.close()
        }
        try await requests("first", 10)
        try await Task.sleep(nanoseconds: 300_000_000)
        try FileManager.default.moveItem(atPath: path, toPath: path + ".1")
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: logDirectory)
        running.signal(SIGHUP)
        let failed = await running.waitForLog("audit reopen failed, still writing to the old file")
        XCTAssertTrue(failed, running.log)
        try await requests("readonly", 10)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: logDirectory)
        try await Task.sleep(nanoseconds: 300_000_000)
        running.signal(SIGHUP)
        try await Task.sleep(nanoseconds: 500_000_000)
        try await requests("after", 10)
        XCTAssertEqual(running.terminate(), 0)
        let renamed = try lines(path + ".1").compactMap { $0["path"] as? String }
        let current = try lines(path).compactMap { $0["path"] as? String }
        XCTAssertEqual(renamed.filter { $0.hasPrefix("/first/") }.count, 10)
        XCTAssertEqual(renamed.filter { $0.hasPrefix("/readonly/") }.count, 10, "lines written while the directory was read-only went to the renamed file")
        XCTAssertEqual(current.filter { $0.hasPrefix("/after/") }.count, 10, "after the second SIGHUP the lines go to the new file")
        XCTAssertEqual(renamed.count + current.count, 30, "no line lost or doubled")
    }

    func testUnwritableDirectoryIsAConfigError() throws {
        let readOnly = pki.path("ro")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o555])
        let config = pki.path("audit-ro.yaml")
        try """
            listeners:
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(Self.library), config: { path: \(readOnly)/sub/audit.log } } ], routes: [ { backend: b } ] }
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("listeners[0].plugins[0]: plugin 'audit'"), result.stderr)
        XCTAssertTrue(result.stderr.contains("cannot open '\(readOnly)/sub/audit.log': No such file or directory"), result.stderr)
    }

    /// The config is decoded by the SDK's strict typed decoder: a misspelt or mistyped key is an error that
    /// names it, as in the gateway's own config.
    func testConfigErrorsNameTheKey() throws {
        let log = pki.path("audit-errors.log")
        let cases: [(config: String, error: String)] = [
            ("{ path: \(log), pth: x }", "config: unknown key 'pth'; known: close_timeout_ms, events, fields, fsync, fsync_interval_ms, max_files, max_size, on_write_error, path, queue_size, when_full"),
            ("{ events: [request] }", "path: required (the audit log file)"),
            ("{ path: \(log), queue_size: many }", "queue_size: expected an integer"),
            ("{ path: \(log), events: request }", "events: expected an array"),
            ("{ path: \(log), fsync_interval_ms: 0 }", "fsync_interval_ms: must be at least 1"),
            ("{ path: \(log), on_write_error: ignore }", "on_write_error: 'ignore' is not one of: deny | allow"),
            ("{ path: \(log), close_timeout_ms: -1 }", "close_timeout_ms: must be between 0 and 600000"),
            ("[ \(log) ]", "config: expected a mapping"),
        ]
        let refusals = try validateRefuses(library: Self.library, cases.map(\.config))
        for (item, stderr) in zip(cases, refusals) {
            XCTAssertTrue(stderr.contains("plugin 'audit' (\(Self.library)) rejected its config: \(item.error)"), "\(item.config): \(stderr)")
        }
    }
}
