import Foundation
import GatewayCore
import PluginAPI
import XCTest

/// The ABI's config reader (config_get, config_key_at, config_check_keys) and the typed getters of
/// gateway_plugin_helpers.h: a C plugin reads its config by key path, with the gateway's error wording.
final class PluginConfigReaderTests: GatewayTestCase {
    func testPathsParseOrAreRefused() {
        typealias Step = PluginConfigReader.Step
        XCTAssertEqual(PluginConfigReader.steps(""), [])
        XCTAssertEqual(PluginConfigReader.steps("rules[10].allow.ou"), [Step.key("rules"), .index(10), .key("allow"), .key("ou")])
        XCTAssertEqual(PluginConfigReader.steps("[0][1]"), [Step.index(0), .index(1)])
        for bad in ["a..b", ".a", "a.", "a[", "a[]", "a[x]", "a[1", "a[-1]", "a[1]b", "a[9999999999]"] {
            XCTAssertNil(PluginConfigReader.steps(bad), bad)
        }
    }

    func testValuesByPath() throws {
        let json = #"{"s":"x\u0000y","i":-3,"f":2.0,"d":0.5,"b":true,"n":null,"a":[1,"two"],"o":{"z":1,"a":2}}"#
        let reader = PluginConfigReader(config: try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)))
        func type(_ path: String) -> gw_config_type? { reader.value(at: path)?.type }
        XCTAssertEqual(type("s"), GW_CONFIG_STRING)
        let s = try XCTUnwrap(reader.value(at: "s")).string
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: s.ptr, count: s.len)), [0x78, 0, 0x79], "bytes with their length, NUL inside kept")
        XCTAssertEqual(UnsafeRawPointer(s.ptr!).load(fromByteOffset: s.len, as: UInt8.self), 0, "NUL-terminated after len")
        XCTAssertEqual(reader.value(at: "i")?.integer, -3)
        XCTAssertEqual(type("f"), GW_CONFIG_INT, "2.0 is an integer")
        XCTAssertEqual(type("d"), GW_CONFIG_NUMBER)
        XCTAssertEqual(reader.value(at: "b")?.integer, 1)
        XCTAssertEqual(type("n"), GW_CONFIG_NULL)
        XCTAssertEqual(reader.value(at: "a")?.count, 2)
        XCTAssertEqual(type("a[1]"), GW_CONFIG_STRING)
        XCTAssertEqual(type("a[2]"), GW_CONFIG_MISSING)
        XCTAssertEqual(type("s.x"), GW_CONFIG_MISSING, "through a non-container: missing")
        XCTAssertEqual(type("nope"), GW_CONFIG_MISSING)
        XCTAssertNil(reader.value(at: "a..b"), "malformed path")
        let key = try XCTUnwrap(reader.key(at: "o", index: 0))
        XCTAssertEqual(String(decoding: UnsafeRawBufferPointer(start: key.ptr, count: key.len), as: UTF8.self), "a", "keys sorted")
        XCTAssertNil(reader.key(at: "o", index: 2))
        XCTAssertNil(reader.key(at: "a", index: 0))
        XCTAssertEqual(reader.unknownKey(at: "o", known: ["z"]), "o: unknown key 'a'; known: z")
        XCTAssertEqual(reader.unknownKey(at: "", known: ["s", "i"]), "config: unknown key 'a'; known: i, s")
        XCTAssertNil(reader.unknownKey(at: "o", known: ["a", "z"]))
        XCTAssertEqual(PluginConfigReader(config: nil).value(at: "x")?.type, GW_CONFIG_MISSING)
    }

    func testACPluginReadsItsConfigWithoutAParser() async throws {
        let path = try PluginFixtures.build("configread")
        let pki = try TestPKI()
        let backend = TestBackend()
        try await backend.start()
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                plugins:
                  - library: \(path)
                    config:
                      greeting: hello
                      limit: 5
                      strict: true
                      ratio: 0.5
                      tags: [a, b]
                      rules: [ { path: /x, allow: [alice, bob] }, { path: /y } ]
                      labels: { team: blue, env: prod }
                  - { library: \(path) }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let response = try await TestClient.get(port: gateway.port("l"), tls: nil, path: "/")
        XCTAssertEqual(response?.status, 200)
        // Two instances, each with its own config; the second's defaults. Outside create: GW_ERR_WRONG_PHASE.
        XCTAssertEqual(backend.requests.last?.head.headers["x-config"], [
            "greeting=hello limit=5 strict=1 ratio=0.50 tags=a,b rules=/x:alice+bob;/y: labels=env:prod,team:blue late=-5",
            "greeting=hi limit=10 strict=0 ratio=1.00 tags= rules= labels= late=-5",
        ])
        await gateway.stop()
        await backend.stop()
    }

    func testBadConfigsAreRefusedWithTheKeyPath() throws {
        let path = try PluginFixtures.build("configread")
        let cases: [(config: String, error: String)] = [
            ("{ greting: hi }", "config: unknown key 'greting'; known: greeting, labels, limit, ratio, rules, strict, tags"),
            ("{ limit: \"5\" }", "limit: expected an integer"),
            ("{ limit: 1.5 }", "limit: expected an integer"),
            ("{ strict: yes_please }", "strict: expected true or false"),
            ("{ tags: [a, 3] }", "tags[1]: expected a string"),
            ("{ rules: [ { allow: [x] } ] }", "rules[0].path: missing required key"),
            ("{ rules: [ { path: /x, alow: [] } ] }", "rules[0]: unknown key 'alow'; known: allow, path"),
            ("{ rules: [ oops ] }", "rules[0]: expected a mapping"),
            ("{ labels: { team: 7 } }", "labels.team: expected a string"),
        ]
        let refusals = try validateRefuses(library: path, cases.map(\.config))
        for (item, stderr) in zip(cases, refusals) {
            XCTAssertTrue(stderr.contains("plugin 'configread' (\(path)) rejected its config: \(item.error)\n"), "\(item.config): \(stderr)")
        }
    }
}
