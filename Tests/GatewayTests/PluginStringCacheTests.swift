import GatewayCore
import XCTest

/// The host's cache of strings plugins pass: a hit only for the same bytes, wherever they are.
final class PluginStringCacheTests: XCTestCase {
    func testTheSameBytesAtTheSamePlaceAreAHitAndReusedMemoryIsNeverMistaken() {
        let cache = PluginStringCache()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        func put(_ text: String) -> UnsafeRawBufferPointer {
            let bytes = Array(text.utf8)
            buffer.copyBytes(from: bytes)
            return UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count])
        }
        XCTAssertEqual(cache.string(put("x-client-cert-subject")), "x-client-cert-subject")
        XCTAssertEqual(cache.string(put("x-client-cert-subject")), "x-client-cert-subject")
        XCTAssertEqual(cache.hits, 1)
        // The plugin reused its memory for other bytes of the same length: a miss, the new text.
        XCTAssertEqual(cache.string(put("x-client-cert-issuerX")), "x-client-cert-issuerX")
        XCTAssertEqual(cache.hits, 1)
        // Invalid UTF-8 is repaired as gw_str.string does, every time (the repaired text never equals the bytes).
        var invalid = Array("x-client-cert-bad-".utf8)
        invalid.append(0xFF)
        buffer.copyBytes(from: invalid)
        let view = UnsafeRawBufferPointer(rebasing: buffer[0..<invalid.count])
        XCTAssertEqual(cache.string(view), "x-client-cert-bad-\u{FFFD}")
        XCTAssertEqual(cache.string(view), "x-client-cert-bad-\u{FFFD}")
        XCTAssertEqual(cache.hits, 1)
        // Short strings are not cached (they need no allocation); empty views are empty strings.
        XCTAssertEqual(cache.string(put("short")), "short")
        XCTAssertEqual(cache.string(UnsafeRawBufferPointer(start: nil, count: 0)), "")
    }

    func testLongValuesAreCopiedNotKept() {
        let cache = PluginStringCache()
        let long = Array(repeating: UInt8(ascii: "a"), count: PluginStringCache.maxLength + 1)
        long.withUnsafeBytes { bytes in
            XCTAssertEqual(cache.string(bytes).utf8.count, long.count)
            XCTAssertEqual(cache.string(bytes).utf8.count, long.count)
        }
        XCTAssertEqual(cache.hits, 0)
    }
}
