import GatewayCore
import GatewayTooling
import XCTest

/// Malformed and ambiguous requests are answered by the gateway and the connection closed; nothing reaches
/// the backend.
final class SmugglingTests: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { max_header_bytes: 4096, max_header_count: 20, max_body_bytes: 1000, header_timeout: 500ms, idle_timeout: 2s }
                routes: [ { backend: app } ]
            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
            """, in: pki.directory)
    }

    /// Sends raw bytes; returns the response status and whether the gateway then closed the connection.
    private func exchange(_ raw: String, file: StaticString = #filePath, line: UInt = #line) async throws -> (Int?, Bool) {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        defer { Task { await client.close() } }
        try? await client.send(raw)
        let response = await client.readResponse()
        let closed = await client.waitForClose(timeout: 5)
        return (response?.status, closed)
    }

    private func assertRefused(_ raw: String, status: Int, file: StaticString = #filePath, line: UInt = #line) async throws {
        let (got, closed) = try await exchange(raw)
        XCTAssertEqual(got, status, "for \(raw.debugDescription)", file: file, line: line)
        XCTAssertTrue(closed, "connection must be closed after \(raw.debugDescription)", file: file, line: line)
        XCTAssertTrue(backend.requests.isEmpty, "forwarded: \(backend.requests.map(\.head))", file: file, line: line)
    }

    func testContentLengthWithTransferEncodingIsRejected() async throws {
        try await assertRefused(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
            status: 400)
    }

    func testDuplicateDifferingContentLengthIsRejected() async throws {
        try await assertRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", status: 400)
    }

    func testInvalidHeaderBytesAreRejected() async throws {
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-Bad: a\u{0}b\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n", status: 400)
        // What the backend would otherwise receive as a line break, a control byte or a bare CR inside a value
        // (the request head is written without a second validation pass).
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\u{1}b\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\u{7f}b\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rX-B: b\r\n\r\n", status: 400)
        try await assertRefused("GET /a\u{1}b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400)
    }

    func testAnUnparsableRequestPipelinedAfterAGoodOneIsAnswered400AfterTheFirstResponse() async throws {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        defer { Task { await client.close() } }
        try await client.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
        let first = await client.readResponse()
        XCTAssertEqual(first?.status, 200)
        let second = await client.readResponse()
        XCTAssertEqual(second?.status, 400)
        XCTAssertEqual(second?.header("connection"), "close")
        XCTAssertEqual(second?.header("content-length"), "0")
        let closed = await client.waitForClose(timeout: 5)
        XCTAssertTrue(closed)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/one"])
    }

    func testMissingOrRepeatedHostIsRejected() async throws {
        try await assertRefused("GET / HTTP/1.1\r\n\r\n", status: 400)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400)
    }

    func testOversizedHeaderGets431() async throws {
        let big = String(repeating: "x", count: 8000)
        try await assertRefused("GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(big)\r\n\r\n", status: 431)
    }

    func testMoreHeaderFieldsThanMaxHeaderCountGet431() async throws {
        // Host and 19 more is max_header_count (20); one more is refused, whatever the bytes.
        let fields = (0..<19).map { "X-F\($0): v\r\n" }.joined()
        let (status, _) = try await exchange("GET /echo HTTP/1.1\r\nHost: a\r\n\(fields)\r\n")
        XCTAssertEqual(status, 200)
        let served = backend.requests.count
        let (refused, closed) = try await exchange("GET /echo HTTP/1.1\r\nHost: a\r\n\(fields)X-F19: v\r\n\r\n")
        XCTAssertEqual(refused, 431)
        XCTAssertTrue(closed)
        XCTAssertEqual(backend.requests.count, served, "the refused request reached the backend")
    }

    func testBodyAfterHeadIsNotCountedAsHeader() async throws {
        // A small head followed in the same write by a body larger than max_header_bytes is fine (413 here only
        // because the body exceeds max_body_bytes; see the next request for a body within limits).
        let body = String(repeating: "b", count: 900)
        let (status, _) = try await exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n\(body)")
        XCTAssertEqual(status, 200)
        XCTAssertEqual(backend.requests.last?.bodyBytes, 900)
    }

    func testOversizedBodyGets413() async throws {
        try await assertRefused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n", status: 413)
        let chunk = String(repeating: "c", count: 600)
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(chunk)\r\n258\r\n\(chunk)\r\n0\r\n\r\n"
        let (status, closed) = try await exchange(chunked)
        XCTAssertEqual(status, 413)
        XCTAssertTrue(closed)
    }

    func testTricklingHeadersTimeOut() async throws {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        defer { Task { await client.close() } }
        try await client.send("GET / HTTP/1.1\r\nHost: a\r\n")
        for _ in 0..<10 {
            try? await Task.sleep(nanoseconds: 150_000_000)
            try? await client.send("X-Drip: 1\r\n")
        }
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 408)
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertTrue(backend.requests.isEmpty)
    }

    func testIdleKeepAliveConnectionIsClosed() async throws {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 200)
        let closed = await client.waitForClose(timeout: 6)
        XCTAssertTrue(closed, "an idle keep-alive connection must be closed after idle_timeout")
    }

    func testSilentConnectionIsClosedAfterHeaderTimeout() async throws {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        let closed = await client.waitForClose(timeout: 4)
        XCTAssertTrue(closed)
    }

    /// A chunked body whose framing breaks after the head (a chunk size that is not hex, a chunk without its
    /// CRLF, a control byte in an extension) is answered 400, and no byte of that request reaches the backend,
    /// not even its head, although a pooled backend connection is idle and would take it at once: a chunked
    /// body up to `chunked_buffer_bytes` is read whole before the request goes on.
    func testBrokenChunkFramingNeverReachesTheBackendNotEvenItsHead() async throws {
        let warm = try await TestClient.get(port: gateway.port("plain"), tls: nil, path: "/warm")
        XCTAssertEqual(warm?.status, 200)
        let bodies = ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "5;ext=\u{1}\r\nhello\r\n0\r\n\r\n", "3\r\nabcd\r\n0\r\n\r\n"]
        for (index, body) in bodies.enumerated() {
            let (status, closed) = try await exchange("POST /broken/\(index) HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\(body)")
            XCTAssertEqual(status, 400, body.debugDescription)
            XCTAssertTrue(closed, body.debugDescription)
        }
        // In two writes: the broken chunk arrives after the head went through the gateway's whole path.
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("POST /broken/split HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        try await Task.sleep(nanoseconds: 200_000_000)
        try await client.send("5\r\nworldXX")
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 400)
        await client.close()
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(backend.heads.withLockedValue { $0 }, ["/warm"], "no head of a refused request reached the backend")
        // A well-formed chunked body still arrives whole (read first, then forwarded).
        let good = try await exchange("POST /good HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        XCTAssertEqual(good.0, 200)
        XCTAssertEqual(backend.requests.last?.head.uri, "/good")
        XCTAssertEqual(backend.requests.last?.bodyBytes, 5)
    }

    /// A chunked body on a GET (whose framing NIO's encoder would otherwise drop) is re-framed for the backend:
    /// a request hidden in it stays body bytes and never becomes a second backend request.
    func testChunkedBodyOnAGetIsReframedNotSmuggled() async throws {
        let hidden = "GET /admin HTTP/1.1\r\nHost: x\r\nX-Forwarded-Clientcert-Subjectdn: CN=forged\r\n\r\n"
        let chunk = String(hidden.utf8.count, radix: 16)
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("GET /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\(chunk)\r\n\(hidden)\r\n0\r\n\r\n")
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 200)
        // A second request on the same connection still works (the backend connection is not desynchronised).
        try await client.send("GET /y HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let second = await client.readResponse()
        XCTAssertEqual(second?.status, 200)
        await client.close()
        try await Task.sleep(nanoseconds: 200_000_000)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/x", "/y"], "the hidden request never reached the backend as a request")
        XCTAssertEqual(backend.requests.first?.bodyBytes, hidden.utf8.count, "the body arrived whole, as a body")
        XCTAssertEqual(backend.requests.first?.head.headers.first(name: "transfer-encoding"), "chunked")
    }
}
