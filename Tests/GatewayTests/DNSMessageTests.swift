import Foundation
import GatewayCore
import XCTest

/// The DNS query the gateway sends and its reading of answers, on hand-made messages: compression, CNAME
/// chains, records for other names, and every way an answer can be malformed or hostile.
final class DNSMessageTests: XCTestCase {
    private func name(_ text: String) -> [UInt8] { DNSMessage.encodeName(text)! }
    private func u16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    private func u32(_ v: UInt32) -> [UInt8] { u16(UInt16(v >> 16)) + u16(UInt16(v & 0xFFFF)) }

    /// A response: header (QR, RD, RA and `flags` added), the question for `question`/`type`, then `answers`.
    private func response(id: UInt16 = 7, flags: UInt16 = 0, question: String = "api.test", type: UInt16 = 1, answers: [[UInt8]]) -> [UInt8] {
        u16(id) + u16(0x8180 | flags) + u16(1) + u16(UInt16(answers.count)) + u16(0) + u16(0)
            + name(question) + u16(type) + u16(1) + answers.flatMap { $0 }
    }

    private func record(_ owner: [UInt8], type: UInt16 = 1, ttl: UInt32 = 60, data: [UInt8]) -> [UInt8] {
        owner + u16(type) + u16(1) + u32(ttl) + u16(UInt16(data.count)) + data
    }

    private func parse(_ bytes: [UInt8], id: UInt16 = 7, type: DNSMessage.RecordType = .a) throws(DNSMessage.Failure) -> DNSMessage.Answer {
        try DNSMessage.addresses(in: bytes, id: id, name: "api.test", type: type)
    }

    private func failure(_ bytes: [UInt8], id: UInt16 = 7, type: DNSMessage.RecordType = .a) -> DNSMessage.Failure? {
        do {
            _ = try parse(bytes, id: id, type: type)
            return nil
        } catch {
            return error
        }
    }

    func testQueryIsARecursiveQuestionWithEDNS() {
        let query = DNSMessage.query(id: 0xBEEF, name: "Api.Test.", type: .aaaa)
        XCTAssertEqual(query, [0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
            + [3] + Array("Api".utf8) + [4] + Array("Test".utf8) + [0, 0, 28, 0, 1]
            + [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0])
        XCTAssertNil(DNSMessage.query(id: 1, name: "a..b", type: .a))
        XCTAssertNil(DNSMessage.query(id: 1, name: String(repeating: "x", count: 64) + ".test", type: .a))
        XCTAssertNil(DNSMessage.query(id: 1, name: String(repeating: "abcdefg.", count: 32) + "test", type: .a))
    }

    func testAddressesWithCompressionAndTheSmallestTTL() throws {
        // Answers name the question by pointer (offset 12), as servers do; owner names are compared without case.
        let answer = try parse(response(answers: [
            record([0xC0, 12], ttl: 30, data: [10, 0, 0, 1]),
            record([0xC0, 12], ttl: 5, data: [10, 0, 0, 2]),
            record(name("API.test"), ttl: 9, data: [10, 0, 0, 1]),
        ]))
        XCTAssertEqual(answer, DNSMessage.Answer(addresses: ["10.0.0.1", "10.0.0.2"], ttl: 5))
        let six = try parse(response(type: 28, answers: [
            record([0xC0, 12], type: 28, ttl: 300, data: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]),
        ]), type: .aaaa)
        XCTAssertEqual(six, DNSMessage.Answer(addresses: ["2001:db8::1"], ttl: 300))
        XCTAssertEqual(try parse(response(answers: [])), DNSMessage.Answer(addresses: [], ttl: nil), "NOERROR without records: no address")
    }

    func testCNAMEChainIsFollowedAndOtherNamesIgnored() throws {
        let bytes = response(answers: [
            record(name("other.test"), data: [192, 0, 2, 66]),  // not on the chain: ignored
            record(name("api.test"), type: 5, ttl: 20, data: name("edge.cdn.test")),
            record(name("edge.cdn.test"), type: 5, ttl: 40, data: name("host.cdn.test")),
            record(name("host.cdn.test"), ttl: 50, data: [192, 0, 2, 7]),
            record(name("api.test"), ttl: 50, data: [192, 0, 2, 99]),  // beside a CNAME: not the chain's end
        ])
        XCTAssertEqual(try parse(bytes), DNSMessage.Answer(addresses: ["192.0.2.7"], ttl: 20))
    }

    func testServerOutcomes() {
        XCTAssertEqual(failure(response(flags: 3, answers: [])), .nameNotFound)
        XCTAssertEqual(failure(response(flags: 2, answers: [])), .serverError(rcode: 2))
        XCTAssertEqual(failure(response(flags: 5, answers: [])), .serverError(rcode: 5))
        XCTAssertEqual(failure(response(flags: 0x0200, answers: [])), .truncated)
    }

    func testMalformedAndHostileAnswersAreRefused() {
        func isMalformed(_ bytes: [UInt8], id: UInt16 = 7, _ message: String, line: UInt = #line) {
            guard case .malformed = failure(bytes, id: id) else {
                return XCTFail("\(message): \(String(describing: failure(bytes, id: id)))", line: line)
            }
        }
        let good = response(answers: [record([0xC0, 12], data: [10, 0, 0, 1])])
        isMalformed([], "empty")
        isMalformed(Array(good.prefix(11)), "shorter than a header")
        for cut in 12..<good.count { isMalformed(Array(good.prefix(cut)), "cut at \(cut)") }
        isMalformed(good, id: 8, "another query's ID")
        var query = good
        query[2] &= 0x7F
        isMalformed(query, "QR 0")
        var opcode = good
        opcode[2] |= 0x10
        isMalformed(opcode, "opcode 2")
        isMalformed(response(question: "evil.test", answers: [record([0xC0, 12], data: [10, 0, 0, 1])]), "another question")
        isMalformed(response(type: 28, answers: []), "another type")
        isMalformed(response(answers: [record([0xC0, 12], data: [10, 0, 0])]), "A of 3 bytes")
        isMalformed(response(answers: [record([0xC0, 12], data: [10, 0, 0, 1, 2])]), "A of 5 bytes")
        isMalformed(response(answers: [record([0xC0, 200], data: [10, 0, 0, 1])]), "pointer forward")
        isMalformed(response(answers: [record([0xC0, 0x1A], data: [10, 0, 0, 1])]), "pointer to itself")
        isMalformed(response(answers: [record([0x80, 12], data: [10, 0, 0, 1])]), "label type 10")
        isMalformed(response(answers: [[0x3F, 0x61, 0x61]]), "a label past the end of the message")
        // Owner names longer than 255 bytes, built from pointers back into labels.
        let long: [UInt8] = (0..<5).flatMap { _ -> [UInt8] in [63] + [UInt8](repeating: 0x61, count: 63) } + [0]
        isMalformed(response(answers: [record(long, data: [10, 0, 0, 1])]), "name over 255 bytes")
        // CNAME loop and over-long chain.
        isMalformed(response(answers: [
            record(name("api.test"), type: 5, data: name("b.test")), record(name("b.test"), type: 5, data: name("api.test")),
        ]), "CNAME loop")
        let chain = (0..<10).map { record(name($0 == 0 ? "api.test" : "c\($0).test"), type: 5, data: name("c\($0 + 1).test")) }
        isMalformed(response(answers: chain + [record(name("c10.test"), data: [10, 0, 0, 1])]), "chain of 10")
        isMalformed(response(answers: [record(name("api.test"), type: 5, data: name("b.test") + [0])]), "CNAME data longer than its name")
    }

    func testIPv6TextMatchesInetNtop() {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<2000 {
            var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Zero runs of every length and place.
            let start = round % 16, length = (round / 16) % 17
            for i in start..<min(16, start + length) { bytes[i] = 0 }
            if round % 3 == 0 { for i in 0..<8 { bytes[2 * i] = 0; bytes[2 * i + 1] = i % 2 == 0 ? 0 : bytes[2 * i + 1] } }
            var text = [CChar](repeating: 0, count: 64)
            _ = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, 64) }
            let expected = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // glibc writes an IPv4-mapped or -compatible address in dotted form; the gateway does not.
            if expected.contains(".") { continue }
            XCTAssertEqual(DNSMessage.ipv6Text(bytes[...]), expected, "\(bytes)")
        }
    }
}
