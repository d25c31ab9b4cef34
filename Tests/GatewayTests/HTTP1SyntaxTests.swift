import GatewayCore
import GatewayTooling
import XCTest

/// The word-at-a-time pieces of the HTTP/1 parsers against byte-by-byte references, on seeded random bytes.
final class HTTP1SyntaxTests: XCTestCase {
    /// Every literal the parsers, the validator and the proxy rules compare names and values with.
    private static let literals: [StaticString] = [
        "te", "host", "close", "expect", "trailer", "upgrade", "chunked", "connection", "keep-alive", "content-length",
        "x-forwarded-for", "proxy-connection", "x-forwarded-host", "x-forwarded-port", "transfer-encoding", "x-forwarded-proto",
        "proxy-authenticate", "proxy-authorization",
    ]

    private static func reference(_ bytes: [UInt8], _ lowercase: StaticString) -> Bool {
        let expected = Array(UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
        guard bytes.count == expected.count else { return false }
        for (byte, wanted) in zip(bytes, expected) where (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) != wanted { return false }
        return true
    }

    /// The folded four- and eight-byte comparison is exact for any bytes: each literal in random case (equal),
    /// with one byte replaced by every other byte value at every position (equal only where that is the
    /// letter's other case), and random bytes of lengths 0 to 20.
    func testCaseInsensitiveComparisonIsExactForAnyBytes() {
        var random = SeededRandom(seed: 0xF01D_CA5E)
        var equal = 0
        for literal in Self.literals {
            let base = Array(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
            for position in base.indices {
                for value in 0...255 {
                    var bytes = base.map { random.next() % 2 == 0 ? $0 : ($0 >= 97 && $0 <= 122 ? $0 - 32 : $0) }
                    bytes[position] = UInt8(value)
                    let fast = bytes.withUnsafeBytes { HTTP1Syntax.equalsIgnoringCase($0, literal) }
                    XCTAssertEqual(fast, Self.reference(bytes, literal), "\(bytes) against \(literal)")
                    if fast { equal += 1 }
                }
            }
            for round in 0..<500 {
                // Half of them as long as the literal (the length check alone refuses the others).
                let length = round % 2 == 0 ? base.count : Int(random.next() % 21)
                let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                XCTAssertEqual(bytes.withUnsafeBytes { HTTP1Syntax.equalsIgnoringCase($0, literal) }, Self.reference(bytes, literal), "\(bytes)")
            }
        }
        XCTAssertGreaterThan(equal, 300, "few equal inputs: the comparison of equal ones was hardly tested")
    }

    /// The value scan's `ascii` says whether the value has a byte above 0x7F, for values of every length with
    /// such bytes anywhere (in the words read eight bytes at a time and in the bytes read one by one).
    func testTheFieldLineSaysWhetherItsValueIsASCII() {
        var random = SeededRandom(seed: 0xA5C1_1A5C)
        let alphabet: [UInt8] = Array("abz09 -,;=\t".utf8) + [0x80, 0xC3, 0xA9, 0xFF, 0x7E]
        var nonASCII = 0
        for _ in 0..<20_000 {
            let value = (0..<Int(random.next() % 40)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            // A non-ASCII line after it: the scan must not count bytes past the value's CR.
            let line = Array("X-Name: ".utf8) + value + [13, 10] + Array("Y: \u{e9}\u{e9}\u{e9}\u{e9}\r\n\r\n".utf8)
            guard let field = line.withUnsafeBytes({ HTTP1Syntax.fieldLine($0, from: 0) }) else {
                XCTFail("refused \(line)")
                continue
            }
            let expected = value.allSatisfy { $0 < 0x80 }
            XCTAssertEqual(field.ascii, expected, "\(value)")
            if !expected { nonASCII += 1 }
        }
        XCTAssertGreaterThan(nonASCII, 5_000)
    }
}
