import Foundation
import GatewayCore
import XCTest

/// Limits against a client that opens many connections or never completes a handshake.
final class ConnectionLimitTests: GatewayTestCase {
    private func samples() throws -> MetricSamples {
        let runtime = gateway.server.runtime
        return try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
    }

    /// A plain-HTTP request on a new connection: its status, or nil when the gateway closed the connection.
    private func open() async throws -> TestClient {
        try await TestClient.connect(port: gateway.port("plain"), tls: nil)
    }

    func testTheLimiterCountsPerListenerAndPerAddress() {
        let limiter = ConnectionLimiter()
        XCTAssertEqual(limiter.admit(ip: "a", maxTotal: 3, maxPerIP: 2), .admitted)
        XCTAssertEqual(limiter.admit(ip: "a", maxTotal: 3, maxPerIP: 2), .admitted)
        XCTAssertEqual(limiter.admit(ip: "a", maxTotal: 3, maxPerIP: 2), .clientFull)
        XCTAssertEqual(limiter.admit(ip: "b", maxTotal: 3, maxPerIP: 2), .admitted)
        XCTAssertEqual(limiter.admit(ip: "c", maxTotal: 3, maxPerIP: 2), .listenerFull)
        limiter.release(ip: "a")
        XCTAssertEqual(limiter.admit(ip: "c", maxTotal: 3, maxPerIP: 2), .admitted)
        XCTAssertEqual(limiter.admit(ip: "d", maxTotal: 0, maxPerIP: 0), .admitted, "0: no limit")
        XCTAssertEqual(limiter.openConnections, 4)
        XCTAssertNotNil(limiter.shouldLogRefusal(now: .uptimeNanoseconds(5_000_000_000)))
        XCTAssertNil(limiter.shouldLogRefusal(now: .uptimeNanoseconds(5_500_000_000)), "one line a second")
        XCTAssertEqual(limiter.shouldLogRefusal(now: .uptimeNanoseconds(6_100_000_000)), 2, "with the count since")
    }

    func testConnectionsOverThePerAddressLimitAreClosedAtAccept() async throws {
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - { name: plain, address: "127.0.0.1:0", protocol: http, limits: { max_connections_per_ip: 2 }, routes: [ { backend: app } ] }
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let first = try await open(), second = try await open()
        try await first.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let answered = await first.readResponse()
        XCTAssertEqual(answered?.status, 200)
        let third = try await open()
        let closed = await third.waitForClose(timeout: 5)
        XCTAssertTrue(closed, "the third connection from 127.0.0.1 is closed at accept")
        XCTAssertEqual(try samples().value("gateway_connections_refused_total", ["listener": "plain", "reason": "client_limit"]), 1)
        let logged = await gateway.logs.waitFor { $0.message.contains("refusing connections over the limit") }
        XCTAssertNotNil(logged)
        await second.close()
        try await Task.sleep(nanoseconds: 200_000_000)
        let fourth = try await open()
        try await fourth.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let again = await fourth.readResponse()
        XCTAssertEqual(again?.status, 200, "a slot freed by a close is used again")
        for client in [first, third, fourth] { await client.close() }
    }

    func testAConnectionThatNeverCompletesAHandshakeIsClosedWithinHandshakeTimeout() async throws {
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                limits: { handshake_timeout: 300ms, header_timeout: 30s }
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let silent = try await TestClient.connect(port: gateway.port("mtls"), tls: nil)
        let closed = await silent.waitForClose(timeout: 10)
        XCTAssertTrue(closed, "closed by handshake_timeout, long before header_timeout (30s)")
        await silent.close()
        XCTAssertEqual(try samples().value("gateway_tls_handshakes_total", ["listener": "mtls", "result": "failure", "reason": "handshake_timeout"]), 1)
        // A real client still gets through.
        let response = try await TestClient.get(port: gateway.port("mtls"), tls: pki.clientTLS("valid"), path: "/")
        XCTAssertEqual(response?.status, 200)
    }
}
