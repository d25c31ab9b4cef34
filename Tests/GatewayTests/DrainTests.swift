import Foundation
import XCTest

/// `drain_delay` in the real `gateway run` (as nobody): on SIGTERM `/readyz` answers 503 at once, the listener
/// keeps accepting for the delay with every response closing its connection, then stops accepting; an
/// in-flight request still completes, and the process exits 0.
final class DrainTests: GatewayTestCase {
    func testSIGTERMDrainsBeforeTheListenersClose() async throws {
        let port = try unusedPort(), adminPort = try unusedPort()
        let gateway = try await runGateway("""
            drain_delay: 2s
            shutdown_timeout: 10s
            \(mtlsConfig(port: port, adminPort: adminPort, plugins: []))
            """, name: "drain", adminPort: adminPort)
        let kept = try await TestClient.connect(port: port, tls: tls("valid"))
        try await kept.send("GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let before = await kept.readResponse()
        XCTAssertEqual(before?.status, 200)
        XCTAssertNil(before?.header("connection"), "keep-alive before the shutdown")

        let signalled = Date()
        gateway.signal(SIGTERM)
        var ready: TestClient.Response?
        for _ in 0..<50 {
            ready = try? await TestClient.get(port: adminPort, tls: nil, path: "/readyz", host: "127.0.0.1")
            if ready?.status == 503 { break }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        XCTAssertEqual(ready?.status, 503, "the balancers' health checks see the instance leave at once")
        XCTAssertTrue(ready?.text.contains("shutting down") == true, ready?.text ?? "")

        // During the delay: a new connection is still served, and told to close.
        let late = try await TestClient.connect(port: port, tls: tls("valid"))
        try await late.send("GET /during HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let during = await late.readResponse()
        XCTAssertEqual(during?.status, 200)
        XCTAssertEqual(during?.header("connection"), "close")
        let lateClosed = await late.waitForClose(timeout: 5)
        XCTAssertTrue(lateClosed)
        // The kept-alive connection's next response closes it.
        try await kept.send("GET /next HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let next = await kept.readResponse()
        XCTAssertEqual(next?.status, 200)
        XCTAssertEqual(next?.header("connection"), "close")
        let keptClosed = await kept.waitForClose(timeout: 5)
        XCTAssertTrue(keptClosed)
        // A slow request in flight when the listener closes still completes.
        let slow = try await TestClient.connect(port: port, tls: tls("valid"))
        try await slow.send("GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n")

        // Then the listener stops accepting: not before the delay has passed.
        var refusedAt: Date?
        while refusedAt == nil, Date().timeIntervalSince(signalled) < 10 {
            do {
                let probe = try await TestClient.connect(port: port, tls: nil)
                await probe.close()
                try await Task.sleep(nanoseconds: 100_000_000)
            } catch {
                refusedAt = Date()
            }
        }
        let refused = try XCTUnwrap(refusedAt, "the listener never closed")
        XCTAssertGreaterThanOrEqual(refused.timeIntervalSince(signalled), 2, "accepting until drain_delay has passed")
        let slowResponse = await slow.readResponse(timeout: 10)
        XCTAssertEqual(slowResponse?.status, 200)
        XCTAssertEqual(slowResponse?.text, "slow")
        gateway.process.waitUntilExit()
        XCTAssertEqual(gateway.process.terminationStatus, 0)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/before", "/during", "/next", "/slow"])
        XCTAssertTrue(gateway.log.contains("draining before the listeners close"), gateway.log)
    }

    func testDrainDelayMustBeADuration() throws {
        let problems = try pki.configProblems("""
            drain_delay: soon
            \(mtlsConfig(plugins: []))
            """)
        assertProblem(problems, "drain_delay")
    }
}
