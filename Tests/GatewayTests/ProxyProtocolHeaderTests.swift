import GatewayCore
import NIOCore
import XCTest

/// The PROXY protocol parser (v1 and v2), the policy's decisions and the address ranges of `trusted`.
final class ProxyProtocolHeaderTests: XCTestCase {
    private func parse(_ bytes: [UInt8]) -> ProxyProtocolHeader.Parse {
        bytes.withUnsafeBytes { ProxyProtocolHeader.parse($0) }
    }

    private func parse(_ text: String) -> ProxyProtocolHeader.Parse { parse(Array(text.utf8)) }

    private func header(_ parse: ProxyProtocolHeader.Parse, file: StaticString = #filePath, line: UInt = #line) -> ProxyProtocolHeader? {
        guard case .header(let header) = parse else {
            XCTFail("not a header: \(parse)", file: file, line: line)
            return nil
        }
        return header
    }

    private func isInvalid(_ parse: ProxyProtocolHeader.Parse) -> Bool {
        if case .invalid = parse { return true }
        return false
    }

    /// A v2 header: signature, version 2 and `command`, `family`, the length, `body`.
    static func v2(command: UInt8 = 1, family: UInt8 = 0x11, _ body: [UInt8]) -> [UInt8] {
        ProxyProtocolHeader.v2Signature + [0x20 | command, family, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    static let inet4Block: [UInt8] = [203, 0, 113, 9, 192, 0, 2, 1, 0xC8, 0x22, 0x01, 0xBB]  // ports 51234, 443

    // MARK: version 1

    func testV1AddressesPortsAndWhereTheClientBytesStart() throws {
        let line = "PROXY TCP4 203.0.113.9 192.0.2.1 51234 443\r\n"
        let parsed = try XCTUnwrap(header(parse(line + "\u{16}\u{03}\u{01}")))
        XCTAssertEqual(parsed.version, .v1)
        XCTAssertEqual(parsed.source, try SocketAddress(ipAddress: "203.0.113.9", port: 51234))
        XCTAssertEqual(parsed.destination, try SocketAddress(ipAddress: "192.0.2.1", port: 443))
        XCTAssertEqual(parsed.length, line.utf8.count)

        let six = try XCTUnwrap(header(parse("PROXY TCP6 2001:db8::9 2001:db8::1 65535 0\r\n")))
        XCTAssertEqual(six.source, try SocketAddress(ipAddress: "2001:db8::9", port: 65535))
        XCTAssertEqual(six.destination?.port, 0)

        // UNKNOWN: anything up to the CRLF, and the socket's addresses stand.
        for unknown in ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"] {
            let parsed = try XCTUnwrap(header(parse(unknown)))
            XCTAssertNil(parsed.source)
            XCTAssertEqual(parsed.length, unknown.utf8.count)
        }
    }

    func testV1LinesThatBreakTheSpecificationAreInvalid() {
        let broken = [
            "PROXY TCP4 203.0.113.9 192.0.2.1 51234 443\n",  // LF without CR
            "PROXY TCP4 203.0.113.9 192.0.2.1 51234\r\n",  // a port missing
            "PROXY TCP4 203.0.113.9 192.0.2.1 51234 443 7\r\n",  // a field too many
            "PROXY TCP4  203.0.113.9 192.0.2.1 51234 443\r\n",  // two spaces
            "PROXY TCP4 2001:db8::9 192.0.2.1 51234 443\r\n",  // IPv6 under TCP4
            "PROXY TCP6 203.0.113.9 2001:db8::1 51234 443\r\n",  // IPv4 under TCP6
            "PROXY TCP4 203.0.113.09 192.0.2.1 51234 443\r\n",  // a leading zero in the address
            "PROXY TCP4 203.0.113.9 192.0.2.1 01234 443\r\n",  // a leading zero in the port
            "PROXY TCP4 203.0.113.9 192.0.2.1 512345 443\r\n",  // six digits
            "PROXY TCP4 203.0.113.9 192.0.2.1 65536 443\r\n",  // port out of range
            "PROXY TCP4 203.0.113.9 192.0.2.1 -1 443\r\n",
            "PROXY TCP4 host.example 192.0.2.1 51234 443\r\n",  // a name, not an address
            "PROXY TCP4 1.2.3.4\u{0}zz 192.0.2.1 51234 443\r\n",  // a NUL (inet_pton would stop at it)
            "PROXY TCP6 2001:db8::9%eth0 2001:db8::1 51234 443\r\n",  // a scope
            "PROXY UDP4 203.0.113.9 192.0.2.1 51234 443\r\n",
            "PROXY \r\n",
            "PROXY TCP4 " + String(repeating: "1", count: 100) + "\r\n",  // longer than 107 bytes
        ]
        for line in broken {
            XCTAssertTrue(isInvalid(parse(line)), "\(line.debugDescription) parsed as \(parse(line))")
        }
        // 107 bytes without a line end is invalid at once; fewer asks for more.
        XCTAssertTrue(isInvalid(parse("PROXY UNKNOWN " + String(repeating: "x", count: 93))))
        XCTAssertEqual(parse("PROXY UNKNOWN " + String(repeating: "x", count: 92)), .needMore)
        // The longest valid line is exactly 107 bytes.
        let longest = "PROXY UNKNOWN " + String(repeating: "x", count: 91) + "\r\n"
        XCTAssertEqual(longest.utf8.count, 107)
        XCTAssertNotNil(header(parse(longest)))
    }

    // MARK: version 2

    func testV2AddressesTLVsAndLocal() throws {
        let tlvs: [UInt8] = [0x02, 0x00, 0x03] + Array("a.b".utf8) + [0xE0, 0x00, 0x02, 0x61, 0x62] + [0x04, 0x00, 0x00]
        let bytes = Self.v2(Self.inet4Block + tlvs)
        let parsed = try XCTUnwrap(header(parse(bytes + [0x16, 0x03, 0x01])))
        XCTAssertEqual(parsed.version, .v2)
        XCTAssertEqual(parsed.source, try SocketAddress(ipAddress: "203.0.113.9", port: 51234))
        XCTAssertEqual(parsed.destination, try SocketAddress(ipAddress: "192.0.2.1", port: 443))
        XCTAssertEqual(parsed.tlvTypes, [0x02, 0xE0, 0x04], "unknown TLV types are skipped, not refused")
        XCTAssertEqual(parsed.length, bytes.count)

        var inet6 = Array(repeating: UInt8(0), count: 36)
        inet6[0] = 0x20; inet6[1] = 0x01; inet6[2] = 0x0D; inet6[3] = 0xB8; inet6[15] = 9
        inet6[32] = 0x01; inet6[33] = 0xBB; inet6[34] = 0x01; inet6[35] = 0xBB
        let six = try XCTUnwrap(header(parse(Self.v2(family: 0x21, inet6))))
        XCTAssertEqual(six.source, try SocketAddress(ipAddress: "2001:db8::9", port: 443))

        // LOCAL (a health check from the balancer), UNSPEC, UNIX and UDP: the socket's addresses stand. A LOCAL
        // block is discarded unread, whatever its family and length say.
        let local: [(UInt8, UInt8, [UInt8])] = [
            (0, 0x00, []), (0, 0x11, Self.inet4Block), (0, 0x11, []), (0, 0xFF, [0x02, 0x00, 0x09]), (1, 0x00, []),
            (1, 0x31, Array(repeating: 0, count: 216)), (1, 0x12, Self.inet4Block), (1, 0x22, Array(repeating: 0, count: 36)),
        ]
        for (command, family, body) in local {
            let bytes = Self.v2(command: command, family: family, body)
            let parsed = try XCTUnwrap(header(parse(bytes)), "command \(command) family \(family)")
            XCTAssertNil(parsed.source, "command \(command) family \(family)")
            XCTAssertEqual(parsed.length, bytes.count)
        }
    }

    func testV2HeadersThatBreakTheSpecificationAreInvalid() {
        var badVersion = Self.v2(Self.inet4Block)
        badVersion[12] = 0x11
        let broken: [(String, [UInt8])] = [
            ("version 1 nibble", badVersion),
            ("command 2", Self.v2(command: 2, Self.inet4Block)),
            ("family 4", Self.v2(family: 0x41, Self.inet4Block)),
            ("transport 3", Self.v2(family: 0x13, Self.inet4Block)),
            ("family without transport", Self.v2(family: 0x10, Self.inet4Block)),
            ("UNSPEC family with a transport", Self.v2(family: 0x01, Self.inet4Block)),
            ("UNIX family without transport", Self.v2(family: 0x30, Array(repeating: 0, count: 216))),
            ("length shorter than the address block", Self.v2(Array(Self.inet4Block.prefix(8)))),
            ("TLV header cut", Self.v2(Self.inet4Block + [0x02, 0x00])),
            ("TLV value past the length", Self.v2(Self.inet4Block + [0x02, 0x00, 0x09, 0x61])),
            ("CRC32C of 3 bytes", Self.v2(Self.inet4Block + [0x03, 0x00, 0x03, 0, 0, 0])),
            ("CRC32C wrong", Self.v2(Self.inet4Block + [0x03, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF])),
            ("longer than the gateway takes", Self.v2(Self.inet4Block + [0xE0, 0x10, 0x00] + Array(repeating: 0, count: 4096))),
        ]
        for (name, bytes) in broken {
            XCTAssertTrue(isInvalid(parse(bytes)), "\(name): \(parse(bytes))")
        }
    }

    func testV2CRC32CIsChecked() throws {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283, "the standard check value")
        var bytes = Self.v2(Self.inet4Block + [0x03, 0x00, 0x04, 0, 0, 0, 0])
        let crc = CRC32C.checksum(bytes)
        bytes.replaceSubrange(bytes.count - 4..<bytes.count, with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)])
        XCTAssertEqual(try XCTUnwrap(header(parse(bytes))).tlvTypes, [0x03])
        bytes[16] ^= 1  // the source address changed in transit
        XCTAssertTrue(isInvalid(parse(bytes)))
    }

    /// A header split over reads: every proper prefix asks for more, whatever the split.
    func testEveryPrefixOfAHeaderAsksForMore() {
        let headers = [Array("PROXY TCP4 203.0.113.9 192.0.2.1 51234 443\r\n".utf8), Self.v2(Self.inet4Block + [0xE0, 0x00, 0x01, 0x7A])]
        for bytes in headers {
            for cut in 0..<bytes.count {
                XCTAssertEqual(parse(Array(bytes[0..<cut])), .needMore, "\(cut) of \(bytes.count) bytes")
            }
            XCTAssertNotNil(header(parse(bytes)))
        }
    }

    func testBytesThatCannotStartAHeader() {
        // A TLS ClientHello, an HTTP request, and near misses of either signature.
        for start in [[0x16, 0x03, 0x01, 0x00], Array("GET / HTTP/1.1\r\n".utf8), Array("PROPFIND /".utf8), [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B]] as [[UInt8]] {
            XCTAssertEqual(parse(start), .notProxy, "\(start)")
        }
        XCTAssertEqual(parse(Array("PRO".utf8)), .needMore, "could still become PROXY")
    }

    // MARK: the policy

    func testThePolicyDecidesEveryOutcome() throws {
        let required = ProxyProtocolPolicy(mode: .required, trusted: [try AddressRange(parsing: "10.0.0.0/8")])
        let optional = ProxyProtocolPolicy(mode: .optional, trusted: required.trusted)
        let source = try SocketAddress(ipAddress: "203.0.113.9", port: 51234)
        let v1 = parse("PROXY TCP4 203.0.113.9 192.0.2.1 51234 443\r\n")
        let local = parse(Self.v2(command: 0, family: 0, []))

        guard case .proceed(let from, _, 44, .v1) = required.decide(v1, peerTrusted: true) else { return XCTFail("\(required.decide(v1, peerTrusted: true))") }
        XCTAssertEqual(from, source)
        XCTAssertEqual(required.decide(local, peerTrusted: true), .proceed(source: nil, destination: nil, consumed: 16, outcome: .local))
        XCTAssertEqual(required.decide(.needMore, peerTrusted: true), .needMore)
        func outcome(_ decision: ProxyProtocolPolicy.Decision) -> ListenerMetrics.ProxyProtocolOutcome? {
            switch decision {
            case .close(let outcome, _): return outcome
            case .proceed(_, _, _, let outcome): return outcome
            case .needMore: return nil
            }
        }
        XCTAssertEqual(outcome(optional.decide(v1, peerTrusted: false)), .untrusted, "a header only from the balancer")
        XCTAssertEqual(outcome(optional.decide(.invalid("x"), peerTrusted: false)), .untrusted)
        XCTAssertEqual(outcome(required.decide(.invalid("x"), peerTrusted: true)), .malformed)
        XCTAssertEqual(outcome(required.decide(.notProxy, peerTrusted: true)), .missing)
        XCTAssertEqual(optional.decide(.notProxy, peerTrusted: true), .proceed(source: nil, destination: nil, consumed: 0, outcome: .absent))
        XCTAssertEqual(optional.decide(.notProxy, peerTrusted: false), .proceed(source: nil, destination: nil, consumed: 0, outcome: .absent))
    }

    // MARK: trusted ranges

    func testAddressRanges() throws {
        let ten = try AddressRange(parsing: "10.0.0.0/8")
        XCTAssertTrue(ten.contains(try SocketAddress(ipAddress: "10.200.3.4", port: 1)))
        XCTAssertFalse(ten.contains(try SocketAddress(ipAddress: "11.0.0.1", port: 1)))
        XCTAssertTrue(ten.contains(try SocketAddress(ipAddress: "::ffff:10.1.2.3", port: 1)), "IPv4-mapped peers of a dual-stack socket")
        XCTAssertFalse(ten.contains(try SocketAddress(ipAddress: "::1", port: 1)))
        XCTAssertEqual(ten.description, "10.0.0.0/8")

        let one = try AddressRange(parsing: "192.0.2.7")
        XCTAssertTrue(one.contains(try SocketAddress(ipAddress: "192.0.2.7", port: 1)))
        XCTAssertFalse(one.contains(try SocketAddress(ipAddress: "192.0.2.8", port: 1)))
        let v6 = try AddressRange(parsing: "2001:db8::/32")
        XCTAssertTrue(v6.contains(try SocketAddress(ipAddress: "2001:db8:ffff::1", port: 1)))
        XCTAssertFalse(v6.contains(try SocketAddress(ipAddress: "2001:db9::1", port: 1)))
        XCTAssertTrue(try AddressRange(parsing: "0.0.0.0/0").contains(try SocketAddress(ipAddress: "198.51.100.1", port: 1)))
        let odd = try AddressRange(parsing: "192.0.2.128/25")
        XCTAssertTrue(odd.contains(try SocketAddress(ipAddress: "192.0.2.200", port: 1)))
        XCTAssertFalse(odd.contains(try SocketAddress(ipAddress: "192.0.2.127", port: 1)))

        for (text, message) in [
            ("10.0.0.1/8", "bits set past its /8 prefix (did you mean 10.0.0.0/8?)"), ("10.0.0.0/33", "from 0 to 32"),
            ("10.0.0.0/", "from 0 to 32"), ("10.0.0.0/+8", "from 0 to 32"), ("example.com/8", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"), ("2001:db8::/129", "from 0 to 128"),
        ] {
            XCTAssertThrowsError(try AddressRange(parsing: text), text) { error in
                XCTAssertTrue("\(error)".contains(message), "\(text): \(error)")
            }
        }
    }
}
