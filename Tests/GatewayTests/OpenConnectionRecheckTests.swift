import Foundation
import GatewayCore
import GatewayTooling
import NIOConcurrencyHelpers
import XCTest

/// Policy changes reach connections that are already open: after a reload the next request of every keep-alive
/// connection runs the new generation (plugin chain, routes), and a client the new trust settings no longer
/// admit (CA removed, revoked by a new CRL, revoked at its distribution point) is refused on its open
/// connection before another request reaches a backend, with an audit line.
final class OpenConnectionRecheckTests: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        RevocationStore.shared.reset()
    }

    private func yaml(tag: String, tls extra: [String] = []) throws -> String {
        let tagger = try PluginFixtures.build("tagger")
        // A listener name of its own: plugin metric series are per plugin and listener, process-wide, and other
        // tests count the tagger's requests on `mtls`.
        return mtlsConfig(plugins: ["{ library: \(tagger), config: { tag: \(tag) } }", "{ library: libAudit.so, config: { path: \(pki.path("audit.log")) } }"], tls: extra)
            .replacingOccurrences(of: "- name: mtls", with: "- name: recheck")
    }

    private func auditLines() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: pki.path("audit.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    private func waitForAudit(_ predicate: ([String: Any]) -> Bool) async -> [String: Any]? {
        for _ in 0..<100 {
            if let line = auditLines().first(where: predicate) { return line }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return nil
    }

    private static func get(_ client: TestClient, _ path: String) async throws -> TestClient.Response? {
        try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        return await client.readResponse()
    }

    func testAClientWhoseCAWasRemovedIsRefusedOnItsOpenConnection() async throws {
        gateway = try await GatewayHarness(yaml: try yaml(tag: "one"), in: pki.directory)
        let client = try await TestClient.connect(port: gateway.port("recheck"), tls: tls("valid"))
        let first = try await Self.get(client, "/1")
        XCTAssertEqual(first?.status, 200)
        XCTAssertEqual(first?.header("x-one-response"), "1")

        // Only the other CA is trusted now.
        let outcome = await gateway.reload(yaml: try yaml(tag: "two").replacingOccurrences(of: "client_ca: ca.pem", with: "client_ca: other-root.pem"))
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        let refused = try await Self.get(client, "/2")
        XCTAssertEqual(refused?.status, 403)
        XCTAssertEqual(refused?.header("connection"), "close")
        XCTAssertTrue(refused?.text.contains("unknown_ca") ?? false, refused?.text ?? "")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/1"], "the refused request never reached the backend")
        let line = await waitForAudit { $0["event"] as? String == "handshake_rejected" && $0["reason"] as? String == "unknown_ca" }
        XCTAssertEqual(line?["subject"] as? String, "CN=valid-client,OU=ops,O=Test,C=US", "\(auditLines())")
        let logged = await gateway.logs.waitFor { $0.message == "closing a connection whose client is no longer admitted" && $0.metadata["reason"] == "unknown_ca" }
        XCTAssertNotNil(logged)
    }

    func testAClientRevokedByANewCRLIsRefusedOnItsOpenConnectionAndOthersMoveOn() async throws {
        gateway = try await GatewayHarness(yaml: try yaml(tag: "one"), in: pki.directory)
        let revoked = try await TestClient.connect(port: gateway.port("recheck"), tls: tls("revoked"))
        let good = try await TestClient.connect(port: gateway.port("recheck"), tls: tls("valid"))
        let before = try await Self.get(revoked, "/r1")
        XCTAssertEqual(before?.status, 200)
        let goodBefore = try await Self.get(good, "/g1")
        XCTAssertEqual(goodBefore?.header("x-one-response"), "1")

        let outcome = await gateway.reload(yaml: try yaml(tag: "two", tls: ["crl: root.crl.pem"]))
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        let after = try await Self.get(revoked, "/r2")
        XCTAssertEqual(after?.status, 403)
        let line = await waitForAudit { $0["event"] as? String == "handshake_rejected" && $0["reason"] as? String == "certificate_revoked" }
        XCTAssertNotNil(line, "\(auditLines())")
        // The client still admitted moves on to the new chain, on the same connection, and stays open.
        let goodAfter = try await Self.get(good, "/g2")
        XCTAssertEqual(goodAfter?.status, 200)
        XCTAssertEqual(goodAfter?.header("x-two-response"), "1")
        XCTAssertNil(goodAfter?.header("x-one-response"))
        XCTAssertNil(goodAfter?.header("connection"))
        let destroyed = await gateway.logs.waitFor { $0.message.contains("tagger one destroyed") }
        XCTAssertNotNil(destroyed, "the old generation is torn down once no connection is left on it")
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/r1", "/g1", "/g2"])
        await good.close()
    }

    func testARevocationLearntAtTheDistributionPointClosesAnOpenConnection() async throws {
        let crls = CRLServer()
        try await crls.start()
        addTeardown { await crls.stop() }
        let f = CertificateFactory.self
        let leaf = try f.makeLeaf(f.name(commonName: "dp-open"), issuer: pki.rootCA, crlURLs: [crls.url("/root.crl")])
        try pki.addClient("dp-open", leaf)
        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [])))
        gateway = try await GatewayHarness(yaml: try yaml(tag: "one", tls: ["revocation: { crl_fetch: true, refresh_interval: 1s }"]), in: pki.directory)
        let client = try await TestClient.connect(port: gateway.port("recheck"), tls: tls("dp-open"))
        let first = try await Self.get(client, "/1")
        XCTAssertEqual(first?.status, 200)
        let second = try await Self.get(client, "/2")
        XCTAssertEqual(second?.status, 200, "a refresh that changes nothing keeps the connection")

        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [leaf.certificate.serialNumber])))
        // Until the gateway holds the new CRL (fetched by its background refresh, no handshake involved).
        for _ in 0..<200 where !(RevocationStore.shared.crl(at: crls.url("/root.crl"))?.crl.isRevoked(serial: leaf.certificate.serialNumber) ?? false) {
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        let refused = try await Self.get(client, "/3")
        XCTAssertEqual(refused?.status, 403)
        XCTAssertTrue(refused?.text.contains("certificate_revoked") ?? false, refused?.text ?? "")
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/1", "/2"])
        let line = await waitForAudit { $0["event"] as? String == "handshake_rejected" && $0["reason"] as? String == "certificate_revoked" }
        XCTAssertNotNil(line, "\(auditLines())")
    }

    /// Keep-alive clients send requests without pause while the configuration is reloaded five times: no
    /// request fails, no connection is closed, and after each reload every connection's next response comes from
    /// the new chain.
    func testReloadsUnderKeepAliveLoadMoveEveryConnectionWithoutAFailure() async throws {
        gateway = try await GatewayHarness(yaml: try yaml(tag: "t0"), in: pki.directory)
        let port = gateway.port("recheck")
        let clients = try await (0..<4).asyncMap { _ in try await TestClient.connect(port: port, tls: self.tls("valid")) }
        let failures = NIOLockedValueBox<[String]>([])
        let stop = NIOLockedValueBox(false)
        let current = NIOLockedValueBox("t0")
        let behind = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var count = 0
                    while !stop.withLockedValue({ $0 }) {
                        // The tag in force when this request is sent (a reload may complete while it is in flight).
                        let expectedAtLeast = current.withLockedValue { $0 }
                        let response = try await Self.get(client, "/c\(index)/\(count)")
                        count += 1
                        guard let response, response.status == 200, response.header("connection") == nil else {
                            failures.withLockedValue { $0.append("client \(index) request \(count): \(response.map { "\($0.status) \($0.headers)" } ?? "no response")") }
                            return
                        }
                        let tag = response.headers.first { $0.0.hasSuffix("-response") }?.0.dropFirst(2).dropLast(9)
                        if let tag, String(tag) < expectedAtLeast { behind.withLockedValue { $0 += 1 } }
                    }
                }
            }
            for round in 1...5 {
                try await Task.sleep(nanoseconds: 300_000_000)
                let outcome = await gateway.reload(yaml: try yaml(tag: "t\(round)"))
                XCTAssertTrue(outcome.success, "\(outcome.errors)")
                current.withLockedValue { $0 = "t\(round)" }
            }
            try await Task.sleep(nanoseconds: 300_000_000)
            stop.withLockedValue { $0 = true }
            try await group.waitForAll()
        }
        XCTAssertEqual(failures.withLockedValue { $0 }, [])
        XCTAssertEqual(behind.withLockedValue { $0 }, 0, "a response sent after a reload came from an older chain")
        for (index, client) in clients.enumerated() {
            let last = try await Self.get(client, "/last\(index)")
            XCTAssertEqual(last?.header("x-t5-response"), "1")
            await client.close()
        }
        let destroyed = await gateway.logs.waitFor { $0.message.contains("tagger t4 destroyed") }
        XCTAssertNotNil(destroyed)
        XCTAssertGreaterThan(backend.requests.count, 40)
    }
}

private extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
