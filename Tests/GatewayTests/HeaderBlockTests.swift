import GatewayCore
import XCTest

/// The headers plugins add, kept as the bytes they are sent as.
final class HeaderBlockTests: XCTestCase {
    private func append(_ block: inout HeaderBlock, _ name: String, _ value: [UInt8]) {
        Array(name.utf8).withUnsafeBytes { name in value.withUnsafeBytes { block.append(name: name, value: $0) } }
    }

    func testFieldsAreTheirLinesAndReadBackInOrder() {
        var block = HeaderBlock()
        XCTAssertTrue(block.isEmpty)
        append(&block, "X-Client-Subject", Array("CN=a, O=b: c".utf8))
        append(&block, "x-empty", [])
        append(&block, "x-spaced", Array("  v  ".utf8))
        XCTAssertEqual(String(decoding: block.bytes, as: UTF8.self), "X-Client-Subject: CN=a, O=b: c\r\nx-empty: \r\nx-spaced:   v  \r\n")
        XCTAssertEqual(block.count, 3)
        XCTAssertEqual(block.fields.map { "\($0.0)=\($0.1)" }, ["X-Client-Subject=CN=a, O=b: c", "x-empty=", "x-spaced=  v  "])
        var seen: [String] = []
        block.forEach { name, _ in
            seen.append(String(decoding: name, as: UTF8.self))
            return seen.count < 2
        }
        XCTAssertEqual(seen, ["X-Client-Subject", "x-empty"], "forEach stops when told")
        XCTAssertEqual(HeaderBlock(block.fields), block)
    }

    func testValuesThatAreNotUTF8AreRepairedAsSetHeaderRepairsThem() {
        var block = HeaderBlock()
        let long = Array(repeating: UInt8(ascii: "a"), count: 21)
        append(&block, "x-bad", long + [0xFF] + Array("b".utf8))
        append(&block, "x-latin", Array("caf\u{e9}".utf8))
        append(&block, "x-cut", [0x61, 0xC3])
        XCTAssertEqual(block.fields.map(\.1), [String(repeating: "a", count: 21) + "\u{FFFD}b", "caf\u{e9}", "a\u{FFFD}"])
    }

    func testNamesCompareWithoutCase() {
        func same(_ a: String, _ b: String) -> Bool {
            Array(a.utf8).withUnsafeBytes { a in Array(b.utf8).withUnsafeBytes { HeaderBlock.sameIgnoringCase(a, $0) } }
        }
        XCTAssertTrue(same("X-Client-Cert", "x-client-cert"))
        XCTAssertFalse(same("x-client-cert", "x-client-cerx"))
        XCTAssertFalse(same("x-a", "x-ab"))
        XCTAssertFalse(same("[", "{"), "only letters fold")
    }
}
