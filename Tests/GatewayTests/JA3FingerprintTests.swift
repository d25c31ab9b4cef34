import Foundation
import GatewayCore
import NIOCore
import XCTest

/// JA3 against Salesforce's reference implementation: the ClientHellos of FoxIO's captures
/// (Tests/Fixtures/ja4-vectors.json) with the JA3 string and MD5 that `pyja3` 1.0.0 computes for each
/// (scripts/ja3-vectors.py wrote Tests/Fixtures/ja3-vectors.json), and the example of Salesforce's README.
final class JA3FingerprintTests: XCTestCase {
    private struct Hello: Decodable {
        var capture: String
        var stream: Int
        var hello: String
    }

    private struct Vector: Decodable {
        var capture: String
        var stream: Int
        var ja3: String
        var ja3_full: String
    }

    private static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    func testSalesforcesReferenceGivesTheSameFingerprintsForFoxIOsCaptures() throws {
        let hellos = try JSONDecoder().decode([Hello].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("ja4-vectors.json")))
        let vectors = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("ja3-vectors.json")))
        XCTAssertGreaterThan(vectors.count, 80)
        var checked = 0
        for vector in vectors {
            let label = "\(vector.capture) stream \(vector.stream)"
            guard let bytes = hellos.first(where: { $0.capture == vector.capture && $0.stream == vector.stream })?.hello else {
                XCTFail("\(label): no hello in ja4-vectors.json")
                continue
            }
            switch ClientHello.parse(ByteBuffer(bytes: [UInt8](hex: bytes))) {
            case .complete(let hello):
                let ja3 = JA3Fingerprint(hello)
                XCTAssertEqual(ja3.full, vector.ja3_full, label)
                XCTAssertEqual(ja3.fingerprint, vector.ja3, label)
                XCTAssertTrue(JA3Fingerprint.isWellFormed(ja3.fingerprint), ja3.fingerprint)
                checked += 1
            case .refused:
                // A hello the gateway refuses (a server name that is no host name) never gets a fingerprint.
                continue
            case let other:
                XCTFail("\(label): \(other)")
            }
        }
        XCTAssertGreaterThan(checked, 80)
        print("JA3: \(checked) hellos of FoxIO's captures checked against pyja3")
    }

    func testTheReadmesExampleAndGREASE() {
        // github.com/salesforce/ja3 README: "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0".
        var hello = ClientHello(serverName: nil, alpn: [], cipherSuites: [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4])
        hello.legacyVersion = 769
        hello.extensionTypes = [0, 10, 11]
        hello.supportedGroups = [23, 24, 25]
        hello.ecPointFormats = [0]
        XCTAssertEqual(JA3Fingerprint(hello).full, "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0")
        XCTAssertEqual(JA3Fingerprint(hello).fingerprint, "ada70206e40642a3e4461f35503241d5")
        // GREASE values go from ciphers, extensions and groups; the order offered stays.
        hello.cipherSuites.insert(0x0A0A, at: 0)
        hello.extensionTypes.insert(0xFAFA, at: 1)
        hello.supportedGroups.insert(0x1A1A, at: 2)
        XCTAssertEqual(JA3Fingerprint(hello).fingerprint, "ada70206e40642a3e4461f35503241d5")
        // Empty lists stay as empty fields.
        let bare = ClientHello()
        XCTAssertEqual(JA3Fingerprint(bare).full, "0,,,,")
        XCTAssertFalse(JA3Fingerprint.isWellFormed("ADA70206E40642A3E4461F35503241D5"))
        XCTAssertFalse(JA3Fingerprint.isWellFormed("ada70206e40642a3e4461f35503241d"))
    }

    /// supported_groups and ec_point_formats are read for JA3 only: malformed ones leave JA3's fields empty and
    /// never refuse the hello (BoringSSL judges it; ec_point_formats means nothing to it in TLS 1.3).
    func testMalformedGroupAndPointFormatListsDoNotRefuseTheHello() {
        let extensions: [UInt8] = [0x00, 0x0A, 0x00, 0x03, 0x00, 0x01, 0xFF] + [0x00, 0x0B, 0x00, 0x02, 0x05, 0x00]
        var body: [UInt8] = [0x03, 0x03] + Array(repeating: 0, count: 32) + [0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]
        body += [UInt8(extensions.count >> 8), UInt8(extensions.count & 0xFF)] + extensions
        let handshake: [UInt8] = [0x01, 0x00, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        let record: [UInt8] = [0x16, 0x03, 0x01, UInt8(handshake.count >> 8), UInt8(handshake.count & 0xFF)] + handshake
        guard case .complete(let hello) = ClientHello.parse(ByteBuffer(bytes: record)) else {
            return XCTFail("refused: \(ClientHello.parse(ByteBuffer(bytes: record)))")
        }
        XCTAssertEqual(hello.extensionTypes, [10, 11])
        XCTAssertEqual(hello.supportedGroups, [])
        XCTAssertEqual(hello.ecPointFormats, [])
        XCTAssertEqual(JA3Fingerprint(hello).full, "771,4865,10-11,,")
    }
}
