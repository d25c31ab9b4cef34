import Foundation
import GatewayCore
import GatewayTooling
import X509
import XCTest

/// `tls.revocation.crl_fetch`: CRLs fetched over http from the distribution points the clients' certificates
/// name, served by a real http server on loopback, refreshed without a reload, and every bad answer named.
final class CRLFetchTests: RevocationTestCase {
    private var crls: CRLServer!

    override func setUp() async throws {
        try await super.setUp()
        crls = CRLServer()
        try await crls.start()
        let server = crls!
        addTeardown { await server.stop() }
    }

    /// A client of `issuer` whose certificate names `paths` on the CRL server as its distribution points.
    @discardableResult
    private func addClient(_ name: String, issuer: IssuedCertificate? = nil, chain: [IssuedCertificate] = [], paths: [String]) throws -> IssuedCertificate {
        let f = CertificateFactory.self
        let leaf = try f.makeLeaf(f.name(commonName: name), issuer: issuer ?? pki.rootCA, crlURLs: paths.map { crls.url($0) })
        try pki.addClient(name, leaf, chain: chain)
        return leaf
    }

    func testACertificateRevokedAtItsDistributionPointIsRefusedAfterTheNextRefreshWithoutAReload() async throws {
        let leaf = try addClient("dp-client", paths: ["/root.crl"])
        try addClient("dp-other", paths: ["/root.crl"])
        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [])))
        try await start("{ crl_fetch: true, refresh_interval: 1s }")

        let before = try await status("dp-client")
        XCTAssertEqual(before, 200)
        let again = try await status("dp-other")
        XCTAssertEqual(again, 200)
        XCTAssertEqual(crls.requests("/root.crl"), 1, "one fetch serves every client of the distribution point")
        // A client without distribution points is not checked online.
        let plain = try await status("valid")
        XCTAssertEqual(plain, 200)

        // Revoked at the distribution point: refused once the background refresh has fetched the new CRL.
        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [leaf.certificate.serialNumber])))
        var refused = false
        for _ in 0..<40 where !refused {
            try await Task.sleep(nanoseconds: 250_000_000)
            refused = try await status("dp-client") == nil
        }
        XCTAssertTrue(refused, "still admitted after 10 s")
        let logged = await rejection(.revoked, "is revoked by the CRL from \(crls.url("/root.crl"))")
        XCTAssertNotNil(logged)
        let other = try await status("dp-other")
        XCTAssertEqual(other, 200)

        let samples = try metrics()
        XCTAssertGreaterThanOrEqual(samples.value("gateway_revocation_checks_total", ["listener": "mtls", "source": "crl_fetched", "result": "revoked"]) ?? 0, 1)
        XCTAssertGreaterThanOrEqual(samples.value("gateway_revocation_checks_total", ["listener": "mtls", "source": "crl_fetched", "result": "good"]) ?? 0, 3)
        XCTAssertGreaterThanOrEqual(samples.value("gateway_revocation_fetches_total", ["source": "crl", "result": "ok"]) ?? 0, 2)
        let age = try XCTUnwrap(samples.value("gateway_revocation_crl_age_seconds", ["url": crls.url("/root.crl")]))
        XCTAssertLessThan(age, 60)
        let next = try XCTUnwrap(samples.value("gateway_revocation_next_update_seconds", ["source": "crl_fetched"]))
        XCTAssertGreaterThan(next, 6 * 86400)
    }

    func testAnIntermediatesCRLFromItsDistributionPointWithOnlyTheRootTrusted() async throws {
        let revoked = try addClient("dp-revoked", issuer: pki.intermediateCA, chain: [pki.intermediateCA], paths: ["/intermediate.crl"])
        try addClient("dp-good", issuer: pki.intermediateCA, chain: [pki.intermediateCA], paths: ["/intermediate.crl"])
        crls.set("/intermediate.crl", .body(try CRLBuilder.make(issuer: pki.intermediateCA, revoked: [revoked.certificate.serialNumber])))
        try await start("{ crl_fetch: true }")
        let good = try await status("dp-good")
        XCTAssertEqual(good, 200)
        let refused = try await status("dp-revoked")
        XCTAssertNil(refused)
        let logged = await rejection(.revoked, "revoked by the CRL from \(crls.url("/intermediate.crl"))")
        XCTAssertNotNil(logged)
        XCTAssertEqual(backend.requests.count, 1)
    }

    func testACRLIsRefreshedBeforeItsNextUpdateWithoutAHandshake() async throws {
        try addClient("dp-client", paths: ["/short.crl"])
        let nextUpdate = Date() + 3
        crls.set("/short.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [], nextUpdate: nextUpdate)))
        try await start("{ crl_fetch: true, refresh_interval: 1h }")
        let first = try await status("dp-client")
        XCTAssertEqual(first, 200)
        XCTAssertEqual(crls.requests("/short.crl"), 1)
        crls.set("/short.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [])))
        // The hour-long interval did not wait: the CRL is due before its nextUpdate, and fetched in the
        // background, with no handshake asking for it.
        while crls.requests("/short.crl") < 2, Date() < nextUpdate { try await Task.sleep(nanoseconds: 50_000_000) }
        XCTAssertGreaterThanOrEqual(crls.requests("/short.crl"), 2, "not refreshed before its nextUpdate")
        XCTAssertLessThan(Date(), nextUpdate)
        try await Task.sleep(nanoseconds: UInt64(max(nextUpdate.timeIntervalSinceNow + 0.5, 0) * 1e9))
        // Past the first CRL's nextUpdate, the client is admitted with the refreshed one, which is not fetched
        // again on demand.
        let fetches = crls.requests("/short.crl")
        let second = try await status("dp-client")
        XCTAssertEqual(second, 200)
        XCTAssertEqual(crls.requests("/short.crl"), fetches)
    }

    func testAnOlderCRLIsNeverTakenOverTheOneHeld() async throws {
        let leaf = try addClient("dp-client", paths: ["/root.crl"])
        let revoking = try CRLBuilder.make(issuer: pki.rootCA, revoked: [leaf.certificate.serialNumber], thisUpdate: Date() - 60)
        crls.set("/root.crl", .body(revoking))
        try await start("{ crl_fetch: true, refresh_interval: 1s }")
        let refused = try await status("dp-client")
        XCTAssertNil(refused)
        // An older CRL that did not revoke it yet (validly signed, not past its nextUpdate), as a replay would serve.
        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [], thisUpdate: Date() - 3600)))
        let before = crls.requests("/root.crl")
        while crls.requests("/root.crl") < before + 2 { try await Task.sleep(nanoseconds: 50_000_000) }
        let still = try await status("dp-client")
        XCTAssertNil(still, "an older CRL undid a revocation")
        XCTAssertGreaterThanOrEqual(try metrics().value("gateway_revocation_fetches_total", ["source": "crl", "result": "stale"]) ?? 0, 1)
    }

    func testTheDistributionPointDownAtStartUpDeniesByDefaultAndAdmitsUnderAllow() async throws {
        let down = try unusedPort()
        let f = CertificateFactory.self
        try pki.addClient("dp-down", try f.makeLeaf(f.name(commonName: "dp-down"), issuer: pki.rootCA, crlURLs: ["http://127.0.0.1:\(down)/root.crl"]))
        try await start("{ crl_fetch: true, fetch_timeout: 2s }")
        let denied = try await status("dp-down")
        XCTAssertNil(denied)
        let logged = await rejection(.revocationUnavailable, "(connect_failed)")
        XCTAssertNotNil(logged, "\(gateway.logs.all.map(\.metadata))")
        XCTAssertGreaterThanOrEqual(try metrics().value("gateway_revocation_fetches_total", ["source": "crl", "result": "connect_failed"]) ?? 0, 1)
        XCTAssertEqual(try metrics().value("gateway_tls_handshakes_total", ["listener": "mtls", "result": "failure", "reason": "revocation_unavailable"]), 1)

        let outcome = await gateway.reload(yaml: mtlsConfig(plugins: [], tls: ["revocation: { crl_fetch: true, fetch_timeout: 2s, unknown: allow }"]))
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        let admitted = try await status("dp-down")
        XCTAssertEqual(admitted, 200)
        XCTAssertGreaterThanOrEqual(try metrics().value("gateway_revocation_checks_total", ["listener": "mtls", "source": "crl_fetched", "result": "unavailable"]) ?? 0, 2)
    }

    func testEveryBadAnswerHasItsReason() async throws {
        let f = CertificateFactory.self
        let cases: [(client: String, path: String, answer: CRLServer.Answer, reason: String)] = [
            ("dp-wrong-issuer", "/other.crl", .body(try CRLBuilder.make(issuer: pki.otherCA, revoked: [])), "(wrong_issuer)"),
            ("dp-forged", "/forged.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [], signer: pki.otherCA.privateKey)), "(bad_signature)"),
            ("dp-garbage", "/garbage.crl", .body(Array("<html>not a CRL</html>".utf8)), "(malformed)"),
            ("dp-stale", "/stale.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [], thisUpdate: Date() - 7200, nextUpdate: Date() - 60)), "(stale)"),
            ("dp-large", "/large.crl", .body([UInt8](repeating: 0x30, count: 4096)), "(too_large)"),
            ("dp-404", "/missing.crl", .status(404), "(http_status)"),
            ("dp-hang", "/hang.crl", .hang, "(timeout)"),
        ]
        for entry in cases {
            try pki.addClient(entry.client, try f.makeLeaf(f.name(commonName: entry.client), issuer: pki.rootCA, crlURLs: [crls.url(entry.path)]))
            crls.set(entry.path, entry.answer)
        }
        // A certificate whose only distribution point is not http.
        try pki.addClient("dp-ldap", try f.makeLeaf(f.name(commonName: "dp-ldap"), issuer: pki.rootCA, crlURLs: ["ldap://ldap.example/cn=CRL"]))
        try await start("{ crl_fetch: true, fetch_timeout: 500ms, max_crl_bytes: 2048 }")
        for entry in cases {
            let refused = try await status(entry.client)
            XCTAssertNil(refused, entry.client)
            let logged = await rejection(.revocationUnavailable, "'CN=\(entry.client),C=US' is unknown \(entry.reason)")
            XCTAssertNotNil(logged, "\(entry.client): \(gateway.logs.all.suffix(3).map(\.metadata))")
        }
        let ldap = try await status("dp-ldap")
        XCTAssertNil(ldap)
        let logged = await rejection(.revocationUnavailable, "(no_url): 'ldap://ldap.example/cn=CRL' is not an http URL")
        XCTAssertNotNil(logged)
        XCTAssertEqual(backend.requests.count, 0)
    }

    /// The real gateway process, as the unprivileged user: a fetched CRL kept in `cache_dir` lets a restart
    /// admit the client while the distribution point is down, and revoke it when the cached CRL says so.
    func testACacheDirectoryLetsARestartWorkWithTheDistributionPointDown() async throws {
        let revoked = try addClient("dp-revoked", paths: ["/root.crl"])
        try addClient("dp-client", paths: ["/root.crl"])
        crls.set("/root.crl", .body(try CRLBuilder.make(issuer: pki.rootCA, revoked: [revoked.certificate.serialNumber])))
        try FileManager.default.createDirectory(atPath: pki.path("crl-cache"), withIntermediateDirectories: true)
        let port = try unusedPort()
        let adminPort = try unusedPort()
        let yaml = mtlsConfig(port: port, adminPort: adminPort, plugins: [], tls: ["revocation: { crl_fetch: true, cache_dir: crl-cache, fetch_timeout: 1s }"])
        var running = try await runGateway(yaml, name: "first", adminPort: adminPort)
        let first = try await TestClient.get(port: port, tls: tls("dp-client"), path: "/who")?.status
        XCTAssertEqual(first, 200, running.log)
        XCTAssertEqual(crls.requests("/root.crl"), 1)
        let cached = try FileManager.default.contentsOfDirectory(atPath: pki.path("crl-cache")).filter { $0.hasPrefix("crl-") && $0.hasSuffix(".der") }
        XCTAssertEqual(cached.count, 1)
        let owner = try FileManager.default.attributesOfItem(atPath: pki.path("crl-cache/\(cached.first ?? "")"))[.ownerAccountID] as? NSNumber
        XCTAssertEqual(owner?.uint32Value, Unprivileged.uid, "written by the gateway's own user")
        XCTAssertEqual(running.terminate(), 0)

        await crls.stop()
        running = try await runGateway(yaml, name: "second", adminPort: adminPort)
        defer { _ = running.terminate() }
        let again = try await TestClient.get(port: port, tls: tls("dp-client"), path: "/who")?.status
        XCTAssertEqual(again, 200, running.log)
        let refused = try await TestClient.get(port: port, tls: tls("dp-revoked"), path: "/who")?.status
        XCTAssertNil(refused)
        let read = await running.waitForLog("CRL read from the cache directory")
        XCTAssertTrue(read, running.log)
        let logged = await running.waitForLog("reason=certificate_revoked")
        XCTAssertTrue(logged, running.log)
    }

    func testRevocationSettingsAreCheckedByKeyPath() throws {
        let issues = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  revocation: { crl_fetch: true, ocsp: leaf, ocsp_responder: "ldap://x", refresh_interval: 10ms, fetch_timeout: 2m,
                                max_crl_bytes: 12, cache_dir: /nonexistent/dir }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(issues, "listeners[0].tls.revocation.ocsp_responder: 'ldap://x' is not an http URL")
        assertProblem(issues, "listeners[0].tls.revocation.refresh_interval: must be at least 1s")
        assertProblem(issues, "listeners[0].tls.revocation.fetch_timeout: must be between 100ms and 60s")
        assertProblem(issues, "listeners[0].tls.revocation.max_crl_bytes: must be between 1024 and 268435456")
        assertProblem(issues, "listeners[0].tls.revocation.cache_dir: '/nonexistent/dir' is not a directory")

        let enums = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                  revocation: { ocsp: sometimes, unknown: maybe, crl_fetch: 3 }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(enums, "listeners[0].tls.revocation.ocsp: ")
        assertProblem(enums, "listeners[0].tls.revocation.unknown: ")
        assertProblem(enums, "listeners[0].tls.revocation.crl_fetch: ")

        let none = try pki.configProblems("""
            listeners:
              - name: l
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  revocation: { ocsp: leaf }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """)
        assertProblem(none, "listeners[0].tls.revocation: set, but client_auth is none")
    }
}
