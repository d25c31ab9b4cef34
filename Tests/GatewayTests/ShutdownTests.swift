import GatewayCore
import GatewayTooling
import XCTest

/// Graceful shutdown: stop accepting, let the in-flight request finish, close idle connections.
final class ShutdownTests: XCTestCase {
    func testInFlightRequestCompletesAndNewConnectionsAreRefused() async throws {
        let pki = try TestPKI()
        let backend = TestBackend()
        try await backend.start()
        let gateway = try await GatewayHarness(yaml: """
            shutdown_timeout: 10s
            listeners:
              - { name: plain, address: "127.0.0.1:0", protocol: http, routes: [ { backend: app } ] }
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let port = gateway.port("plain")
        let idle = try await TestClient.connect(port: port, tls: nil)
        let busy = try await TestClient.connect(port: port, tls: nil)
        // A request pipelined behind the in-flight one is not started once shutdown began.
        try await busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /queued HTTP/1.1\r\nHost: a\r\n\r\n")
        try await Task.sleep(nanoseconds: 300_000_000)

        let shutdown = Task { await gateway.stop() }
        let idleClosed = await idle.waitForClose(timeout: 5)
        XCTAssertTrue(idleClosed, "idle connections are closed at once")
        var refused = false
        do {
            let late = try await TestClient.connect(port: port, tls: nil)
            await late.close()
        } catch {
            refused = true
        }
        XCTAssertTrue(refused, "no new connections after shutdown began")
        let response = await busy.readResponse(timeout: 10)
        XCTAssertEqual(response?.status, 200, "the in-flight request must complete")
        XCTAssertEqual(response?.text, "slow")
        XCTAssertEqual(response?.header("connection"), "close", "the client learns that the connection ends")
        let busyClosed = await busy.waitForClose(timeout: 5)
        XCTAssertTrue(busyClosed)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/slow"])
        await shutdown.value
        await backend.stop()
    }
}
