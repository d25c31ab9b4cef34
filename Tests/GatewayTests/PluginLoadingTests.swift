import Foundation
import GatewayCore
import GatewayTooling
import X509
import XCTest

/// A broken plugin is refused at start-up with a message naming the file, the symbol or field and both
/// versions; `gateway plugin inspect` says the same.
final class PluginLoadingTests: XCTestCase {
    func testEachFailureModeIsRefusedWithAPreciseMessage() throws {
        let cases: [(String, String)] = [
            ("no_entry", "not a gateway plugin: symbol 'gw_plugin_entry_v1' not found"),
            ("future_major", "is built for plugin ABI 2.x (exports gw_plugin_entry_v2); this gateway supports ABI 1.0 to 1.6 (gw_plugin_entry_v1)"),
            ("bad_magic", "descriptor returned by gw_plugin_entry_v1 has magic 0xDEADBEEF, expected 0x4757504C: not a gateway plugin descriptor"),
            ("wrong_major", "plugin is built for ABI 2.6, this gateway supports ABI 1.0 to 1.6 (abi_major mismatch)"),
            ("newer_minor", "plugin requires ABI 1.7 (abi_minor in its descriptor), newer than this gateway's ABI 1.6: upgrade the gateway, or build the plugin to require ABI 1.6 (docs/plugins.md, 'Versions')"),
            ("missing_hook", "required hook 'destroy' is NULL in the descriptor"),
        ]
        for (fixture, message) in cases {
            let path = try PluginFixtures.build(fixture)
            let inspect = try GatewayProcess.run(["plugin", "inspect", path])
            XCTAssertEqual(inspect.status, 1, fixture)
            XCTAssertTrue(inspect.stderr.contains("\(path): \(message)"), "\(fixture): \(inspect.stderr)")

            let pki = try TestPKI()
            let config = pki.path("plugin.yaml")
            try """
                listeners:
                  - name: l
                    address: "127.0.0.1:0"
                    protocol: http
                    plugins: [ { library: \(path) } ]
                    routes: [ { backend: b } ]
                backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let validate = try GatewayProcess.run(["validate", "--config", config])
            XCTAssertEqual(validate.status, 1, fixture)
            XCTAssertTrue(validate.stderr.contains("listeners[0].plugins[0]: \(path): \(message)"), "\(fixture): \(validate.stderr)")
        }
    }

    func testInspectPrintsTheDescriptor() throws {
        let path = try PluginFixtures.build("tagger")
        let result = try GatewayProcess.run(["plugin", "inspect", path])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("name:     tagger"), result.stdout)
        XCTAssertTrue(result.stdout.contains("version:  1.2.3"), result.stdout)
        XCTAssertTrue(result.stdout.contains("abi:      1.6"), result.stdout)
        XCTAssertTrue(result.stdout.contains("hooks:    create, destroy, on_connection, on_request_headers, on_response_headers, on_complete"), result.stdout)
        let swift = try GatewayProcess.run(["plugin", "inspect", PluginFixtures.swiftPlugin])
        XCTAssertEqual(swift.status, 0, swift.stderr)
        XCTAssertTrue(swift.stdout.contains("name:     swift_header"), swift.stdout)
    }

    func testRejectedConfigFailsValidateAndRun() throws {
        let path = try PluginFixtures.build("config_reject")
        let pki = try TestPKI()
        let port = try unusedPort()
        let config = pki.path("reject.yaml")
        try """
            listeners:
              - name: edge
                address: "127.0.0.1:\(port)"
                protocol: http
                plugins:
                  - { library: \(path), config: { other: 1 } }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let expected = "listeners[0].plugins[0]: plugin 'config_reject' (\(path)) rejected its config: config must contain 'required_key' (got {\"other\":1})"
        let validate = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(validate.status, 1)
        XCTAssertTrue(validate.stderr.contains(expected), validate.stderr)
        let run = try GatewayProcess.run(["run", "--config", config], timeout: 30)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains(expected), run.stderr)
        XCTAssertFalse(run.stderr.contains("listening"))
    }

    func testLibraryNotFoundNamesTheSearchPath() throws {
        let pki = try TestPKI()
        let config = pki.path("missing.yaml")
        try """
            plugin_paths: [plugins]
            listeners:
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: libNope.so } ], routes: [ { backend: b } ] }
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("listeners[0].plugins[0].library: plugin library 'libNope.so' not found in plugin_paths [\"\(pki.directory)/plugins\"]"), result.stderr)
    }

    func testAPluginBuiltPedanticallyAgainstTheFrozenHeaderLoadsAndSeesTheRules() async throws {
        // abi10.c: -std=c99 -pedantic -fvisibility=hidden (only GW_PLUGIN_EXPORT exports its entry point);
        // its compile-time checks of the 1.0 sizes passed, or it would not have built.
        let path = try PluginFixtures.build("abi10")
        let inspect = try GatewayProcess.run(["plugin", "inspect", path])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("abi:      1.0 (this gateway: 1.6)"), "a plugin that requires 1.0 loads on a 1.6 gateway: \(inspect.stdout)")
        let pki = try TestPKI()
        let backend = TestBackend()
        try await backend.start()
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(path) } ], routes: [ { backend: b } ] }
            backends: [ { name: b, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let response = try await TestClient.get(port: gateway.port("l"), tls: nil, path: "/abi")
        XCTAssertEqual(response?.status, 200)
        // metric_define works in create and is refused (GW_ERR_WRONG_PHASE) in a request hook; GW_HOST_HAS sees
        // the last 1.0 host function.
        XCTAssertEqual(backend.requests.last?.head.headers.first(name: "x-abi"), "has_get_header_at=1 late_metric=-5 create_metric=0")
        XCTAssertNil(backend.requests.last?.head.headers.first(name: "x-dn"), "no client certificate, no DN")
        await gateway.stop()

        // get_dn_value: values decoded from the certificate, never RFC 2253 text to parse. The CN holds every
        // character RFC 2253 escapes; two OUs; O by OID; the issuer's CN; an absent type.
        let f = CertificateFactory.self
        let tricky = try f.makeLeaf(
            try DistinguishedName {
                CountryName("US")
                OrganizationName("Test")
                OrganizationalUnitName("ops")
                OrganizationalUnitName("dev")
                CommonName(#"Smith, John+Jr "x" <y>;\z"#)
            }, issuer: pki.rootCA)
        try pki.write("tricky.pem", tricky.certificatePEM)
        try pki.write("tricky.key", tricky.privateKeyPEM)
        let tls = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                plugins: [ { library: \(path) } ]
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let options = TestClient.TLSOptions(trust: [pki.path("ca.pem")], certificateChain: pki.path("tricky.pem"), key: pki.path("tricky.key"))
        let verified = try await TestClient.get(port: tls.port("mtls"), tls: options, path: "/dn")
        XCTAssertEqual(verified?.status, 200)
        XCTAssertEqual(backend.requests.last?.head.headers.first(name: "x-dn"),
                       #"cn=Smith, John+Jr "x" <y>;\z|ou=dev,ops|o=Test|issuer_cn=Test Root CA|missing=-2"#)
        await tls.stop()
        await backend.stop()
    }

    func testTheMinimalPluginInTheGuideBuildsPedanticallyAndLoads() throws {
        // docs/plugins.md's "A minimal plugin in C", compiled as written, must stay true to the header.
        let guide = try String(contentsOfFile: "\(PluginFixtures.packageRoot)/docs/plugins.md", encoding: .utf8)
        let section = try XCTUnwrap(guide.range(of: "## A minimal plugin in C")).upperBound
        let start = try XCTUnwrap(guide.range(of: "```c\n", range: section..<guide.endIndex)).upperBound
        let end = try XCTUnwrap(guide.range(of: "\n```", range: start..<guide.endIndex)).lowerBound
        let pki = try TestPKI()
        let source = pki.path("minimal.c"), library = pki.path("libminimal.so")
        try String(guide[start..<end]).write(toFile: source, atomically: true, encoding: .utf8)
        let cc = try GatewayProcess.runCommand("/usr/bin/cc", [
            "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fvisibility=hidden", "-shared", "-fPIC",
            "-I", "\(PluginFixtures.packageRoot)/sdk/include", "-o", library, source,
        ])
        XCTAssertEqual(cc.status, 0, cc.stderr)
        let inspect = try GatewayProcess.run(["plugin", "inspect", library])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("hooks:    create, destroy, on_request_headers"), inspect.stdout)
        // Its config, read through the config reader: the header it names, and a misspelt key refused.
        try "{ header: x-who }".write(toFile: pki.path("minimal.yaml"), atomically: true, encoding: .utf8)
        let run = try GatewayProcess.run([
            "plugin", "test", library, "--config", pki.path("minimal.yaml"), "--cert", pki.path("valid.pem"), "--ca", pki.path("ca.pem"), "--json",
        ])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains(#"["x-who","CN=valid-client,OU=ops,O=Test,C=US"]"#), run.stdout)
        try "{ heder: x-who }".write(toFile: pki.path("typo.yaml"), atomically: true, encoding: .utf8)
        let typo = try GatewayProcess.run(["plugin", "test", library, "--config", pki.path("typo.yaml")])
        XCTAssertEqual(typo.status, 1)
        XCTAssertTrue(typo.stderr.contains("config: unknown key 'heder'; known: header"), typo.stderr)
        // A --header no client could send (a CR in its value) is refused with what is wrong, not run.
        let split = try GatewayProcess.run(["plugin", "test", library, "--config", pki.path("minimal.yaml"), "--header", "X-A: v\rX-B: w"])
        XCTAssertEqual(split.status, 1, split.stdout)
        XCTAssertTrue(split.stderr.contains("the name must be a token and the value free of NUL, CR and LF"), split.stderr)
    }

    func testASecondFileWithALoadedNameSaysARestartIsNeededAndPathsAreNormalised() throws {
        let pki = try TestPKI()
        let original = try PluginFixtures.build("tagger")
        try FileManager.default.createDirectory(atPath: pki.path("v2"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: original, toPath: pki.path("v2/libtagger.so"))
        let config = pki.path("two.yaml")
        try """
            listeners:
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                plugins: [ { library: \(original), config: { tag: a } }, { library: ./v2/../v2/libtagger.so, config: { tag: b } } ]
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let validate = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(validate.status, 1)
        XCTAssertTrue(validate.stderr.contains(
            "listeners[0].plugins[1]: \(pki.path("v2/libtagger.so")): plugin name 'tagger' is already used by \(original), which stays loaded until the process exits: to replace a plugin with a file at another path, restart the gateway"
        ), validate.stderr)
    }

    func testPluginBenchTakesItsConfigFromAFileAsPluginTestDoes() throws {
        let pki = try TestPKI()
        let tagger = try PluginFixtures.build("tagger")
        try "{ tag: bench }".write(toFile: pki.path("bench.yaml"), atomically: true, encoding: .utf8)
        let ok = try GatewayProcess.run(["plugin", "bench", tagger, "--iterations", "2000", "--config", pki.path("bench.yaml")])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("chain | ns/request | ns/plugin call"), ok.stdout)
        try "[not, a, mapping]".write(toFile: pki.path("list.yaml"), atomically: true, encoding: .utf8)
        let refused = try GatewayProcess.run(["plugin", "bench", tagger, "--iterations", "10", "--config", pki.path("list.yaml")])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--config \(pki.path("list.yaml")): expected a mapping"), refused.stderr)
    }

    func testPluginTestRunsABlockingPluginOnARealLoop() throws {
        // The worker pool completes from its own thread: on an embedded loop that raced (and NIO said so).
        let pki = try TestPKI()
        let library = try PluginFixtures.build("slow_blocking")
        try "{ sleep_ms: 30 }".write(toFile: pki.path("slow.yaml"), atomically: true, encoding: .utf8)
        let result = try GatewayProcess.run(["plugin", "test", library, "--config", pki.path("slow.yaml"), "--request", "GET /a", "--request", "GET /b"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.components(separatedBy: "+ x-blocking: done").count - 1, 2, result.stdout)
        XCTAssertFalse(result.stderr.contains("API misuse") || result.stderr.contains("BUG"), result.stderr)
    }
}
