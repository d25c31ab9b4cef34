#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewayCore
import XCTest

/// Clients too slow to be honest: one that trickles its body, and one that never reads its response. Before
/// body_timeout/min_body_rate and send_timeout, each held a client and a backend connection forever.
final class SlowClientTests: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { body_timeout: 400ms, min_body_rate: 200, send_timeout: 600ms, header_timeout: 5s }
                routes: [ { backend: app } ]
            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
    }

    private func timeouts(_ kind: String) throws -> Double {
        let text = String(decoding: gateway.server.runtime.metrics.exposition(runtime: gateway.server.runtime), as: UTF8.self)
        return try MetricSamples(exposition: text).value("gateway_client_timeouts_total", ["listener": "plain", "kind": kind]) ?? 0
    }

    func testATricklingBodyIsCutOffButASlowSteadyOneIsNot() async throws {
        // 1 byte every 150 ms: ~7 bytes per 400 ms window, under 200 B/s x 0.4 s = 80.
        let trickler = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await trickler.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n")
        for _ in 0..<20 {
            try? await trickler.send("x")
            try await Task.sleep(nanoseconds: 150_000_000)
        }
        let cut = await trickler.readResponse(timeout: 5)
        XCTAssertEqual(cut?.status, 408)
        let closed = await trickler.waitForClose(timeout: 5)
        XCTAssertTrue(closed)
        await trickler.close()
        XCTAssertEqual(try timeouts("body"), 1)
        let logged = await gateway.logs.waitFor { $0.message.contains("sends its request body too slowly") }
        XCTAssertNotNil(logged)

        // 100 bytes every 100 ms (1000 B/s): slow, steady, served.
        let steady = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await steady.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1500\r\n\r\n")
        for _ in 0..<15 {
            try await steady.send(String(repeating: "y", count: 100))
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let served = await steady.readResponse(timeout: 5)
        XCTAssertEqual(served?.status, 200)
        XCTAssertEqual(served?.body.count, 1500)
        await steady.close()
        XCTAssertEqual(try timeouts("body"), 1, "the steady upload was not cut off")
    }

    /// A raw client socket to `port` with a 4 KiB receive buffer that sends `request` and reads nothing yet.
    private func slowReader(port: Int, request: String) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let bytes = Array(request.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
        return fd
    }

    /// The gateway with the Audit plugin and a plugin that answers `/big` itself with a 16 MiB body, for the
    /// two tests of a response whose end is written while the client has not taken what came before it: the
    /// answer is written whole at once, and a client with a 4 KiB window that reads nothing leaves most of it (the kernel takes a few MiB on loopback), so the rest
    /// waits in the channel when the end is flushed.
    private func auditedGateway() async throws -> (GatewayHarness, String) {
        let audit = pki.path("end-\(UUID().uuidString).log")
        let library = Bundle.main.bundleURL.appendingPathComponent("libAudit.so").path
        let tagger = try PluginFixtures.build("tagger")
        let harness = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { send_timeout: 10s }
                plugins:
                  - { library: \(library), config: { path: \(audit), fsync: never } }
                  - { library: \(tagger), config: { tag: big, deny_path: /big, deny_bytes: "16777216" } }
                routes: [ { backend: app } ]
            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
        return (harness, audit)
    }

    /// Blocks until the answer's first byte arrived (without taking it): the answer was written, its end too.
    private func waitForFirstByte(_ fd: Int32) {
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var byte: UInt8 = 0
        XCTAssertEqual(recv(fd, &byte, 1, Int32(MSG_PEEK)), 1, "the answer started")
    }

    private func auditLine(_ path: String) throws -> [String: Any] {
        let line = try XCTUnwrap(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first, "no audit line")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    /// The end's write completes only when the client has read the answer: on_complete runs then, complete.
    func testAnAnswerWhoseEndWaitsForASlowReaderIsAuditedCompleteOnceRead() async throws {
        let (harness, audit) = try await auditedGateway()
        let fd = slowReader(port: harness.port("plain"), request: "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        defer { close(fd) }
        waitForFirstByte(fd)
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertFalse(try String(contentsOfFile: audit, encoding: .utf8).contains("\n"), "no line before the answer is read")
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        var head = ""
        var expected = Int.max
        while received < expected {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if head.isEmpty {
                head = String(decoding: buffer[0..<n], as: UTF8.self)
                if let end = head.range(of: "\r\n\r\n") { expected = head.utf8.distance(from: head.startIndex, to: end.upperBound) + 16_777_216 }
            }
            received += n
        }
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 403"), String(head.prefix(200)))
        XCTAssertEqual(received, expected)
        await harness.stop()
        let fields = try auditLine(audit)
        XCTAssertEqual(fields["status"] as? Int, 403)
        XCTAssertNil(fields["response_incomplete"], "\(fields)")
        XCTAssertEqual(fields["bytes_out"] as? Int, 16_777_216, "\(fields)")
    }

    /// As above, but the client resets the connection without reading: the write of the end fails, and the
    /// audit line says the answer was cut off.
    func testAnAnswerWhoseEndNeverLeavesIsAuditedIncomplete() async throws {
        let (harness, audit) = try await auditedGateway()
        let fd = slowReader(port: harness.port("plain"), request: "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        waitForFirstByte(fd)
        var linger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        close(fd)
        // The reset fails the pending write; the line is written then (the writer thread appends it).
        for _ in 0..<500 where (try? String(contentsOfFile: audit, encoding: .utf8))?.contains("\n") != true {
            try await Task.sleep(for: .milliseconds(20))
        }
        await harness.stop()
        let fields = try auditLine(audit)
        XCTAssertEqual(fields["status"] as? Int, 403)
        XCTAssertEqual(fields["response_incomplete"] as? Bool, true, "\(fields)")
    }

    /// What a client sends of its next head while a response is awaited is read ahead into the parser; once
    /// the response is out it is the start of the next head: `header_timeout` (408), not `idle_timeout`.
    /// header_timeout 500ms, idle_timeout 60s.
    private func shortHeaderTimeoutGateway() async throws -> GatewayHarness {
        try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { header_timeout: 500ms, idle_timeout: 60s }
                routes: [ { backend: app } ]
            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
    }

    /// Empty lines look like a head's end to a byte scan, but the parser takes them for the CRLF it may ignore
    /// before a request line: they must not stop the head's timer (the connection used to stay open for good).
    func testEmptyLinesAloneNeitherEndAHeadNorStopItsTimer() async throws {
        let harness = try await shortHeaderTimeoutGateway()
        defer { Task { await harness.stop() } }
        let idle = try await TestClient.connect(port: harness.port("plain"), tls: nil)
        defer { Task { await idle.close() } }
        try await idle.send("\r\n\r\n")
        let closed = await idle.waitForClose(timeout: 10)
        XCTAssertTrue(closed, "closed once the first head's header_timeout passed")

        let started = try await TestClient.connect(port: harness.port("plain"), tls: nil)
        defer { Task { await started.close() } }
        try await started.send("GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = await started.readResponse(timeout: 10)
        XCTAssertEqual(first?.status, 200)
        try await started.send("\r\nGET /b HTTP/1.1\r\nHost: a\r\n")  // and nothing more
        let second = await started.readResponse(timeout: 10)
        XCTAssertEqual(second?.status, 408, "a head begun after an empty line has header_timeout")
    }

    func testAHeadStartedWhileAResponseWasAwaitedHasTheHeaderTimeout() async throws {
        let harness = try await shortHeaderTimeoutGateway()
        defer { Task { await harness.stop() } }
        let client = try await TestClient.connect(port: harness.port("plain"), tls: nil)
        defer { Task { await client.close() } }
        try await client.send("GET /slow/guard HTTP/1.1\r\nHost: a\r\n\r\n")
        for _ in 0..<250 where !backend.requests.contains(where: { $0.head.uri == "/slow/guard" }) { try await Task.sleep(for: .milliseconds(20)) }
        try await client.send("GET /next HTTP/1.1\r\nHost: a\r\n")  // and nothing more
        let first = await client.readResponse(timeout: 10)
        XCTAssertEqual(first?.status, 200)
        let second = await client.readResponse(timeout: 10)
        XCTAssertEqual(second?.status, 408, "header_timeout after the response, not a silent close at idle_timeout")
        let closed = await client.waitForClose(timeout: 5)
        XCTAssertTrue(closed)
    }

    func testAClientThatNeverReadsItsResponseIsClosed() async throws {
        // A raw socket with a small receive buffer that asks for 64 MiB and reads nothing.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(gateway.port("plain")).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let request = Array("GET /stream/67108864 HTTP/1.1\r\nHost: a\r\n\r\n".utf8)
        XCTAssertEqual(request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, request.count)
        let logged = await gateway.logs.waitFor(timeout: 10) { $0.message.contains("does not read its response") }
        XCTAssertNotNil(logged, "closed after send_timeout")
        XCTAssertEqual(try timeouts("send"), 1)
        let streamed = backend.streamed.withLockedValue { $0 }
        XCTAssertLessThan(streamed, 64 << 20, "the backend stopped sending")
        try await Task.sleep(nanoseconds: 500_000_000)
        XCTAssertEqual(backend.streamed.withLockedValue { $0 }, streamed, "and its connection was closed: nothing more streams")
    }
}
