import Foundation
import GatewayCore
import GatewayPluginKit
import XCTest

/// The one JSON string escaper (the SDK's `JSONText`), used by the core, the bundled plugins and the examples.
final class JSONTextTests: XCTestCase {
    private func escaped(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { JSONText.appendQuoted($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    func testEscapesWhatWouldBreakALineOrAString() {
        XCTAssertEqual(escaped(Array("plain /path?a=b".utf8)), #""plain /path?a=b""#)
        XCTAssertEqual(escaped(Array("a\"b\\c".utf8)), #""a\"b\\c""#)
        XCTAssertEqual(escaped(Array("l1\r\nforged\t".utf8)), #""l1\r\nforged\t""#)
        XCTAssertEqual(escaped([0x00, 0x1B, 0x7F]), #""\u0000\u001b\u007f""#)
        XCTAssertEqual(escaped(Array("x\u{2028}y\u{2029}".utf8)), #""x\u2028y\u2029""#)
        XCTAssertEqual(escaped([0x61, 0xFF, 0x62]), "\"a\u{FFFD}b\"", "invalid UTF-8 becomes U+FFFD")
        XCTAssertEqual(escaped(Array("é✓".utf8)), "\"é✓\"")
    }

    func testEveryByteStringRoundTripsThroughFoundationsParser() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = escaped(bytes)
            XCTAssertFalse(text.utf8.contains { $0 < 0x20 }, "no raw control byte: \(text)")
            let parsed = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) as? String
            XCTAssertEqual(parsed, String(decoding: bytes, as: UTF8.self))
        }
    }

    func testCoreConfigValuesUseIt() {
        XCTAssertEqual(JSONValue.object([("k\n", .string("v\"\u{2028}"))]).json, #"{"k\n":"v\"\u2028"}"#)
    }

    /// The word-at-a-time fast-path check agrees with the byte rule: each byte value at each place of a word,
    /// and random strings.
    func testPlainCheckAgreesWithTheByteRule() {
        func check(_ bytes: [UInt8]) {
            let expected = bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }
            XCTAssertEqual(bytes.withUnsafeBytes { JSONText.needsNoEscaping($0) }, expected, "\(bytes)")
        }
        check([])
        for length in [1, 7, 8, 9, 15, 16, 23] {
            for place in 0..<length {
                for byte in UInt8.min...UInt8.max {
                    var bytes = Array(repeating: UInt8(ascii: "p"), count: length)
                    bytes[place] = byte
                    check(bytes)
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = Array(0x20...0x7E) + [0x00, 0x09, 0x0A, 0x1F, 0x22, 0x5C, 0x7F, 0x80, 0xC3, 0xFF]
        for _ in 0..<20_000 {
            check((0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
        }
    }
}
