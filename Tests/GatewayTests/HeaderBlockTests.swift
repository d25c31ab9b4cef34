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

    /// The batch append (`add_headers`) writes what one-by-one appends write, into a new buffer, after lines
    /// already there, and line by line when a value must be repaired.
    func testAppendingAListWritesWhatAppendingEachWrites() {
        var generator = SystemRandomNumberGenerator()
        let pem = Array(String(repeating: "MIIB%2Fz", count: 400).utf8)
        let lists: [[(String, [UInt8])]] = [
            [("x-a", Array("1".utf8)), ("x-cert", pem), ("x-empty", []), ("X-Mixed-Case", Array("v: w".utf8))],
            [("x-one", Array("only".utf8))],
            [("x-bad", [0x61, 0xFF, 0x62]), ("x-after", Array("ok".utf8))],
            (0..<40).map { ("x-\($0)", (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }) },
        ]
        for before in [[], [("x-before", Array("b".utf8))], [("x-big", pem)]] as [[(String, [UInt8])]] {
            for list in lists {
                var each = HeaderBlock()
                var batch = HeaderBlock()
                for (name, value) in before {
                    append(&each, name, value)
                    append(&batch, name, value)
                }
                for (name, value) in list { append(&each, name, value) }
                let names = list.map { Array($0.0.utf8) }
                let values = list.map(\.1)
                withViews(names) { names in
                    withViews(values) { values in batch.append(Array(zip(names, values))) }
                }
                XCTAssertEqual(batch, each, "\(before.count) before, \(list.count) in the list")
                XCTAssertEqual(batch.count, before.count + list.count)
            }
        }
    }

    private func withViews(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> Void) {
        let copies = arrays.map { bytes -> UnsafeMutableRawBufferPointer in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
            copy.copyBytes(from: bytes)
            return copy
        }
        defer { copies.forEach { $0.deallocate() } }
        body(zip(copies, arrays).map { UnsafeRawBufferPointer(start: $0.0.baseAddress, count: $0.1.count) })
    }

    /// The word-at-a-time name check agrees with the byte table: each byte value at each place of a word, and
    /// random names.
    func testNameCheckAgreesWithTheTokenTable() {
        let tchar = Set("!#$%&'*+-.^_`|~".utf8).union(UInt8(ascii: "a")...UInt8(ascii: "z")).union(UInt8(ascii: "A")...UInt8(ascii: "Z"))
            .union(UInt8(ascii: "0")...UInt8(ascii: "9"))
        func check(_ name: [UInt8]) {
            let expected = !name.isEmpty && name.allSatisfy(tchar.contains)
            let got = name.withUnsafeBytes { HeaderValidation.isValidName($0) }
            XCTAssertEqual(got, expected, "\(name)")
        }
        check([])
        for length in [1, 7, 8, 9, 16, 17] {
            for place in 0..<length {
                for byte in UInt8.min...UInt8.max {
                    var name = Array(repeating: UInt8(ascii: "k"), count: length)
                    name[place] = byte
                    check(name)
                }
            }
        }
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(tchar) + [0x00, 0x20, 0x22, 0x2C, 0x2F, 0x3A, 0x40, 0x5B, 0x7F, 0x80, 0xFF]
        for _ in 0..<20_000 {
            check((0..<Int.random(in: 1...40, using: &generator)).map { _ in
                Bool.random(using: &generator) ? UInt8(ascii: "x") : alphabet.randomElement(using: &generator)!
            })
        }
    }
}
