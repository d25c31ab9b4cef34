import Foundation
import GatewayCore
import NIOConcurrencyHelpers
import XCTest

/// The operator's console behind the admin listener: the JSON views after real mTLS traffic (a good client,
/// an expired one, one from another CA, a plugin's denial), the page's Content-Security-Policy, the admin
/// listener's protection (bearer token, mutual TLS, loopback only without either) and its CSRF defence.
/// ConsoleBrowserTests drives the same console in Chromium.
final class ConsoleTests: GatewayTestCase {
    /// sdk/examples/authz-c built as its README says: it denies /admin/ to clients outside OU=ops. A plugin name
    /// stays bound to the first path loaded in a process, and SDKTests load their own `authz` in this one: the
    /// in-process tests here use a copy named `console_authz`; the browser tests' gateway processes the original.
    static func authz(named name: String = "console_authz") throws -> String {
        try authzLibraries.withLockedValue { built in
            if let path = built[name] { return path }
            let directory = "\(PluginFixtures.directory)/console-\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let root = PluginFixtures.packageRoot
            let source = try String(contentsOfFile: "\(root)/sdk/examples/authz-c/authz.c", encoding: .utf8)
            guard source.contains(".name = \"authz\",") else { throw PluginFixtures.FixtureError(message: "authz.c no longer names itself authz") }
            try source.replacingOccurrences(of: ".name = \"authz\",", with: ".name = \"\(name)\",").write(toFile: "\(directory)/authz.c", atomically: true, encoding: .utf8)
            let output = "\(directory)/lib\(name).so"
            let result = try GatewayProcess.runCommand("/usr/bin/cc", [
                "-std=c99", "-O2", "-shared", "-fPIC", "-I", "\(root)/sdk/include", "\(directory)/authz.c", "-o", output,
            ])
            guard result.status == 0 else { throw PluginFixtures.FixtureError(message: "cc failed for authz: \(result.stderr)") }
            built[name] = output
            return output
        }
    }

    private static let authzLibraries = NIOLockedValueBox<[String: String]>([:])

    static let authzEntry = """
        { library: LIBRARY, config: { default: deny, rules: [ { path_prefix: /admin/, allow: { subject_ou: [ops] } }, { path_prefix: /, allow: { any_verified_client: true } } ] } }
        """

    /// One mTLS listener with ClientCertHeaders, Audit and authz, and the admin listener (`admin` keys added).
    func consoleConfig(listenerPort: Int = 0, adminPort: Int = 0, admin extra: String = "", authz: String) -> String {
        Self.consoleConfig(pki: pki, backendPort: backend.port, listenerPort: listenerPort, adminPort: adminPort, admin: extra, authz: authz)
    }

    static func consoleConfig(pki: TestPKI, backendPort: Int, listenerPort: Int, adminPort: Int, admin extra: String, authz: String) -> String {
        """
        admin: { address: "127.0.0.1:\(adminPort)"\(extra.isEmpty ? "" : ", " + extra) }
        listeners:
          - name: console-mtls
            address: "127.0.0.1:\(listenerPort)"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: required
              client_ca: ca.pem
              crl: [root.crl.pem]
            plugins:
              - { library: libClientCertHeaders.so, config: {} }
              - { library: libAudit.so, config: { path: \(pki.path("audit.log")) } }
              - \(Self.authzEntry.replacingOccurrences(of: "LIBRARY", with: authz))
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backendPort)" } ] } ]
        """
    }

    /// The traffic every console test shows: 3 requests of valid-client, 1 allowed and 1 denied request of
    /// intermediate-client (not OU=ops), an expired client and one from another CA (both refused at the handshake).
    static func sendTraffic(port: Int, pki: TestPKI) async throws {
        let client = try await TestClient.connect(port: port, tls: pki.clientTLS("valid"))
        for path in ["/a", "/b", "/admin/x"] {
            try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200, path)
        }
        await client.close()
        let other = try await TestClient.connect(port: port, tls: pki.clientTLS("via-intermediate"))
        try await other.send("GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let allowed = await other.readResponse()?.status
        XCTAssertEqual(allowed, 200)
        try await other.send("GET /admin/secret HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let deniedStatus = await other.readResponse()?.status
        XCTAssertEqual(deniedStatus, 403)
        await other.close()
        for refused in ["expired", "other-ca", "revoked"] {
            let response = try? await TestClient.get(port: port, tls: pki.clientTLS(refused))
            XCTAssertNil(response, "\(refused) must be refused at the handshake")
        }
    }

    func adminGet(_ path: String, headers: [String] = []) async throws -> TestClient.Response {
        let response = try await TestClient.get(port: gateway.adminPort, tls: nil, path: path, host: "127.0.0.1", headers: headers)
        return try XCTUnwrap(response, path)
    }

    func json(_ path: String) async throws -> [String: Any] {
        let response = try await adminGet(path)
        XCTAssertEqual(response.status, 200, "\(path): \(response.text)")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any], path)
    }

    func testViewsAfterRealTraffic() async throws {
        let authz = try Self.authz()
        gateway = try await GatewayHarness(yaml: consoleConfig(authz: authz), in: pki.directory)
        try await Self.sendTraffic(port: gateway.port("console-mtls"), pki: pki)

        // Identities: both verified clients, with their requests (counted when their connections closed) and the denial.
        var clients: [[String: Any]] = []
        for _ in 0..<50 {
            clients = try await json("/api/identities?order=active")["clients"] as? [[String: Any]] ?? []
            if (clients.first?["requests"] as? Int) == 3 && clients.count == 2 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(clients.count, 2, "\(clients)")
        let valid = try XCTUnwrap(clients.first)
        XCTAssertEqual(valid["subject"] as? String, "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertEqual(valid["requests"] as? Int, 3)
        XCTAssertEqual(valid["connections"] as? Int, 1)
        XCTAssertEqual(valid["listener"] as? String, "console-mtls")
        XCTAssertEqual(valid["sans"] as? [String], ["DNS:client.test", "URI:spiffe://test/ns/ops/sa/valid", "email:valid@test"])
        XCTAssertEqual((valid["sha256"] as? String)?.count, 64)
        XCTAssertNil(valid["denied_by"])
        let denied = try XCTUnwrap(clients.last)
        XCTAssertEqual(denied["subject"] as? String, "CN=intermediate-client,C=US")
        XCTAssertEqual(denied["requests"] as? Int, 2)
        XCTAssertEqual(denied["denied_by"] as? String, "console_authz")
        XCTAssertEqual(denied["denials"] as? Int, 1)
        // Search: by SAN, and nothing for a name no client has.
        let found = try await json("/api/identities?q=SPIFFE%3A%2F%2Ftest")
        XCTAssertEqual(found["matched"] as? Int, 1)
        let noMatch = try await json("/api/identities?q=nobody-has-this")["matched"] as? Int
        XCTAssertEqual(noMatch, 0)
        let otherListener = try await json("/api/identities?listener=other")["matched"] as? Int
        XCTAssertEqual(otherListener, 0)

        // Refusals: the three handshakes with their precise reasons, and the plugin's denial with its name.
        let refusals = try await json("/api/refusals")
        let latest = refusals["latest"] as? [[String: Any]] ?? []
        let reasons = Set(latest.compactMap { $0["reason"] as? String })
        XCTAssertEqual(reasons, ["certificate_expired", "unknown_ca", "certificate_revoked", "plugin_denied"], "\(latest)")
        let denial = try XCTUnwrap(latest.first { $0["reason"] as? String == "plugin_denied" })
        XCTAssertEqual(denial["plugin"] as? String, "console_authz")
        XCTAssertEqual(denial["status"] as? Int, 403)
        XCTAssertEqual(denial["stage"] as? String, "request")
        XCTAssertEqual(denial["subject"] as? String, "CN=intermediate-client,C=US")
        let expired = try XCTUnwrap(latest.first { $0["reason"] as? String == "certificate_expired" })
        XCTAssertEqual(expired["subject"] as? String, "CN=expired-client,C=US")
        XCTAssertEqual(expired["stage"] as? String, "handshake")
        let counts = refusals["counts"] as? [[String: Any]] ?? []
        XCTAssertEqual(counts.count, 4)
        XCTAssertTrue(counts.allSatisfy { $0["count"] as? Int == 1 && $0["listener"] as? String == "console-mtls" }, "\(counts)")

        // Expiry: the server certificate, the CA and the CRL, soonest first, with where they are configured.
        let items = try await json("/api/expiry")["items"] as? [[String: Any]] ?? []
        let kinds = items.map { "\($0["kind"]!) \($0["key_path"]!)" }
        XCTAssertEqual(Set(kinds), [
            "server_certificate listeners[0].tls.certificates[0].cert", "client_ca listeners[0].tls.client_ca[0]", "crl listeners[0].tls.crl[0]",
        ], "\(items)")
        let days = items.compactMap { $0["days_left"] as? Double }
        XCTAssertEqual(days, days.sorted())
        XCTAssertTrue(items.allSatisfy { $0["listener"] as? String == "console-mtls" })

        // Plugins: every request reached ClientCertHeaders and Audit, and authz denied one.
        let chain = ((try await json("/api/plugins")["listeners"] as? [[String: Any]])?.first?["chain"] as? [[String: Any]]) ?? []
        XCTAssertEqual(chain.map { $0["plugin"] as? String }, ["client_cert_headers", "audit", "console_authz"])
        XCTAssertEqual(chain.map { $0["calls"] as? Int }, [5, 5, 5])
        XCTAssertEqual(chain.map { $0["denials"] as? Int }, [0, 0, 1])
        XCTAssertNotNil(chain.first?["mean_us"] as? Double, "the second call is timed")

        // Backends and overview.
        let servers = ((try await json("/api/backends")["backends"] as? [[String: Any]])?.first?["servers"] as? [[String: Any]]) ?? []
        XCTAssertEqual(servers.first?["in_rotation"] as? Bool, true)
        let overview = try await json("/api/overview")
        let listener = try XCTUnwrap((overview["listeners"] as? [[String: Any]])?.first)
        XCTAssertEqual(listener["name"] as? String, "console-mtls")
        XCTAssertEqual(listener["client_auth"] as? String, "required")
    }

    func testTablesAreBoundedByTheirConfigKeys() async throws {
        gateway = try await GatewayHarness(yaml: consoleConfig(admin: "console: { identities: 1, refusals: 3 }", authz: try Self.authz()), in: pki.directory)
        let port = gateway.port("console-mtls")
        try await Self.sendTraffic(port: port, pki: pki)
        // One identity remembered: the most recently seen (intermediate-client connected after valid-client).
        var identities: [String: Any] = [:]
        for _ in 0..<50 {
            identities = try await json("/api/identities")
            if (identities["clients"] as? [[String: Any]])?.first?["requests"] as? Int == 2 { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(identities["capacity"] as? Int, 1)
        XCTAssertEqual((identities["clients"] as? [[String: Any]])?.map { $0["subject"] as? String }, ["CN=intermediate-client,C=US"])
        // Four refusals (the plugin's denial, then expired, other-ca, revoked) in a ring of three: the newest three,
        // newest first; the counts still cover all four.
        let reasons = { (body: [String: Any]) in (body["latest"] as? [[String: Any]])?.compactMap { $0["reason"] as? String } ?? [] }
        let refusals = try await json("/api/refusals")
        XCTAssertEqual(reasons(refusals), ["certificate_revoked", "unknown_ca", "certificate_expired"])
        XCTAssertEqual((refusals["counts"] as? [[String: Any]])?.reduce(0) { $0 + ($1["count"] as? Int ?? 0) }, 4)
        // A reload that raises the size keeps them in order (the ring had wrapped), and the next one goes first.
        try consoleConfig(admin: "console: { identities: 5, refusals: 10 }", authz: try Self.authz()).write(toFile: gateway.configPath, atomically: true, encoding: .utf8)
        let outcome = await gateway.server.reload()
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        _ = try? await TestClient.get(port: port, tls: pki.clientTLS("self-signed"))
        let after = try await json("/api/refusals")
        XCTAssertEqual(after["capacity"] as? Int, 10)
        XCTAssertEqual(reasons(after), ["self_signed", "certificate_revoked", "unknown_ca", "certificate_expired"])
        // Shrinking keeps the newest.
        try consoleConfig(admin: "console: { identities: 5, refusals: 2 }", authz: try Self.authz()).write(toFile: gateway.configPath, atomically: true, encoding: .utf8)
        let shrunk = await gateway.server.reload()
        XCTAssertTrue(shrunk.success, "\(shrunk.errors)")
        let kept = try await json("/api/refusals")
        XCTAssertEqual(reasons(kept), ["self_signed", "certificate_revoked"])
    }

    func testAReloadCannotRemoveTheTokenOfAListenerBoundOffLoopback() async throws {
        try "0123456789abcdef0123456789abcdef\n".write(toFile: pki.path("admin.token"), atomically: true, encoding: .utf8)
        chmod(pki.path("admin.token"), 0o600)
        // Bound to every address (the test still speaks to it on 127.0.0.1), protected by the token only.
        let start = consoleConfig(admin: "token_file: admin.token", authz: try Self.authz()).replacingOccurrences(of: "127.0.0.1:0\", token", with: "0.0.0.0:0\", token")
        XCTAssertTrue(start.contains("admin: { address: \"0.0.0.0:0\", token_file"), start)
        gateway = try await GatewayHarness(yaml: start, in: pki.directory)
        // The same address without a token, and "moved" to loopback without a token: both refused, the token stays.
        for admin in ["admin: { address: \"0.0.0.0:0\", tls: { cert: server.pem, key: server.key, client_ca: [ca.pem] } }", "admin: { address: \"127.0.0.1:0\" }"] {
            try consoleConfig(authz: try Self.authz()).replacingOccurrences(of: "admin: { address: \"127.0.0.1:0\" }", with: admin)
                .write(toFile: gateway.configPath, atomically: true, encoding: .utf8)
            let outcome = await gateway.server.reload()
            XCTAssertFalse(outcome.success, admin)
            XCTAssertEqual(outcome.errors.first?.hasPrefix("admin.token_file: the running admin listener on 0.0.0.0:"), true, "\(outcome.errors)")
            let refused = try await adminGet("/api/overview")
            XCTAssertEqual(refused.status, 401, admin)
        }
        // A new token is taken.
        try "fedcba9876543210fedcba9876543210\n".write(toFile: pki.path("admin.token"), atomically: true, encoding: .utf8)
        chmod(pki.path("admin.token"), 0o600)
        try start.write(toFile: gateway.configPath, atomically: true, encoding: .utf8)
        let outcome = await gateway.server.reload()
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        let old = try await adminGet("/api/overview", headers: ["Authorization: Bearer 0123456789abcdef0123456789abcdef"])
        XCTAssertEqual(old.status, 401)
        let new = try await adminGet("/api/overview", headers: ["Authorization: Bearer fedcba9876543210fedcba9876543210"])
        XCTAssertEqual(new.status, 200)
    }

    func testHeldConnectionsCannotExhaustTheAdminListener() async throws {
        gateway = try await GatewayHarness(yaml: consoleConfig(authz: try Self.authz()), in: pki.directory)
        var held: [TestClient] = []
        for _ in 0..<AdminServer.maxConnections { held.append(try await TestClient.connect(port: gateway.adminPort, tls: nil)) }
        // One more is closed at accept: it gets no answer.
        let over = try await TestClient.connect(port: gateway.adminPort, tls: nil)
        try? await over.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let refused = await over.readResponse(timeout: 2)
        XCTAssertNil(refused)
        // The held ones are served, and once they go, so are new ones.
        try await held[0].send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let served = await held[0].readResponse()
        XCTAssertEqual(served?.status, 200)
        for client in held { await client.close() }
        var again: TestClient.Response?
        for _ in 0..<50 where again?.status != 200 {
            again = try? await TestClient.get(port: gateway.adminPort, tls: nil, path: "/healthz", host: "127.0.0.1")
            if again?.status != 200 { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertEqual(again?.status, 200)
    }

    func testExpiryListsWhatBackendConnectionsUseToo() async throws {
        let yaml = consoleConfig(authz: try Self.authz()).replacingOccurrences(of: "backends: [ { name: app,", with: """
            backends: [ { name: secure, protocol: https, servers: [ { address: "127.0.0.1:1" } ], tls: { ca: [ca.pem], cert: valid.pem, key: valid.key } }, { name: app,
            """)
        gateway = try await GatewayHarness(yaml: yaml, in: pki.directory)
        let items = try await json("/api/expiry")["items"] as? [[String: Any]] ?? []
        let backend = items.filter { ($0["listener"] as? String) == "backend secure" }
        XCTAssertEqual(Set(backend.map { "\($0["kind"]!) \($0["key_path"]!) \($0["subject"]!)" }), [
            "backend_ca backends[0].tls.ca[0] CN=Test Root CA,O=Test,C=US",
            "backend_client_certificate backends[0].tls.cert CN=valid-client,OU=ops,O=Test,C=US",
        ], "\(items)")
        XCTAssertEqual(items.count, 5)
    }

    func testPageHasAStrictContentSecurityPolicyAndNeedsNothingFromElsewhere() async throws {
        gateway = try await GatewayHarness(yaml: consoleConfig(authz: try Self.authz()), in: pki.directory)
        let page = try await adminGet("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.header("content-type"), "text/html; charset=utf-8")
        let policy = try XCTUnwrap(page.header("content-security-policy"))
        XCTAssertTrue(policy.contains("default-src 'none'") && policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), policy)
        XCTAssertFalse(policy.contains("unsafe"), policy)
        XCTAssertEqual(page.header("x-frame-options"), "DENY")
        XCTAssertEqual(page.header("cache-control"), "no-store")
        // Nothing the page loads names another host, and it has no inline script or style.
        for asset in ["/", "/console.js", "/console.css"] {
            let text = try await adminGet(asset).text.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "")
            XCTAssertFalse(text.contains("http://") || text.contains("https://") || text.contains("url("), asset)
            for markup in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                XCTAssertFalse(text.contains(markup), "\(asset): values are set as text, never as markup (\(markup))")
            }
        }
        let inlineScript = try NSRegularExpression(pattern: "<script(?![^>]*\\bsrc=)", options: [.caseInsensitive])
        XCTAssertEqual(inlineScript.numberOfMatches(in: page.text, range: NSRange(page.text.startIndex..., in: page.text)), 0, "no inline script")
        let handler = try NSRegularExpression(pattern: "\\son[a-z]+\\s*=", options: [.caseInsensitive])
        XCTAssertEqual(handler.numberOfMatches(in: page.text, range: NSRange(page.text.startIndex..., in: page.text)), 0, "no inline handler")
        XCTAssertFalse(page.text.contains("<style") || page.text.contains("style="), "no inline style")
        let scriptType = try await adminGet("/console.js").header("content-type")
        XCTAssertEqual(scriptType, "text/javascript; charset=utf-8")
        let unknownPath = try await adminGet("/api/nothing").status
        XCTAssertEqual(unknownPath, 404)
        let withoutToken = try await adminGet("/api/overview", headers: []).status
        XCTAssertEqual(withoutToken, 200)
    }

    func testReloadNeedsPOSTFromTheConsolesOwnOrigin() async throws {
        gateway = try await GatewayHarness(yaml: consoleConfig(authz: try Self.authz()), in: pki.directory)
        let port = gateway.adminPort
        let getReload = try await adminGet("/reload").status
        XCTAssertEqual(getReload, 405)
        for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
            let refused = try await post("/reload", port: port, headers: ["Origin: \(origin)"])
            XCTAssertEqual(refused?.status, 403, origin)
        }
        let crossSite = try await post("/reload", port: port, headers: ["Sec-Fetch-Site: cross-site"])
        XCTAssertEqual(crossSite?.status, 403)
        let noReloads = try await json("/api/reloads")["reloads"] as? [Any]
        XCTAssertEqual(noReloads?.count, 0, "refused requests reload nothing")
        let own = try await post("/reload", port: port, headers: ["Origin: http://127.0.0.1:\(port)", "Sec-Fetch-Site: same-origin"])
        XCTAssertEqual(own?.status, 200, own?.text ?? "")
        // A broken configuration: the history keeps its key-path error.
        try "admin: { address: \"127.0.0.1:0\" }\nlisteners: [ { name: x, address: \"127.0.0.1:0\", protocol: http, routes: [ { backend: nowhere } ] } ]\nbackends: []\n"
            .write(toFile: gateway.configPath, atomically: true, encoding: .utf8)
        let failed = try await post("/reload", port: port, headers: ["Origin: http://localhost:\(port)"])
        XCTAssertEqual(failed?.status, 422)
        let history = try await json("/api/reloads")["reloads"] as? [[String: Any]] ?? []
        XCTAssertEqual(history.map { $0["success"] as? Bool }, [false, true])
        let errors = history.first?["errors"] as? [String] ?? []
        XCTAssertTrue(errors.contains { $0.contains("listeners[0].routes[0].backend") }, "\(errors)")
    }

    func post(_ path: String, port: Int, headers: [String], tls: TestClient.TLSOptions? = nil) async throws -> TestClient.Response? {
        let client = try await TestClient.connect(port: port, tls: tls)
        defer { Task { await client.close() } }
        try await client.send("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(headers.map { "\($0)\r\n" }.joined())Content-Length: 0\r\n\r\n")
        return await client.readResponse()
    }

    func testTokenProtectsEverythingButProbesAndThePage() async throws {
        let tokenFile = pki.path("admin.token")
        try "0123456789abcdef0123456789abcdef\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        chmod(tokenFile, 0o600)
        gateway = try await GatewayHarness(yaml: consoleConfig(admin: "token_file: admin.token", authz: try Self.authz()), in: pki.directory)
        for open in ["/healthz", "/readyz", "/", "/console.js"] {
            let openStatus = try await adminGet(open).status
            XCTAssertEqual(openStatus, 200, open)
        }
        for closed in ["/api/overview", "/api/identities", "/metrics", "/config", "/plugins"] {
            let refused = try await adminGet(closed)
            XCTAssertEqual(refused.status, 401, closed)
            XCTAssertEqual(refused.header("www-authenticate"), "Bearer realm=\"mtls-gateway admin\"")
            let wrongToken = try await adminGet(closed, headers: ["Authorization: Bearer 0123456789abcdef0123456789abcdeX"]).status
            XCTAssertEqual(wrongToken, 401, closed)
            let basicAuth = try await adminGet(closed, headers: ["Authorization: Basic MDEyMzQ1Njc4OWFiY2RlZg=="]).status
            XCTAssertEqual(basicAuth, 401, closed)
            let rightToken = try await adminGet(closed, headers: ["Authorization: Bearer 0123456789abcdef0123456789abcdef"]).status
            XCTAssertEqual(rightToken, 200, closed)
        }
        let post = try await post("/reload", port: gateway.adminPort, headers: [])
        XCTAssertEqual(post?.status, 401, "POST /reload needs the token too")
    }

    func testAdminListenerWithMutualTLSRefusesClientsWithoutItsCertificate() async throws {
        let admin = "tls: { cert: server.pem, key: server.key, client_ca: [ca.pem] }"
        gateway = try await GatewayHarness(yaml: consoleConfig(admin: admin, authz: try Self.authz()), in: pki.directory)
        let port = gateway.adminPort
        let withCertificate = try await TestClient.get(port: port, tls: pki.clientTLS("valid"), path: "/api/overview", host: "127.0.0.1")
        XCTAssertEqual(withCertificate?.status, 200)
        let without = try? await TestClient.get(port: port, tls: pki.clientTLS(nil), path: "/api/overview", host: "127.0.0.1")
        XCTAssertNil(without, "no client certificate: the handshake fails")
        let otherCA = try? await TestClient.get(port: port, tls: pki.clientTLS("other-ca"), path: "/healthz", host: "127.0.0.1")
        XCTAssertNil(otherCA)
        let plain = try? await TestClient.get(port: port, tls: nil, path: "/healthz", host: "127.0.0.1")
        XCTAssertNotEqual(plain?.status, 200, "plain HTTP is not served")
        // curl, as an operator would use it.
        let curl = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--cacert", pki.path("ca.pem"), "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "https://127.0.0.1:\(port)/api/expiry",
        ])
        XCTAssertEqual(curl.status, 0, curl.stderr)
        XCTAssertTrue(curl.stdout.contains("\"key_path\" : \"admin.tls.cert\""), curl.stdout)
        let curlWithout = try GatewayProcess.runCommand("/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), "https://127.0.0.1:\(port)/healthz"])
        XCTAssertNotEqual(curlWithout.status, 0)
    }

    func testValidationRefusesAnUnprotectedPublicAdminAndBadTokens() throws {
        let authz = try Self.authz()
        func validate(_ admin: String, _ extra: String = "") throws -> GatewayProcess.Result {
            let path = pki.path("validate-\(UUID().uuidString).yaml")
            try consoleConfig(authz: authz).replacingOccurrences(of: "admin: { address: \"127.0.0.1:0\" }", with: admin).write(toFile: path, atomically: true, encoding: .utf8)
            return try GatewayProcess.run(["validate", "--config", path])
        }
        let open = try validate("admin: { address: \"0.0.0.0:9901\" }")
        XCTAssertEqual(open.status, 1)
        XCTAssertTrue(open.stderr.contains("admin.address: '0.0.0.0:9901' is not a loopback address, and the admin listener has no protection"), open.stderr)
        try "short\n".write(toFile: pki.path("short.token"), atomically: true, encoding: .utf8)
        chmod(pki.path("short.token"), 0o600)
        let short = try validate("admin: { address: \"0.0.0.0:9901\", token_file: short.token }")
        XCTAssertTrue(short.stderr.contains("admin.token_file: 'short.token' must hold a token of at least 16 characters"), short.stderr)
        try "0123456789abcdef0123456789abcdef\n".write(toFile: pki.path("public.token"), atomically: true, encoding: .utf8)
        chmod(pki.path("public.token"), 0o644)
        let readable = try validate("admin: { address: \"0.0.0.0:9901\", token_file: public.token }")
        XCTAssertTrue(readable.stderr.contains("admin.token_file: token file 'public.token' can be read by every user"), readable.stderr)
        let missing = try validate("admin: { address: \"[::]:9901\", token_file: nowhere.token, console: { identities: 0 } }")
        XCTAssertTrue(missing.stderr.contains("admin.token_file: cannot read 'nowhere.token'"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("admin.console.identities: must be between 1 and 100000, got 0"), missing.stderr)
        let noKey = try validate("admin: { address: \"127.0.0.1:0\", tls: { cert: server.pem } }")
        XCTAssertTrue(noKey.stderr.contains("admin.tls.key"), noKey.stderr)
        chmod(pki.path("public.token"), 0o600)
        XCTAssertEqual(try validate("admin: { address: \"0.0.0.0:9901\", token_file: public.token }").status, 0)
        XCTAssertEqual(try validate("admin: { address: \"0.0.0.0:9901\", tls: { cert: server.pem, key: server.key, client_ca: [ca.pem] } }").status, 0)
        XCTAssertEqual(try validate("admin: { address: \"127.0.0.2:9901\" }").status, 0, "127.0.0.0/8 is loopback")
        for loopback in ["[::1]:9901", "[0:0:0:0:0:0:0:1]:9901", "[::ffff:127.0.0.1]:9901"] {
            XCTAssertEqual(try validate("admin: { address: \"\(loopback)\" }").status, 0, loopback)
        }
        for outside in ["[::]:9901", "[::ffff:10.0.0.1]:9901", "10.1.2.3:9901"] {
            XCTAssertEqual(try validate("admin: { address: \"\(outside)\" }").status, 1, outside)
        }
    }

    func testSeriesRatesAndPercentilesFromTwoReadings() {
        let series = ConsoleSeries(capacity: 2)
        func exposition(ok: Int, errors: Int, buckets: [(String, Int)], active: Int) -> [UInt8] {
            var text = "# TYPE gateway_requests_total counter\n"
            text += "gateway_requests_total{listener=\"a\\\"b\",status_class=\"2xx\"} \(ok)\n"
            text += "gateway_requests_total{listener=\"a\\\"b\",status_class=\"5xx\"} \(errors)\n"
            for (le, count) in buckets { text += "gateway_request_duration_seconds_bucket{listener=\"a\\\"b\",le=\"\(le)\"} \(count)\n" }
            text += "gateway_connections_active{listener=\"a\\\"b\"} \(active)\n"
            text += "gateway_tls_handshakes_total{listener=\"a\\\"b\",result=\"failure\",reason=\"unknown_ca\"} \(ok / 10)\n"
            text += "gateway_tls_handshakes_total{listener=\"a\\\"b\",result=\"failure\",reason=\"certificate_expired\"} 1\n"
            text += "gateway_tls_handshakes_total{listener=\"a\\\"b\",result=\"success\",reason=\"none\"} \(ok / 2)\n"
            return Array(text.utf8)
        }
        let start = Date(timeIntervalSince1970: 1000)
        series.sample(exposition: exposition(ok: 10, errors: 0, buckets: [("0.001", 5), ("0.01", 10), ("+Inf", 10)], active: 1), now: start)
        XCTAssertTrue(series.points("a\"b").isEmpty, "one reading makes no point")
        // 100 more requests in 10 s: 50 under 1 ms, 35 in (1, 10] ms, 15 above 10 ms; 10 of them 5xx.
        series.sample(exposition: exposition(ok: 100, errors: 10, buckets: [("0.001", 55), ("0.01", 95), ("+Inf", 110)], active: 3), now: start + 10)
        let point = try! XCTUnwrap(series.points("a\"b").last)
        XCTAssertEqual(point.requestsPerSecond, 10, accuracy: 1e-9)
        XCTAssertEqual(point.serverErrorsPerSecond, 1, accuracy: 1e-9)
        XCTAssertEqual(point.p50!, 0.001, accuracy: 1e-9, "the 50th of 100 is the last of the first bucket")
        XCTAssertEqual(point.p99!, 0.01, accuracy: 1e-9, "in the +Inf bucket: the last finite bound")
        XCTAssertEqual(point.activeConnections, 3)
        XCTAssertEqual(point.refusedHandshakesPerSecond, 0.9, accuracy: 1e-9, "unknown_ca 1 -> 10 in 10 s; expired unchanged")
        XCTAssertEqual(point.handshakesPerSecond, 4.5, accuracy: 1e-9, "success 5 -> 50 in 10 s")
        XCTAssertEqual(ConsoleSeries.quantile(0.75, current: [0.001: 50, 0.01: 100, .infinity: 100], previous: [:])!, 0.0055, accuracy: 1e-9)
        XCTAssertNil(ConsoleSeries.quantile(0.5, current: [0.001: 5, .infinity: 5], previous: [0.001: 5, .infinity: 5]), "nothing completed")
        series.sample(exposition: exposition(ok: 100, errors: 10, buckets: [("0.001", 55), ("0.01", 95), ("+Inf", 110)], active: 0), now: start + 15)
        series.sample(exposition: exposition(ok: 100, errors: 10, buckets: [("0.001", 55), ("0.01", 95), ("+Inf", 110)], active: 0), now: start + 20)
        XCTAssertEqual(series.points("a\"b").count, 2, "bounded by its capacity")
        XCTAssertNil(series.points("a\"b").last?.p50)
    }
}
