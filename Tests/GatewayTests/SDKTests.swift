import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// The plugin SDK as a user meets it: the quick starts of sdk/README.md run literally in a clean directory
/// (the C one with only sdk/ and a C compiler, the Swift one as its own package), and the plugins they build
/// loaded into the real gateway, where allow and deny decisions, the 403 body and the audit line are checked
/// for clients with different certificates, then reproduced with `gateway plugin test`.
final class SDKTests: GatewayTestCase {

    func testTheRepositoryHoldsOneCopyOfTheABIHeader() throws {
        // The gateway (PluginAPI in sdk/Package.swift), the fixtures, the examples and bench/run all compile
        // against sdk/include: a second copy could drift from it.
        let root = URL(fileURLWithPath: PluginFixtures.packageRoot)
        var found: [String] = []
        let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        while let url = walker?.nextObject() as? URL {
            let relative = String(url.path.dropFirst(root.path.count + 1))
            if url.lastPathComponent.hasPrefix(".build") || url.lastPathComponent == ".git" { walker?.skipDescendants(); continue }
            if url.lastPathComponent == "gateway_plugin.h" { found.append(relative) }
        }
        XCTAssertEqual(found, ["sdk/include/gateway_plugin.h"])
    }

    func testTheKitsAPIReferenceBuildsWithoutWarnings() throws {
        // sdk/swift/make-docs: symbol graphs from the SDK package, then the toolchain's docc with
        // --warnings-as-errors (a broken link in the catalog fails it).
        let output = pki.path("kit.doccarchive")
        let result = try GatewayProcess.runCommand("/usr/bin/env", [
            "HOME=\(pki.directory)", "bash", "\(PluginFixtures.packageRoot)/sdk/swift/make-docs", output,
        ], timeout: 600)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        for page in ["gatewaypluginkit.json", "gatewaypluginkit/gatewayrequestplugin.json", "gatewaypluginkit/pluginconfig/decode(_:allowingunknownkeys:).json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(output)/data/documentation/\(page)"), page)
        }
        let overview = try String(contentsOfFile: "\(output)/data/documentation/gatewaypluginkit.json", encoding: .utf8)
        XCTAssertTrue(overview.contains("gateway plugin new swift NAME"), "the catalog's overview article is in the archive")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(output)/data/documentation/gatewaypluginkit/bufsiz.json"),
                       "only the ABI header reaches Swift, not the C helpers' libc")
    }

    func testCQuickStartBuildsAnAuthorizerThatDecidesInTheGateway() async throws {
        let directory = try runQuickStart("c")
        XCTAssertTrue(directory.output.contains("name:     authz"), directory.output)
        XCTAssertTrue(directory.output.contains("var authz.rule = rules[0]"), directory.output)
        XCTAssertTrue(directory.output.contains("decision: respond 403"), directory.output)
        try await checkDecisions(library: "\(directory.path)/my-authz/sdk/examples/authz-c/libauthz.so", plugin: "authz")
    }

    func testSwiftQuickStartBuildsAnAuthorizerThatDecidesInTheGateway() async throws {
        let directory = try runQuickStart("swift")
        XCTAssertTrue(directory.output.contains("name:     authz_swift"), directory.output)
        try await checkDecisions(library: "\(directory.path)/my-swift-authz/.build/release/libAuthzSwift.so", plugin: "authz_swift")
    }

    func testACopiedSwiftExampleWithoutGatewaySDKSaysWhatToSet() throws {
        // In place, the example finds the SDK two folders up; copied elsewhere, its manifest stops with a
        // message naming GATEWAY_SDK instead of an obscure dependency error.
        let copy = pki.path("copied-authz")
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        let example = "\(PluginFixtures.packageRoot)/sdk/examples/authz-swift"
        for file in ["Package.swift", "Sources"] { try FileManager.default.copyItem(atPath: "\(example)/\(file)", toPath: "\(copy)/\(file)") }
        let describe = { (environment: [String]) in
            try GatewayProcess.runCommand("/usr/bin/env", ["HOME=\(self.pki.directory)"] + environment + ["swift", "package", "--package-path", copy, "describe"], timeout: 300)
        }
        let lost = try describe([])
        XCTAssertNotEqual(lost.status, 0)
        XCTAssertTrue(lost.stderr.contains("is not the gateway's plugin SDK (no include/gateway_plugin.h there). Set GATEWAY_SDK"), lost.stderr)
        let found = try describe(["GATEWAY_SDK=\(PluginFixtures.packageRoot)/sdk"])
        XCTAssertEqual(found.status, 0, found.stderr)
        let inPlace = try GatewayProcess.runCommand("/usr/bin/env", ["HOME=\(pki.directory)", "swift", "package", "--package-path", example, "describe"], timeout: 300)
        XCTAssertEqual(inPlace.status, 0, inPlace.stderr)
    }

    // MARK: helpers

    /// Runs the shell block marked `<!-- newcomer-test:NAME -->` in sdk/README.md, as written, in a new
    /// directory with the gateway on PATH.
    private func runQuickStart(_ name: String) throws -> (path: String, output: String) {
        let readme = try String(contentsOfFile: "\(PluginFixtures.packageRoot)/sdk/README.md", encoding: .utf8)
        let marker = "<!-- newcomer-test:\(name) -->\n```sh\n"
        let start = try XCTUnwrap(readme.range(of: marker), "sdk/README.md has a \(name) quick start").upperBound
        let end = try XCTUnwrap(readme.range(of: "\n```", range: start..<readme.endIndex)).lowerBound
        let script = "set -euo pipefail\n" + readme[start..<end]
        let directory = pki.path("newcomer-\(name)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try script.write(toFile: "\(directory)/quickstart.sh", atomically: true, encoding: .utf8)
        let gatewayDirectory = URL(fileURLWithPath: GatewayProcess.executable).deletingLastPathComponent().path
        let result = try GatewayProcess.runCommand("/usr/bin/env", [
            "PATH=\(gatewayDirectory):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")",
            "GATEWAY_REPO=\(PluginFixtures.packageRoot)", "HOME=\(directory)",
            "bash", "-c", "cd \(directory) && bash quickstart.sh",
        ], timeout: 600)
        XCTAssertEqual(result.status, 0, "the \(name) quick start, run literally:\n\(result.stdout)\n\(result.stderr)")
        return (directory, result.stdout + result.stderr)
    }

    /// The example's rules against TestPKI's clients: `valid` (OU=ops, issued by Test Root CA, SPIFFE ID
    /// spiffe://test/ns/ops/sa/valid) and `via-intermediate` (issued by Test Intermediate CA).
    private static let config = """
        { default: deny, deny_status: 403, rules: [
            { path_prefix: /admin/, methods: [GET, POST], allow: { subject_ou: [ops] } },
            { path_prefix: /api/, allow: { spiffe_id: ["spiffe://test/ns/ops/*"] } },
            { path_prefix: /, allow: { issuer_cn: ["Test Intermediate CA"] } } ] }
        """

    private struct Case {
        var client: String?
        var request: String
        var allowed: Bool
        var rule: String
    }

    private static let cases: [Case] = [
        Case(client: "valid", request: "GET /admin/users", allowed: true, rule: "rules[0]"),
        Case(client: "valid", request: "POST /admin/users", allowed: true, rule: "rules[0]"),
        Case(client: "via-intermediate", request: "GET /admin/users", allowed: false, rule: "rules[0]"),
        Case(client: "valid", request: "DELETE /admin/users", allowed: false, rule: "rules[2]"),
        Case(client: "via-intermediate", request: "DELETE /admin/users", allowed: true, rule: "rules[2]"),
        Case(client: "valid", request: "GET /api/v1", allowed: true, rule: "rules[1]"),
        Case(client: "via-intermediate", request: "GET /api/v1", allowed: false, rule: "rules[1]"),
        Case(client: "valid", request: "GET /other", allowed: false, rule: "rules[2]"),
        Case(client: "via-intermediate", request: "GET /other", allowed: true, rule: "rules[2]"),
        Case(client: nil, request: "GET /admin/users", allowed: false, rule: "rules[0]"),
        Case(client: nil, request: "GET /other", allowed: false, rule: "rules[2]"),
        Case(client: "valid", request: "GET /x/../admin/users", allowed: false, rule: "path"),
    ]

    private func checkDecisions(library: String, plugin: String) async throws {
        let audit = pki.path("audit-\(plugin).log")
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: optional
                  client_ca: ca.pem
                plugins:
                  - { library: libAudit.so, config: { path: \(audit) } }
                  - library: \(library)
                    config: \(Self.config)
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let port = gateway.port("mtls")
        for item in Self.cases {
            let parts = item.request.split(separator: " ")
            let client = try await TestClient.connect(port: port, tls: tls(item.client))
            try await client.send("\(parts[0]) \(parts[1]) HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
            let answer = await client.readResponse()
            let response = try XCTUnwrap(answer, "\(item.request) answered")
            await client.close()
            let who = item.client ?? "no certificate"
            if item.allowed {
                XCTAssertEqual(response.status, 200, "\(plugin): \(who) \(item.request) is allowed by \(item.rule)")
                XCTAssertEqual(response.header("x-backend"), "backend")
            } else {
                XCTAssertEqual(response.status, 403, "\(plugin): \(who) \(item.request) is denied by \(item.rule)")
                XCTAssertEqual(response.header("content-type"), "application/json")
                let body = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String], response.text)
                XCTAssertEqual(body["error"], "forbidden")
                XCTAssertEqual(body["rule"], item.rule, "\(plugin): the 403 body names the rule")
            }
        }
        // Audit (first in the chain) wrote one line per request, with the authorizer's reason.
        await gateway.stop()
        gateway = nil
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(lines.count, Self.cases.count)
        for (line, item) in zip(lines, Self.cases) {
            let reason = line["reason"] as? String ?? ""
            XCTAssertTrue(reason.hasPrefix(item.rule) && reason.hasSuffix(item.allowed ? "allow" : "deny"), "\(plugin) audit reason for \(item.request): \(reason)")
            XCTAssertEqual(line["decision"] as? String, item.allowed ? "forwarded" : "answered")
            if !item.allowed { XCTAssertEqual(line["answered_by"] as? String, plugin) }
        }

        // A bad config is refused at instance creation, naming the key path (the harness runs `create` too).
        try "{ default: deny, rules: [ { path: /admin/, allow: { subject_ou: [ops] } } ] }".write(toFile: pki.path("bad-authz.yaml"), atomically: true, encoding: .utf8)
        let refused = try GatewayProcess.run(["plugin", "test", library, "--config", pki.path("bad-authz.yaml")])
        XCTAssertEqual(refused.status, 1)
        let expected = plugin == "authz" ? "rules[0]: unknown key 'path'" : "rules[0].path_prefix: missing required key (rules[0] has: allow, path)"
        XCTAssertTrue(refused.stderr.contains("plugin '\(plugin)'") && refused.stderr.contains(expected), refused.stderr)

        // The harness reproduces the gateway's decisions (verifying the certificate against the same CA).
        try Self.config.write(toFile: pki.path("authz-config.yaml"), atomically: true, encoding: .utf8)
        for client in ["valid", "via-intermediate", nil] as [String?] {
            let cases = Self.cases.filter { $0.client == client }
            var arguments = ["plugin", "test", library, "--config", pki.path("authz-config.yaml"), "--ca", pki.path("ca.pem"), "--json"]
            if let client { arguments += ["--cert", pki.path("\(client).pem")] }
            for item in cases { arguments += ["--request", item.request] }
            let result = try GatewayProcess.run(arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
            let outcomes = result.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            XCTAssertEqual(outcomes.count, cases.count, result.stdout)
            for (outcome, item) in zip(outcomes, cases) {
                XCTAssertEqual(outcome["decision"] as? String, item.allowed ? "continue" : "respond", "harness: \(client ?? "-") \(item.request)")
                XCTAssertEqual((outcome["vars"] as? [String: String])?["authz.rule"], item.rule, "harness: \(client ?? "-") \(item.request)")
                if !item.allowed { XCTAssertEqual(outcome["status"] as? Int, 403) }
            }
        }
    }
}
