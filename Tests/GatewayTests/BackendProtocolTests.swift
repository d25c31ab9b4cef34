import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// Backends that answer what the gateway did not ask for: every byte a backend sends is untrusted, and a bad
/// answer ends that exchange (502 or a closed client connection), never the process.
final class BackendProtocolTests: GatewayTestCase {
    override class var backendName: String { "good" }
    /// The well-behaved backend is the fixture's `backend`.
    var good: TestBackend { backend }
    var scripted: [String: ScriptedBackend] = [:]

    /// Raw answers by route name.
    static let answers: [String: String] = [
        "switching": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{81}\u{05}hello",
        // A WebSocket server's answer to the key of RFC 6455's example (dGhlIHNhbXBsZSBub25jZQ==), a frame in the
        // same write.
        "websocket": "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\u{81}\u{05}hello",
        "continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "processing": "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "hints": "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "unsolicited": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nforeign",
        // Header bytes a client must never receive as they are: an obs-fold (a line break inside a value),
        // control bytes, a bare CR, a name with a space.
        "folded": "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok",
        "control": "HTTP/1.1 200 OK\r\nX-A: a\u{1}b\u{7f}c\r\nContent-Length: 2\r\n\r\nok",
        "barecr": "HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: b\r\nContent-Length: 2\r\n\r\nok",
        "nul": "HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\nContent-Length: 2\r\n\r\nok",
        "spacename": "HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok",
        // Heads past the response parser's bounds (1,000 fields, 80 KiB) and both framings at once.
        "manyfields": "HTTP/1.1 200 OK\r\n" + (0...1000).map { "X-\($0): v\r\n" }.joined() + "Content-Length: 2\r\n\r\nok",
        "hugehead": "HTTP/1.1 200 OK\r\nX-A: " + String(repeating: "a", count: 81 * 1024) + "\r\nContent-Length: 2\r\n\r\nok",
        "bothframings": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        // The same answer to every request, HEAD included: to a HEAD, its body is bytes after the response, and
        // they are the start of a forged response head.
        "headbody": "HTTP/1.1 200 OK\r\nContent-Length: \(forged.utf8.count)\r\n\r\n\(forged)",
        // A response of exactly 2,048 bytes (NIO's first read buffer on a new connection), then a whole forged
        // response: the second arrives in the next read of the same read pass.
        "exact": exactly2048 + "HTTP/1.1 302 Found\r\nLocation: /evil\r\nContent-Length: 0\r\n\r\n",
        // Hop-by-hop fields, one named by Connection: none reaches the client; the connection is kept.
        "hopbyhop": "HTTP/1.1 200 OK\r\nX-Before: 1\r\nConnection: keep-alive, X-Internal\r\nKeep-Alive: timeout=5\r\nX-Internal: secret\r\n"
            + "Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nTrailer: X-T\r\nContent-Length: 2\r\n\r\nok",
        // HTTP/1.0 with Transfer-Encoding: RFC 9112 6.1 has the recipient close the connection after it, whatever
        // Connection says.
        "http10te": "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ]
    static let exactly2048: String = {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 2009\r\n\r\n"
        return head + String(repeating: "a", count: 2048 - head.utf8.count)
    }()
    static let forged = "HTTP/1.1 302 Found\r\nLocation: /evil\r\nX: "


    override func setUp() async throws {
        try await super.setUp()
        for (name, answer) in Self.answers {
            let backend = ScriptedBackend(response: answer)
            try await backend.start()
            scripted[name] = backend
        }
        let routes = Self.answers.keys.sorted().map { "      - { match: { path_prefix: \"/\($0)/\" }, backend: \($0) }" }.joined(separator: "\n")
        let backends = Self.answers.keys.sorted().map { "  - { name: \($0), servers: [ { address: \"127.0.0.1:\(scripted[$0]!.port)\" } ] }" }
            .joined(separator: "\n")
        gateway = try await GatewayHarness(yaml: """
            admin: { address: "127.0.0.1:0" }
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                routes:
            \(routes)
                  - { backend: good }
              - name: secure
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                routes:
            \(routes)
                  - { backend: good }
            backends:
            \(backends)
              - { name: good, servers: [ { address: "127.0.0.1:\(good.port)" } ] }
            """, in: pki.directory)
    }

    override func tearDown() async throws {
        try await super.tearDown()
        for backend in scripted.values { await backend.stop() }
    }

    private var mtls: TestClient.TLSOptions {
        TestClient.TLSOptions(trust: [pki.path("ca.pem")], certificateChain: pki.path("valid.pem"), key: pki.path("valid.key"))
    }

    /// The gateway still serves: a request to the well-behaved backend on a new connection answers 200.
    private func assertStillServing(file: StaticString = #filePath, line: UInt = #line) async throws {
        let after = try await TestClient.get(port: gateway.port("plain"), tls: nil, path: "/after")
        XCTAssertEqual(after?.status, 200, "the gateway serves on after the bad answer", file: file, line: line)
    }

    private func protocolErrors(_ backend: String) async throws -> Double {
        let client = try await TestClient.connect(port: gateway.adminPort, tls: nil)
        try await client.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let text = await client.readResponse()?.text ?? ""
        await client.close()
        let port = scripted[backend]!.port
        return try MetricSamples(exposition: text).value("gateway_backend_protocol_errors_total", ["backend": backend, "server": "127.0.0.1:\(port)"]) ?? -1
    }

    func testUnsolicited101IsABadGatewayAndTheProcessLives() async throws {
        for (listener, tls) in [("plain", nil), ("secure", mtls)] as [(String, TestClient.TLSOptions?)] {
            let client = try await TestClient.connect(port: gateway.port(listener), tls: tls)
            try await client.send("GET /switching/ws HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 502, "\(listener): a 101 nobody asked for is a backend error")
            // The connection stays usable: the request had ended, so the 502 is a complete keep-alive answer.
            try await client.send("GET /fine HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let next = await client.readResponse()
            XCTAssertEqual(next?.status, 200, "\(listener): the client connection serves its next request")
            XCTAssertEqual(next?.text, "ok good")
            await client.close()
        }
        try await assertStillServing()
        let errors = try await protocolErrors("switching")
        XCTAssertEqual(errors, 2, "each unsolicited 101 is counted")
        let logged = await gateway.logs.waitFor { $0.message == "backend protocol error" }
        XCTAssertEqual(logged?.metadata["backend"], "switching")
        XCTAssertEqual(logged?.metadata["error"], "unsolicited 101 Switching Protocols")
        // The upgraded backend connection is never reused: each request opened a new one.
        XCTAssertEqual(scripted["switching"]!.counts.withLockedValue { $0.connections }, 2)
    }

    func testAWebSocketUpgradeGetsThe101AndTheBytesAfterItAndOtherUpgradesDoNot() async throws {
        let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for (listener, tls) in [("plain", nil), ("secure", mtls)] as [(String, TestClient.TLSOptions?)] {
            let client = try await TestClient.connect(port: gateway.port(listener), tls: tls)
            try await client.send("GET /websocket/ws HTTP/1.1\r\nHost: localhost\r\n\(upgrade)\r\n")
            let deadline = Date().addingTimeInterval(10)
            while !client.receivedText.hasSuffix("\u{81}\u{05}hello"), Date() < deadline { try await Task.sleep(nanoseconds: 10_000_000) }
            let received = client.receivedText
            XCTAssertTrue(received.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(listener): \(received)")
            let head = received.components(separatedBy: "\r\n\r\n").first ?? ""
            XCTAssertTrue(head.contains("\r\nconnection: upgrade") && head.contains("\r\nupgrade: websocket"), "\(listener): \(head)")
            XCTAssertTrue(received.hasSuffix("\r\n\r\n\u{81}\u{05}hello"), "\(listener): the bytes after the 101 came in its read: \(received)")
            XCTAssertFalse(client.isClosed, "\(listener): the tunnel stays open")
            await client.close()
        }
        // A 101 without the Sec-WebSocket-Accept the key asks for did not switch to WebSocket (an endpoint that
        // echoes a status): no tunnel, whatever the client would send next would pass no route and no plugin.
        let unproven = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await unproven.send("GET /switching/ws HTTP/1.1\r\nHost: localhost\r\n\(upgrade)\r\n")
        let refused = await unproven.readResponse()
        XCTAssertEqual(refused?.status, 502)
        await unproven.close()
        let logged = await gateway.logs.waitFor { $0.message == "backend protocol error" }
        XCTAssertEqual(logged?.metadata["error"], "101 Switching Protocols without Connection: upgrade and the request's Sec-WebSocket-Accept")
        // Any other Upgrade token is removed and the request is plain HTTP: a 101 to it is an error.
        for token in ["h2c", "websocket, h2c"] {
            let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
            try await client.send("GET /switching/other HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: \(token)\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 502, token)
            await client.close()
        }
        try await assertStillServing()
        let errors = try await protocolErrors("switching")
        XCTAssertEqual(errors, 3, "the 101 without its accept and the two nobody asked for are errors")
        let switched = try await protocolErrors("websocket")
        XCTAssertEqual(switched, 0)
    }

    func testUnsolicited101ToARequestWithABodyIsABadGateway() async throws {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("POST /switching/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 502)
        await client.close()
        try await assertStillServing()
    }

    func testInformationalResponsesAreDroppedAndTheFinalResponseArrives() async throws {
        for route in ["continue", "processing", "hints"] {
            let client = try await TestClient.connect(port: gateway.port("secure"), tls: mtls)
            for attempt in 1...2 {
                try await client.send("GET /\(route)/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
                let response = await client.readResponse()
                XCTAssertEqual(response?.status, 200, "\(route), request \(attempt): the final response after the 1xx")
                XCTAssertEqual(response?.text, "ok", "\(route), request \(attempt)")
            }
            await client.close()
            let counts = scripted[route]!.counts.withLockedValue { $0 }
            XCTAssertEqual(counts.requests, 2, route)
            XCTAssertEqual(counts.connections, 1, "\(route): the backend connection was reused after the 1xx exchange")
        }
        try await assertStillServing()
    }

    func testHopByHopResponseFieldsStayAtTheGatewayAndDecideReuse() async throws {
        let client = try await TestClient.connect(port: gateway.port("secure"), tls: mtls)
        for attempt in 1...2 {
            try await client.send("GET /hopbyhop/\(attempt) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let read = await client.readResponse()
            let response = try XCTUnwrap(read, "attempt \(attempt)")
            XCTAssertEqual(response.status, 200)
            XCTAssertEqual(response.text, "ok")
            XCTAssertEqual(response.headers.map { $0.0.lowercased() }, ["x-before", "content-length"], "attempt \(attempt): \(response.headers)")
        }
        await client.close()
        XCTAssertEqual(scripted["hopbyhop"]!.counts.withLockedValue { $0.connections }, 1, "the backend said keep-alive: its connection is reused")

        for attempt in 1...2 {
            let response = try await TestClient.get(port: gateway.port("plain"), tls: nil, path: "/http10te/\(attempt)")
            XCTAssertEqual(response?.status, 200, "attempt \(attempt)")
            XCTAssertEqual(response?.text, "ok", "attempt \(attempt)")
        }
        XCTAssertEqual(scripted["http10te"]!.counts.withLockedValue { $0.connections }, 2, "an HTTP/1.0 response with Transfer-Encoding ends its connection")
        try await assertStillServing()
    }

    func testAResponseNobodyAskedForNeverReachesTheNextRequest() async throws {
        // The backend sends a second, unsolicited response right after the first: it must not be taken for the
        // answer to the next request on the pooled connection.
        for attempt in 1...3 {
            let response = try await TestClient.get(port: gateway.port("plain"), tls: nil, path: "/unsolicited/\(attempt)")
            XCTAssertEqual(response?.status, 200, "request \(attempt)")
            XCTAssertEqual(response?.text, "ok", "request \(attempt) got its own answer")
        }
        try await assertStillServing()
    }

    /// A backend that sends a body with its answer to a HEAD leaves bytes after the response: the connection is
    /// not reused, so they never become (part of) the answer to the next request, which goes to the backend once.
    func testBytesAfterAResponseNeverReachTheNextRequest() async throws {
        let backend = scripted["headbody"]!
        for attempt in 1...3 {
            let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
            try await client.send("HEAD /headbody/\(attempt) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            let closed = await client.waitForClose()
            XCTAssertTrue(closed)
            XCTAssertTrue(client.receivedText.hasPrefix("HTTP/1.1 200"), client.receivedText.debugDescription)
            await client.close()
            let response = try await TestClient.get(port: gateway.port("plain"), tls: nil, path: "/headbody/\(attempt)")
            XCTAssertEqual(response?.status, 200, "request \(attempt) got a forged answer: \(String(describing: response?.text))")
            XCTAssertEqual(response?.text, Self.forged, "request \(attempt) got its own answer")
        }
        XCTAssertEqual(backend.counts.withLockedValue { $0.requests }, 6, "every request reached the backend once (no retry)")
        try await assertStillServing()
    }

    /// The same with a whole forged response after a 2,048-byte one, and a request pipelined behind: the
    /// pipelined request never gets the forged response. Two mechanisms protect it, and the test fails only
    /// without both (checked): the leftover-bytes check, and the connection's release at the end of the read
    /// pass (so the pipelined request cannot take the connection back while the forged bytes are parsed).
    /// It was meant to put them in the next read of the same pass; here NIO's first read took both.
    func testBytesInTheNextReadAfterAResponseNeverAnswerAPipelinedRequest() async throws {
        for attempt in 1...3 {
            let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
            try await client.send("GET /exact/\(attempt)a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /exact/\(attempt)b HTTP/1.1\r\nHost: localhost\r\n\r\n")
            for which in ["a", "b"] {
                let response = await client.readResponse()
                XCTAssertEqual(response?.status, 200, "request \(attempt)\(which) got a forged answer")
                XCTAssertEqual(response?.body.count, 2009, "request \(attempt)\(which)")
            }
            await client.close()
        }
        try await assertStillServing()
    }

    /// The gateway writes response heads without a second validation pass (NIO's outbound header validator is
    /// off on the hot path): what the backend's decoder accepts must already be safe to forward. A header
    /// with a line break, a bare CR, a NUL, another control byte or a bad name is a 502, never passed on.
    func testHeaderBytesThatWouldSplitOrCorruptTheResponseAreABadGateway() async throws {
        for route in ["folded", "control", "barecr", "nul", "spacename"] {
            let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
            try await client.send("GET /\(route)/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 502, "\(route): \(client.receivedText.debugDescription)")
            XCTAssertFalse(client.receivedText.contains("X-A"), "\(route): no part of the bad header reached the client")
            XCTAssertFalse(client.receivedText.lowercased().contains("set-cookie"), route)
            await client.close()
        }
        try await assertStillServing()
    }

    /// A response head past the parser's bounds, or with both framings, is a 502, and the next request on the
    /// same client connection is served.
    func testOversizedOrDoublyFramedResponseHeadsAreABadGateway() async throws {
        for route in ["manyfields", "hugehead", "bothframings"] {
            let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
            try await client.send("GET /\(route)/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 502, "\(route): \(client.receivedText.prefix(200).debugDescription)")
            XCTAssertFalse(client.receivedText.contains("X-1:"), route)
            await client.close()
        }
        try await assertStillServing()
    }

    func testAResponseCutOffMidBodyIsAuditedAsIncomplete() async throws {
        let cutOff = ScriptedBackend(response: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", closeAfterResponse: true)
        try await cutOff.start()
        defer { Task { await cutOff.stop() } }
        let audit = pki.path("cut.log")
        let library = Bundle.main.bundleURL.appendingPathComponent("libAudit.so").path
        let harness = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                plugins: [ { library: \(library), config: { path: \(audit) } } ]
                routes: [ { backend: cut } ]
            backends: [ { name: cut, servers: [ { address: "127.0.0.1:\(cutOff.port)" } ] } ]
            """, in: pki.directory)
        let client = try await TestClient.connect(port: harness.port("plain"), tls: nil)
        try await client.send("GET /cut HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed, "the client learns the response is incomplete the only way HTTP/1.1 allows: a close")
        XCTAssertTrue(client.receivedText.hasPrefix("HTTP/1.1 200 OK"), client.receivedText)
        await harness.stop()
        let line = try XCTUnwrap(try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n").first)
        let fields = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(fields["status"] as? Int, 200)
        XCTAssertEqual(fields["response_incomplete"] as? Bool, true, "\(fields)")
        XCTAssertEqual(fields["decision"] as? String, "forwarded")
        XCTAssertEqual(fields["backend_server"] as? String, "127.0.0.1:\(cutOff.port)")
    }
}
