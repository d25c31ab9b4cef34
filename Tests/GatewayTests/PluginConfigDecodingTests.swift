import GatewayPluginKit
import XCTest

/// GatewayPluginKit's `PluginConfig.decode`: strict by default, errors that name the key path.
final class PluginConfigDecodingTests: XCTestCase {
    struct Settings: Decodable, Equatable {
        var prefix: String
        var limit: Int?
        var ratio: Double?
        var enabled: Bool?
        var rules: [Rule]
        var labels: [String: Int]?

        struct Rule: Decodable, Equatable {
            var path: String
            var methods: [String]?
        }
    }

    private func decode(_ json: String, allowingUnknownKeys: Bool = false) throws -> Settings {
        try PluginConfig(json: json, tag: 0).decode(Settings.self, allowingUnknownKeys: allowingUnknownKeys)
    }

    private func error(_ json: String) -> String {
        do {
            _ = try decode(json)
            return "no error"
        } catch let error as PluginConfigError {
            return error.message
        } catch {
            return "\(error)"
        }
    }

    func testDecodesEveryKind() throws {
        let settings = try decode(#"{"prefix":"a\u00e9\ud83d\ude00\n","limit":1e3,"ratio":0.5,"enabled":true,"rules":[{"path":"/x","methods":["GET"]},{"path":"/y"}],"labels":{"a":1}}"#)
        XCTAssertEqual(settings, Settings(
            prefix: "aé😀\n", limit: 1000, ratio: 0.5, enabled: true,
            rules: [.init(path: "/x", methods: ["GET"]), .init(path: "/y", methods: nil)], labels: ["a": 1]
        ))
    }

    func testUnknownKeysAreErrorsWithTheirPathAndTheKnownKeys() {
        XCTAssertEqual(error(#"{"prefix":"p","rules":[{"path":"/a","metods":["GET"]}]}"#), "rules[0]: unknown key 'metods'; known: methods, path")
        XCTAssertEqual(error(#"{"prefix":"p","rules":[],"prefx":"q"}"#), "config: unknown key 'prefx'; known: enabled, labels, limit, prefix, ratio, rules")
    }

    func testJSONThatIsNotJSONIsRefused() {
        for text in [#"{"prefix":"\ud800","rules":[]}"#, #"{"prefix":"\ud800x\udc00","rules":[]}"#, #"{"prefix":"\udc00","rules":[]}"#,
                     #"{"prefix":"\u+041","rules":[]}"#, #"{"prefix":"p","rules":[],"limit":01}"#, #"{"prefix":"p","rules":[],"limit":+1}"#,
                     #"{"prefix":"p","rules":[],"ratio":.5}"#, #"{"prefix":"p","rules":[],"ratio":1e400}"#, #"{"prefix":"p","rules":[],"ratio":5.}"#] {
            XCTAssertEqual(error(text), "config is not valid JSON", text)
        }
    }

    func testURLDecimalAndDataDecodeAsJSONDecoderDoesThem() throws {
        struct Foundationy: Decodable { var url: URL; var amount: Decimal; var blob: Data }
        let decoded = try PluginConfig(json: #"{"url":"https://example.test/x","amount":12.50,"blob":"aGk="}"#, tag: 0).decode(Foundationy.self)
        XCTAssertEqual(decoded.url.host, "example.test")
        XCTAssertEqual(decoded.amount, Decimal(string: "12.5"))
        XCTAssertEqual(decoded.blob, Data("hi".utf8))
    }

    func testUnknownKeysCanBeAllowed() throws {
        XCTAssertEqual(try decode(#"{"prefix":"p","rules":[],"later":1}"#, allowingUnknownKeys: true).prefix, "p")
    }

    func testTypeAndPresenceErrorsNameTheKeyPath() {
        XCTAssertEqual(error(#"{"prefix":3,"rules":[]}"#), "prefix: expected a string")
        XCTAssertEqual(error(#"{"prefix":"p","rules":[{"methods":[]}]}"#), "rules[0].path: missing required key (rules[0] has: methods)")
        XCTAssertEqual(error(#"{"rules":[]}"#), "prefix: missing required key (config has: rules)")
        XCTAssertEqual(error(#"{"prefix":"p","rules":[],"limit":2.5}"#), "limit: 2.5 is not an integer in range")
        XCTAssertEqual(error(#"{"prefix":"p","rules":[],"enabled":1}"#), "enabled: expected true or false")
        XCTAssertEqual(error(#"{"prefix":"p","rules":{}}"#), "rules: expected an array")
        XCTAssertEqual(error(#"{"prefix":"p","rules":[], "#), "config is not valid JSON")
        XCTAssertEqual(error(#"["not", "a", "mapping"]"#), "config: expected a mapping")
    }
}
