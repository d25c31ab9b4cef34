import Foundation
import XCTest

/// WebSocket through the gateway with real parts: the real `gateway run` as the unprivileged user, a real
/// WebSocket server and client (the `websockets` package from PyPI, python/ws_backend.py and ws_client.py),
/// the bundled ClientCertHeaders and Audit plugins and the SDK's C authz example, over mTLS.
final class WebSocketTests: GatewayTestCase {
    /// Starts ws_backend.py and returns its port; it is stopped at the end of the test.
    private func startWebSocketBackend() throws -> Int {
        let (process, pipe) = try PythonHelper.start("ws_backend.py", [])
        let box = ProcessBox(process)
        addTeardown { box.stop() }
        var line = Data()
        let handle = pipe.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let more = handle.availableData
            guard !more.isEmpty else { throw PluginFixtures.FixtureError(message: "ws_backend.py ended before it listened") }
            line.append(more)
        }
        let json = try JSONSerialization.jsonObject(with: line.prefix { $0 != UInt8(ascii: "\n") }) as? [String: Any]
        guard let port = json?["port"] as? Int else { throw PluginFixtures.FixtureError(message: "ws_backend.py: no port in \(line)") }
        return port
    }

    private final class ProcessBox: @unchecked Sendable {
        let process: Process
        init(_ process: Process) { self.process = process }
        func stop() {
            // SIGKILL: a Python process started this way may not act on SIGTERM, and waitUntilExit would wait on.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    private func client(_ port: Int, path: String, as client: String = "valid", _ extra: [String] = []) throws -> [String: Any] {
        let run = try PythonHelper.capture("ws_client.py", [
            "--url", "wss://127.0.0.1:\(port)\(path)", "--ca", pki.path("ca.pem"), "--cert", pki.path("\(client).pem"), "--key", pki.path("\(client).key"),
        ] + extra)
        XCTAssertEqual(run.status, 0, "ws_client.py: \(run.stderr)")
        return (try? JSONSerialization.jsonObject(with: run.stdout) as? [String: Any]) ?? [:]
    }

    func testEchoIdentityDenialIdleTimeoutAndTheAuditLine() async throws {
        let backendPort = try startWebSocketBackend()
        let authz = try ConsoleTests.authz(named: "authz")
        let (port, adminPort) = (try unusedPort(), try unusedPort())
        let audit = pki.path("audit.log")
        let yaml = """
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: ws
                address: "127.0.0.1:\(port)"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                websocket: { idle_timeout: 1s }
                plugins:
                  - { library: libClientCertHeaders.so, config: {} }
                  - { library: libAudit.so, config: { path: \(audit) } }
                  - \(ConsoleTests.authzEntry.replacingOccurrences(of: "LIBRARY", with: authz))
                routes: [ { backend: chat } ]
            backends: [ { name: chat, servers: [ { address: "127.0.0.1:\(backendPort)" } ] } ]
            """
        let running = try await runGateway(yaml, name: "websocket", adminPort: adminPort)

        // Echo of a text and a 10 MiB binary message; the backend saw the identity headers (the client's own
        // copy stripped) and the upgrade's fields.
        let echo = try client(port, path: "/chat", ["--header", "X-Forwarded-Clientcert-Subjectdn: CN=forged"])
        XCTAssertEqual(echo["status"] as? Int, 101, "\(echo)")
        XCTAssertEqual(echo["text"] as? String, "hello through the gateway")
        XCTAssertEqual(echo["binary_equal"] as? Bool, true)
        XCTAssertEqual(echo["binary_length"] as? Int, 10 * 1024 * 1024)
        let responseHeaders = echo["response_headers"] as? [String: String] ?? [:]
        XCTAssertEqual(responseHeaders["upgrade"], "websocket")
        XCTAssertEqual(responseHeaders["connection"], "upgrade")
        XCTAssertNotNil(responseHeaders["sec-websocket-accept"], "the backend's accept reaches the client")
        let seen = (echo["backend"] as? [String: Any])?["headers"] as? [String: [String]] ?? [:]
        let subject = seen["x-forwarded-clientcert-subjectdn"] ?? []
        XCTAssertEqual(subject.count, 1, "\(seen)")
        XCTAssertTrue(subject.first?.contains("valid-client") ?? false, "\(subject)")
        XCTAssertEqual(seen["upgrade"], ["websocket"])
        XCTAssertEqual(seen["connection"], ["upgrade"])
        XCTAssertNotNil(seen["sec-websocket-key"], "the handshake's end-to-end fields go through")
        XCTAssertEqual((echo["backend"] as? [String: Any])?["path"] as? String, "/chat")

        // The authz plugin refuses an upgrade like any request: the client library sees a 403, no tunnel opens.
        let denied = try client(port, path: "/admin/chat", as: "via-intermediate")
        XCTAssertEqual(denied["status"] as? Int, 403, "\(denied)")

        // A tunnel that carries nothing for websocket.idle_timeout (1 s) is closed by the gateway.
        let idle = try client(port, path: "/quiet", ["--mode", "idle", "--wait", "20"])
        XCTAssertEqual(idle["status"] as? Int, 101, "\(idle)")
        XCTAssertEqual(idle["closed"] as? Bool, true, "\(idle)")
        XCTAssertGreaterThanOrEqual(idle["seconds"] as? Double ?? 0, 0.9, "closed for idling, not at once: \(idle)")

        // A client that sends a frame right behind its upgrade request, before the 101: the frame waits in the
        // gateway and is the tunnel's first byte (a masked text frame "hi", mask 0; the server echoes it unmasked).
        let early = try await TestClient.connect(port: port, tls: tls("valid"))
        try await early.send(Array("GET /early HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n".utf8)
            + Array("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".utf8) + [0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69])
        let frameDeadline = Date().addingTimeInterval(10)
        let echoed: [UInt8] = Array("\r\n\r\n".utf8) + [0x81, 0x02, 0x68, 0x69]
        while !early.receivedBytes.reversed().starts(with: echoed.reversed()), Date() < frameDeadline { try await Task.sleep(nanoseconds: 20_000_000) }
        XCTAssertTrue(early.receivedText.hasPrefix("HTTP/1.1 101 "), early.receivedText)
        XCTAssertTrue(early.receivedText.lowercased().contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"), early.receivedText)
        XCTAssertTrue(early.receivedBytes.reversed().starts(with: echoed.reversed()), "the early frame was echoed: \(early.receivedBytes.suffix(16))")
        await early.close()

        // Audit: one `tunnel` line per tunnel when it closes (bytes each way, its duration), the refusal a request line.
        var lines: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            lines = ((try? String(contentsOfFile: audit, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            if lines.count >= 4 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let tunnels = lines.filter { $0["event"] as? String == "tunnel" }
        XCTAssertEqual(tunnels.map { $0["path"] as? String }, ["/chat", "/quiet", "/early"], "\(lines)")
        let chat = tunnels.first ?? [:]
        XCTAssertEqual(chat["status"] as? Int, 101)
        XCTAssertGreaterThan(chat["bytes_in"] as? Int ?? 0, 10 * 1024 * 1024, "client to backend, framing included")
        XCTAssertGreaterThan(chat["bytes_out"] as? Int ?? 0, 10 * 1024 * 1024, "backend to client")
        XCTAssertNotNil(chat["duration_ms"], "\(chat)")
        XCTAssertTrue((chat["subject"] as? String ?? "").contains("valid-client"), "\(chat)")
        let refused = lines.filter { $0["event"] as? String == "request" && $0["path"] as? String == "/admin/chat" }
        XCTAssertEqual(refused.first?["status"] as? Int, 403, "\(lines)")

        let metrics = try await running.metrics()
        XCTAssertEqual(metrics.value("gateway_tunnels_total", ["listener": "ws"]), 3)
        XCTAssertEqual(metrics.value("gateway_tunnels_active", ["listener": "ws"]), 0)
        XCTAssertEqual(running.terminate(), 0)
    }

    /// A tunnel cannot move to a reloaded configuration (its request ran the old chain): it is closed within the
    /// tunnel check's 5 s of the reload, its Audit line written, and the client reconnects under the new one.
    func testAReloadClosesAnOpenTunnel() async throws {
        let backendPort = try startWebSocketBackend()
        let (port, adminPort) = (try unusedPort(), try unusedPort())
        let audit = pki.path("audit-reload.log")
        let yaml = """
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: ws
                address: "127.0.0.1:\(port)"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                plugins: [ { library: libAudit.so, config: { path: \(audit) } } ]
                routes: [ { backend: chat } ]
            backends: [ { name: chat, servers: [ { address: "127.0.0.1:\(backendPort)" } ] } ]
            """
        let running = try await runGateway(yaml, name: "websocket-reload", adminPort: adminPort)
        let idle = try PythonHelper.start("ws_client.py", [
            "--url", "wss://127.0.0.1:\(port)/long", "--ca", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"),
            "--mode", "idle", "--wait", "30",
        ])
        // The tunnel is open once the gateway counts it.
        var open = 0.0
        let deadline = Date().addingTimeInterval(10)
        while open < 1, Date() < deadline {
            open = try await running.metrics().value("gateway_tunnels_active", ["listener": "ws"]) ?? 0
            if open < 1 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertEqual(open, 1)
        let reload = try await running.admin("POST", "/reload")
        XCTAssertEqual(reload?.status, 200, reload?.text ?? "")
        let result = try PythonHelper.finish(idle) as? [String: Any] ?? [:]
        XCTAssertEqual(result["status"] as? Int, 101, "\(result)")
        XCTAssertEqual(result["closed"] as? Bool, true, "\(result)")
        XCTAssertLessThan(result["seconds"] as? Double ?? 99, 25, "closed after the reload, not by the client's own wait: \(result)")
        let logged = await running.waitForLog("the configuration it was opened under was reloaded")
        XCTAssertTrue(logged, running.log)
        var tunnelLines: [Substring] = []
        let written = Date().addingTimeInterval(10)
        while tunnelLines.isEmpty, Date() < written {
            tunnelLines = ((try? String(contentsOfFile: audit, encoding: .utf8)) ?? "").split(separator: "\n").filter {
                $0.contains("\"event\":\"tunnel\"") && $0.contains("\"path\":\"/long\"")
            }
            if tunnelLines.isEmpty { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertEqual(tunnelLines.count, 1, "the old configuration's Audit wrote the tunnel's line")
        XCTAssertEqual(running.terminate(), 0)
    }
}
