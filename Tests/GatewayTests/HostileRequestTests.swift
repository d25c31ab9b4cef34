import GatewayCore
import XCTest

/// Findings from trying the gateway as a hostile client (the hardening issue), each checked on real sockets:
/// what the client gets, and what the backend received (or that it received nothing).
final class HostileRequestTests: GatewayTestCase {
    var other: TestBackend!

    override func setUp() async throws {
        try await super.setUp()
        other = TestBackend(name: "other")
        try await other.start()
        addTeardown { [other] in await other?.stop() }
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                limits: { max_body_bytes: 1000 }
                routes:
                  - { match: { host: other.example }, backend: other }
                  - { backend: app }
            backends:
              - { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] }
              - { name: other, servers: [ { address: "127.0.0.1:\(other.port)" } ] }
            """, in: pki.directory)
    }

    private func send(_ raw: String) async throws -> (response: TestClient.Response?, closed: Bool) {
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try? await client.send(raw)
        let response = await client.readResponse()
        let closed = await client.waitForClose(timeout: 3)
        await client.close()
        return (response, closed)
    }

    func testAnAbsoluteFormTargetIsRoutedAndForwardedByItsAuthority() async throws {
        // Before: routed by Host (localhost -> app) but forwarded with the absolute target, which a backend
        // prefers (RFC 9112): routing and plugins saw one host, the backend another.
        let (response, _) = try await send("GET http://other.example/x?y=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        XCTAssertEqual(response?.status, 200)
        XCTAssertTrue(backend.requests.isEmpty, "not routed by the Host header")
        let received = try XCTUnwrap(other.requests.last)
        XCTAssertEqual(received.head.uri, "/x?y=1", "origin-form upstream")
        XCTAssertEqual(received.head.headers["host"], ["other.example"])
        XCTAssertEqual(received.head.headers["x-forwarded-host"], ["other.example"])
    }

    func testRefusedHeadsNeverReachABackend() async throws {
        for (raw, status) in [
            ("GET /x#fragment HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775813\r\n\r\nabc", 400),
            ("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        ] {
            let (response, closed) = try await send(raw)
            XCTAssertEqual(response?.status, status, raw.debugDescription)
            XCTAssertTrue(closed, "closed after \(raw.debugDescription)")
        }
        XCTAssertTrue(backend.requests.isEmpty, "forwarded: \(backend.requests.map(\.head))")
        XCTAssertTrue(other.requests.isEmpty)
    }

    func testConnectionCannotStripHostFromTheForwardedRequest() async throws {
        let (response, _) = try await send("GET / HTTP/1.1\r\nHost: app.example\r\nConnection: host, x-forwarded-host\r\n\r\n")
        XCTAssertEqual(response?.status, 200)
        let received = try XCTUnwrap(backend.requests.last)
        XCTAssertEqual(received.head.headers["host"], ["app.example"])
        XCTAssertEqual(received.head.headers["x-forwarded-host"], ["app.example"], "set by the gateway after the hop-by-hop removal")
    }

    func testAnHTTP10KeepAliveClientGetsAnUnframedResponseThenTheClose() async throws {
        // The backend answers without Content-Length (chunked to the gateway): an HTTP/1.0 client can only find
        // the end of that body by the close.
        let (response, closed) = try await send("GET /bytes/300?chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.body.count, 300)
        XCTAssertTrue(closed, "the gateway closes: the client had no other way to find the end")
        // With a length, keep-alive is kept.
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let first = await client.readResponse()
        XCTAssertEqual(first?.status, 200)
        try await client.send("GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        let second = await client.readResponse()
        XCTAssertEqual(second?.status, 200, "second request on the same connection")
        await client.close()
    }
}
