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

    /// Any working set of up to `limit` strings hits on every pass after the first, wherever its bytes lie (a
    /// direct-mapped cache lost strings whose addresses collided, so the allocations per request depended on the
    /// heap layout of the process). Many random layouts, seeded so that a failure repeats.
    func testAWorkingSetWithinTheLimitAlwaysHitsWhereverItsBytesLie() {
        var random = SeededRandom(seed: 0x5EED_CAFE)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        for layout in 0..<200 {
            let cache = PluginStringCache()
            let count = layout == 0 ? PluginStringCache.limit : Int.random(in: 8...PluginStringCache.limit, using: &random)
            // `count` disjoint views at random places, of random lengths, with distinct bytes.
            var views: [UnsafeRawBufferPointer] = [], texts: [String] = []
            let stride = buffer.count / count
            for index in 0..<count {
                let text = "x-client-header-\(layout)-\(index)-" + String(repeating: "v", count: Int.random(in: 0...40, using: &random))
                let start = index * stride + Int.random(in: 0...(stride - text.utf8.count), using: &random)
                let bytes = Array(text.utf8)
                UnsafeMutableRawBufferPointer(rebasing: buffer[start..<start + bytes.count]).copyBytes(from: bytes)
                views.append(UnsafeRawBufferPointer(rebasing: buffer[start..<start + bytes.count]))
                texts.append(text)
            }
            for (view, text) in zip(views, texts) { XCTAssertEqual(cache.string(view), text) }
            XCTAssertEqual(cache.hits, 0)
            for pass in 1...3 {
                for (view, text) in zip(views, texts) { XCTAssertEqual(cache.string(view), text) }
                XCTAssertEqual(cache.hits, pass * count, "layout \(layout): \(count) strings, pass \(pass)")
                if cache.hits != pass * count { return }
            }
        }
    }

    /// Past the limit the table starts again: every answer stays right, and the newest strings hit again.
    func testMoreStringsThanTheLimitStayCorrect() {
        let cache = PluginStringCache()
        let count = PluginStringCache.limit * 3 + 7
        let texts = (0..<count).map { "x-many-strings-\($0)-value" }
        let storage = texts.map { Array($0.utf8) }
        for round in 0..<2 {
            for (bytes, text) in zip(storage, texts) {
                bytes.withUnsafeBytes { XCTAssertEqual(cache.string($0), text, "round \(round)") }
            }
        }
        // A small working set after the churn: in the table again after at most two passes, then every pass hits.
        let recent = storage.prefix(8)
        for _ in 0..<2 { for bytes in recent { bytes.withUnsafeBytes { _ = cache.string($0) } } }
        let hitsBefore = cache.hits
        for bytes in recent { bytes.withUnsafeBytes { _ = cache.string($0) } }
        XCTAssertEqual(cache.hits - hitsBefore, 8)
    }
}
