import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import NIOCore
import XCTest

/// Proxying through the real gateway to real backends: bodies, framing, headers, failures, balancing.
final class ProxyTests: GatewayTestCase {
    override class var backendName: String { "A" }
    /// Backend A is the fixture's `backend`.
    var backendA: TestBackend { backend }
    var backendB: TestBackend!
    var broken: ClosingBackend!
    var refusedPort = 0

    override func setUp() async throws {
        try await super.setUp()
        backendB = TestBackend(name: "B")
        broken = ClosingBackend()
        try await backendB.start()
        try await broken.start()
        addTeardown { [backendB, broken] in
            await backendB?.stop()
            await broken?.stop()
        }
        refusedPort = try unusedPort()
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { max_body_bytes: 67108864 }
                routes:
                  - { match: { path_prefix: "/weighted/" }, backend: weighted }
                  - { match: { path_prefix: "/retry/" }, backend: retry }
                  - { match: { path_prefix: "/dead/" }, backend: dead }
                  - { match: { path_prefix: "/broken/" }, backend: broken }
                  - { match: { path_prefix: "/empty/" }, backend: empty }
                  - { match: { path_prefix: "/timeout/" }, backend: slow }
                  - { backend: a }
              - name: secure
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                limits: { max_body_bytes: 67108864 }
                routes: [ { backend: a } ]
            backends:
              - { name: a, servers: [ { address: "127.0.0.1:\(backendA.port)" } ] }
              - name: weighted
                servers: [ { address: "127.0.0.1:\(backendA.port)", weight: 3 }, { address: "127.0.0.1:\(backendB.port)", weight: 1 } ]
              - name: retry
                servers: [ { address: "127.0.0.1:\(refusedPort)" }, { address: "127.0.0.1:\(backendB.port)" } ]
              - { name: dead, servers: [ { address: "127.0.0.1:\(refusedPort)" } ] }
              - { name: broken, servers: [ { address: "127.0.0.1:\(broken.port)" } ] }
              - { name: empty, servers: [] }
              - { name: slow, response_timeout: 300ms, servers: [ { address: "127.0.0.1:\(backendA.port)" } ] }
            """, in: pki.directory)
    }

    var plain: Int { gateway.port("plain") }
    var mtls: TestClient.TLSOptions {
        .init(trust: [pki.path("ca.pem")], certificateChain: pki.path("valid.pem"), key: pki.path("valid.key"))
    }

    static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }

    func testLargeBodiesStreamIntactOverMutualTLS() async throws {
        let client = try await TestClient.connect(port: gateway.port("secure"), tls: mtls)
        defer { Task { await client.close() } }
        // 6 MB request body with Content-Length, echoed back.
        let payload = Array(TestBackend.pattern(6 * 1024 * 1024).readableBytesView)
        try await client.send("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(payload.count)\r\n\r\n")
        try await client.send(payload)
        let echoed = await client.readResponse(timeout: 60)
        XCTAssertEqual(echoed?.status, 200)
        XCTAssertEqual(echoed.map { Self.sha256($0.body) }, Self.sha256(payload))
        XCTAssertEqual(backendA.requests.last?.bodySHA256, Self.sha256(payload))
        // 8 MB response with Content-Length, then chunked, on the same keep-alive connection.
        for path in ["/bytes/8388608", "/bytes/8388608?chunked"] {
            try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse(timeout: 60)
            XCTAssertEqual(response?.status, 200, path)
            XCTAssertEqual(response.map { Self.sha256($0.body) }, Self.sha256(TestBackend.pattern(8_388_608).readableBytesView), path)
        }
    }

    func testChunkedResponseOnFreshConnection() async throws {
        let chunked = try await TestClient.get(port: plain, tls: nil, path: "/bytes/300000?chunked")
        XCTAssertEqual(chunked?.header("transfer-encoding"), "chunked")
        XCTAssertEqual(chunked?.body.count, 300_000)
    }

    func testChunkedRequestAndResponse() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        var request = "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        var sent: [UInt8] = []
        for i in 0..<50 {
            let chunk = String(repeating: Character(UnicodeScalar(UInt8(65 + i % 26))), count: 1000 + i)
            request += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n"
            sent += Array(chunk.utf8)
        }
        request += "0\r\n\r\n"
        try await client.send(request)
        let response = await client.readResponse()
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.body, sent)
        XCTAssertEqual(backendA.requests.last?.bodyBytes, sent.count)

        try await client.send("GET /bytes/300000?chunked HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let chunked = await client.readResponse()
        XCTAssertEqual(chunked?.header("transfer-encoding"), "chunked")
        XCTAssertEqual(chunked?.body.count, 300_000)
    }

    func testSlowClientDoesNotMakeTheGatewayBufferTheResponse() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        try await client.channel.setOption(.autoRead, value: false).get()
        let total = 128 * 1024 * 1024
        try await client.send("GET /stream/\(total) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        // The client reads nothing: backpressure must stop the backend far below the total. What is in flight
        // is bounded by the kernel's loopback socket buffers (several MB each way) plus one read per channel.
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let stalled = backendA.streamed.withLockedValue { $0 }
        XCTAssertLessThan(stalled, 40 * 1024 * 1024, "the gateway kept reading the backend while the client read nothing")
        XCTAssertGreaterThan(stalled, 0)
        // Now read: the whole body arrives.
        try await client.channel.setOption(.autoRead, value: true).get()
        let response = await client.readResponse(timeout: 120)
        XCTAssertEqual(response?.body.count, total)
    }

    func testHopByHopHeadersAreRemovedBothWays() async throws {
        let response = try await TestClient.get(port: plain, tls: nil, path: "/hop", headers: [
            "Connection: keep-alive, x-secret", "X-Secret: 1", "Keep-Alive: timeout=5", "TE: trailers",
            "Upgrade: websocket", "Proxy-Authorization: Basic eA==", "X-Normal: kept",
        ])
        XCTAssertEqual(response?.status, 200)
        let received = try XCTUnwrap(backendA.requests.last).head.headers
        for name in ["connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-authorization"] {
            XCTAssertFalse(received.contains(name: name), "\(name) reached the backend")
        }
        XCTAssertEqual(received.first(name: "x-normal"), "kept")
        for name in ["x-private", "keep-alive", "proxy-authenticate"] {
            XCTAssertNil(response?.header(name), "\(name) reached the client")
        }
        XCTAssertEqual(response?.header("x-kept"), "yes")
    }

    func testForwardedHeaders() async throws {
        _ = try await TestClient.get(port: plain, tls: nil, path: "/x", host: "app.example:8080", headers: [
            "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil", "X-Forwarded-Port: 1",
            // Spellings CGI-style backends read as the same headers (HTTP_X_FORWARDED_FOR, ...): dropped.
            "X_Forwarded_For: 6.6.6.6", "x-forwarded_proto: https", "X_FORWARDED_HOST: evil", "x_forwarded-port: 1",
        ])
        let headers = try XCTUnwrap(backendA.requests.last).head.headers
        XCTAssertEqual(headers.filter { $0.name.contains("_") }.map(\.name), [], "no underscore spelling of X-Forwarded-* reaches the backend")
        XCTAssertEqual(headers.first(name: "host"), "app.example:8080")
        XCTAssertEqual(headers.first(name: "x-forwarded-for"), "203.0.113.9, 127.0.0.1")
        XCTAssertEqual(headers["x-forwarded-for"].count, 1)
        XCTAssertEqual(headers.first(name: "x-forwarded-proto"), "http")
        XCTAssertEqual(headers.first(name: "x-forwarded-host"), "app.example:8080")
        XCTAssertEqual(headers.first(name: "x-forwarded-port"), String(plain))
    }

    func testGatewayErrors() async throws {
        let dead = try await TestClient.get(port: plain, tls: nil, path: "/dead/x")
        XCTAssertEqual(dead?.status, 502)
        XCTAssertTrue(dead?.text.contains("could not connect to backend 'dead'") ?? false, dead?.text ?? "")
        let brokenResponse = try await TestClient.get(port: plain, tls: nil, path: "/broken/x")
        XCTAssertEqual(brokenResponse?.status, 502)
        let empty = try await TestClient.get(port: plain, tls: nil, path: "/empty/x")
        XCTAssertEqual(empty?.status, 503)
        XCTAssertEqual(empty?.text, "no server in backend 'empty'\n")
        let slow = try await TestClient.get(port: plain, tls: nil, path: "/timeout/slow")
        XCTAssertEqual(slow?.status, 504)
    }

    func testRetriesNextServerWhenOneRefuses() async throws {
        for i in 0..<6 {
            let response = try await TestClient.get(port: plain, tls: nil, path: "/retry/\(i)")
            XCTAssertEqual(response?.status, 200, "request \(i)")
            XCTAssertEqual(response?.header("x-backend"), "B")
        }
        XCTAssertEqual(backendB.requests.count, 6)
    }

    func testWeightedRoundRobin() async throws {
        var counts: [String: Int] = [:]
        for i in 0..<40 {
            let response = try await TestClient.get(port: plain, tls: nil, path: "/weighted/\(i)")
            counts[response?.header("x-backend") ?? "none", default: 0] += 1
        }
        XCTAssertEqual(counts["A"], 30)
        XCTAssertEqual(counts["B"], 10)
    }

    func testPipelinedRequestsAreAnsweredInOrder() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        // One write: a slow response first (everything after it arrives long before it), a body, an answer of
        // the gateway's own (no server), a larger response, a chunked body, and a last request that closes.
        try await client.send(
            "GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n"
                + "POST /echo/1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"
                + "GET /empty/x HTTP/1.1\r\nHost: localhost\r\n\r\n"
                + "GET /bytes/3000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
                + "POST /echo/2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                + "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        var responses: [TestClient.Response] = []
        for _ in 0..<6 {
            guard let response = await client.readResponse(timeout: 15) else { break }
            responses.append(response)
        }
        XCTAssertEqual(responses.map(\.status), [200, 200, 503, 200, 200, 200])
        guard responses.count == 6 else { return }
        XCTAssertEqual(responses[0].text, "slow")
        XCTAssertEqual(responses[1].text, "hello")
        XCTAssertEqual(responses[3].body, Array(TestBackend.pattern(3000).readableBytesView))
        XCTAssertEqual(responses[4].text, "abc")
        XCTAssertEqual(responses[5].text, "ok A")
        XCTAssertEqual(responses[5].header("connection"), "close")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(backendA.requests.map(\.head.uri), ["/slow", "/echo/1", "/bytes/3000", "/echo/2", "/last"])
    }

    /// While a request waits for its response the client's socket stays open for reading (no epoll_ctl per
    /// request): what the client sends meanwhile, in later writes, waits unparsed and is answered in order
    /// after it, a body larger than one read (reads are held while anything waits) included.
    func testRequestsWrittenWhileOneWaitsForItsResponseAreAnsweredInOrderAfterIt() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        // Paths of this test only ("ahead"): the backend is shared with the other tests.
        func seen() -> [String] { backendA.requests.map(\.head.uri).filter { $0.contains("ahead") } }
        try await client.send("GET /slow/ahead HTTP/1.1\r\nHost: localhost\r\n\r\n")
        // Written while /slow is with the backend (it answers after 3 s).
        for _ in 0..<250 where seen().isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(seen(), ["/slow/ahead"])
        // The gateway's side of this connection is still registered for reading while the request waits.
        let clientPort = try XCTUnwrap(client.channel.localAddress?.port)
        var events: UInt32?
        for _ in 0..<100 {
            events = EpollInterest.events(localPort: plain, remotePort: clientPort)
            if events != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let mask = try XCTUnwrap(events, "the gateway's socket is not in an epoll set")
        XCTAssertNotEqual(mask & EpollInterest.readable, 0, "EPOLLIN dropped while the request waits for its response")
        try await client.send("GET /second/ahead HTTP/1.1\r\nHost: localhost\r\n\r\n")
        // Once something waits in the parser the read is held: EPOLLIN goes (at most one read's worth waits).
        var held = false
        for _ in 0..<100 {
            if let mask = EpollInterest.events(localPort: plain, remotePort: clientPort), mask & EpollInterest.readable == 0 {
                held = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTAssertTrue(held, "reads went on while a request waited in the parser")
        XCTAssertEqual(seen(), ["/slow/ahead"], "nothing read ahead reached the backend")
        let body = String(repeating: "0123456789abcdef", count: 16_384)  // 256 KiB
        try await client.send("POST /echo/ahead HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        try await client.send("GET /last/ahead HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        var responses: [TestClient.Response] = []
        for _ in 0..<4 {
            guard let response = await client.readResponse(timeout: 15) else { break }
            responses.append(response)
        }
        XCTAssertEqual(responses.map(\.status), [200, 200, 200, 200])
        guard responses.count == 4 else { return }
        XCTAssertEqual(responses[0].text, "slow")
        XCTAssertEqual(responses[2].body.count, body.utf8.count)
        XCTAssertEqual(responses[2].text, body)
        XCTAssertEqual(responses[3].header("connection"), "close")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(seen(), ["/slow/ahead", "/second/ahead", "/echo/ahead", "/last/ahead"])
    }

    func testNothingPipelinedAfterARefusedRequestReachesTheBackend() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        try await client.send(
            "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n"
                + "POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999\r\n\r\n"
                + "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let first = await client.readResponse()
        let refused = await client.readResponse()
        XCTAssertEqual(first?.status, 200)
        XCTAssertEqual(refused?.status, 413)
        XCTAssertEqual(refused?.header("connection"), "close")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(backendA.requests.map(\.head.uri), ["/first"])
    }

    func testKeepAliveServesManyRequestsOnOneConnection() async throws {
        let client = try await TestClient.connect(port: plain, tls: nil)
        defer { Task { await client.close() } }
        for i in 0..<20 {
            try await client.send("GET /k/\(i) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200)
        }
        XCTAssertFalse(client.isClosed)
        try await client.send("GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        let last = await client.readResponse()
        XCTAssertEqual(last?.header("connection"), "close")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
    }

    func testSmoothScheduleInterleaves() {
        XCTAssertEqual(LoadBalancer.smoothSchedule(weights: [5, 1, 1]), [0, 0, 1, 0, 2, 0, 0])
        XCTAssertEqual(LoadBalancer.smoothSchedule(weights: [2, 2]), [0, 1])
    }
}
