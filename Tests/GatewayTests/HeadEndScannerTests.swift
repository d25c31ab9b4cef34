import GatewayCore
import GatewayTooling
import XCTest

/// The head-end scan of `RequestHeadGuard` (memchr for line feeds) against the byte-by-byte loop it replaced
/// (`HeadEndByteLoop`, the reference): same counts and the same end for every read of the same stream.
final class HeadEndScannerTests: XCTestCase {
    private func scan(_ scanner: inout HeadEndScanner, _ bytes: [UInt8]) -> (count: Int, ended: Bool) {
        bytes.withUnsafeBytes { scanner.scan($0) }
    }

    func testUsualHeadsAndEdges() {
        func whole(_ text: String) -> (Int, Bool) {
            var scanner = HeadEndScanner()
            let result = scan(&scanner, Array(text.utf8))
            return (result.count, result.ended)
        }
        XCTAssertTrue(whole("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody") == (27, true))
        XCTAssertTrue(whole("GET / HTTP/1.1\nHost: a\n\nbody") == (24, true), "bare LF lines")
        XCTAssertTrue(whole("\r\n\r\nGET / HTTP/1.1\r\n\r\n") == (18, true), "leading empty lines are not counted")
        XCTAssertTrue(whole("\r\n\r\n\r\n") == (0, false), "empty lines alone are no head and no end")
        XCTAssertTrue(whole("GET / HTTP/1.1\r\nHost: a\r\n") == (25, false))
        XCTAssertTrue(whole("GET /\n\r\r\r\n") == (10, true), "CRs between the two LFs")
        XCTAssertTrue(whole("") == (0, false))
        // Split reads: the end is found across them.
        var scanner = HeadEndScanner()
        XCTAssertTrue(scan(&scanner, Array("GET / HTTP/1.1\r\nHost: a\r".utf8)) == (24, false))
        XCTAssertTrue(scan(&scanner, Array("\n\r".utf8)) == (2, false))
        XCTAssertTrue(scan(&scanner, Array("\nrest".utf8)) == (1, true))
        scanner.reset()
        XCTAssertTrue(scan(&scanner, Array("\r\n".utf8)) == (0, false), "after reset, leading CRLF skipped again")
    }

    /// 20,000 random streams of CR, LF and other bytes, read in random pieces.
    func testAgreesWithTheByteLoopOnRandomStreamsAndSplits() {
        var generator = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [10, 10, 13, 13, 0x61, 0x3A, 0x20, 0x00, 0xFF]
        for round in 0..<20_000 {
            let stream = (0..<Int.random(in: 0...200, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            var reference = HeadEndByteLoop()
            var scanner = HeadEndScanner()
            var offset = 0
            while offset < stream.count {
                let length = Int.random(in: 1...max(1, min(40, stream.count - offset)), using: &generator)
                let piece = Array(stream[offset..<(offset + length)])
                let expected = reference.scan(piece)
                let got = scan(&scanner, piece)
                XCTAssertTrue(got == expected, "round \(round), stream \(stream), at \(offset): \(got) instead of \(expected)")
                if got != expected { return }
                // After the end the guard stops scanning until the next head is awaited (`reset`).
                if expected.ended { break }
                offset += length
            }
        }
    }
}
