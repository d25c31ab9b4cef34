#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), which a load balancer in TCP mode
/// sends before the client's own bytes to say whom the connection is really from. Parsed from the first bytes
/// of a connection, which may arrive over several reads.
///
/// Written by hand: the Swift server ecosystem has no PROXY protocol parser (SwiftNIO has none; HAProxy's own
/// is C). Strict: version 1 as the specification writes it (one line of at most 107 bytes, decimal ports
/// without leading zeros, addresses of the named family); version 2 with its lengths checked against the
/// address block and every TLV (unknown TLV types are skipped, as the specification asks; a CRC32C TLV is
/// checked), the family byte one of the listed combinations, and a LOCAL command's block discarded unread.
package struct ProxyProtocolHeader: Equatable, Sendable {
    package enum Version: Int, Sendable { case v1 = 1, v2 = 2 }

    package var version: Version
    /// The client's address and the address it connected to, as the balancer saw them. Nil for a v2 LOCAL
    /// command (the balancer's own connection, e.g. a health check), a v1 `UNKNOWN` line, v2 families without
    /// IP addresses (UNSPEC, UNIX) and v2 UDP: then the socket's own addresses stand.
    package var source: SocketAddress?
    package var destination: SocketAddress?
    /// The types of the v2 TLVs, in order (empty for v1).
    package var tlvTypes: [UInt8]
    /// How many bytes the header took; the client's own bytes follow.
    package var length: Int

    package enum Parse: Equatable, Sendable {
        /// The bytes so far are the start of a header (or of its signature): read more.
        case needMore
        case header(ProxyProtocolHeader)
        /// The bytes cannot begin a PROXY header (no signature): the connection starts with the client's own
        /// bytes.
        case notProxy
        /// A header that breaks the specification, and why.
        case invalid(String)
    }

    /// The v2 signature, the 12 bytes that start every version 2 header.
    package static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    private static let v1Signature = Array("PROXY ".utf8)
    /// A v1 line, CRLF included, is at most 107 bytes.
    package static let v1MaxLength = 107
    /// The largest v2 header accepted (the 16 fixed bytes and what its length field announces): AWS, GCP and
    /// HAProxy send well under 1 KiB; the field itself allows 64 KiB, which the gateway would have to buffer.
    package static let v2MaxLength = 16 + 4096

    package static func parse(_ bytes: UnsafeRawBufferPointer) -> Parse {
        if bytes.isEmpty { return .needMore }
        if bytes[0] == v1Signature[0] {
            let prefix = min(bytes.count, v1Signature.count)
            guard bytes.prefix(prefix).elementsEqual(v1Signature.prefix(prefix)) else { return .notProxy }
            return prefix < v1Signature.count ? .needMore : parseV1(bytes)
        }
        if bytes[0] == v2Signature[0] {
            let prefix = min(bytes.count, v2Signature.count)
            guard bytes.prefix(prefix).elementsEqual(v2Signature.prefix(prefix)) else { return .notProxy }
            return prefix < v2Signature.count ? .needMore : parseV2(bytes)
        }
        return .notProxy
    }

    // MARK: version 1

    private static func parseV1(_ bytes: UnsafeRawBufferPointer) -> Parse {
        // The line ends at the first CRLF, within 107 bytes.
        var end: Int?
        var index = v1Signature.count
        while index < min(bytes.count, v1MaxLength) {
            if bytes[index] == 0x0A {
                guard bytes[index - 1] == 0x0D else { return .invalid("v1 line ends with LF without CR") }
                end = index + 1
                break
            }
            index += 1
        }
        guard let end else {
            return bytes.count >= v1MaxLength ? .invalid("v1 line longer than \(v1MaxLength) bytes") : .needMore
        }
        let fields = bytes[v1Signature.count..<(end - 2)].split(separator: 0x20, omittingEmptySubsequences: false)
        guard let family = fields.first else { return .invalid("v1 line without a protocol") }
        if family.elementsEqual("UNKNOWN".utf8) {
            // "UNKNOWN" may be followed by anything up to the CRLF; the receiver ignores it.
            return .header(.init(version: .v1, source: nil, destination: nil, tlvTypes: [], length: end))
        }
        let inet6: Bool
        if family.elementsEqual("TCP4".utf8) {
            inet6 = false
        } else if family.elementsEqual("TCP6".utf8) {
            inet6 = true
        } else {
            return .invalid("v1 protocol is not TCP4, TCP6 or UNKNOWN")
        }
        guard fields.count == 5 else { return .invalid("v1 line has \(fields.count) fields, not 5 (protocol, addresses, ports)") }
        guard let sourcePort = port(fields[3]), let destinationPort = port(fields[4]) else {
            return .invalid("v1 port is not a decimal number from 0 to 65535 without leading zeros")
        }
        guard let source = address(fields[1], inet6: inet6, port: sourcePort),
            let destination = address(fields[2], inet6: inet6, port: destinationPort)
        else {
            return .invalid("v1 address is not an \(inet6 ? "IPv6" : "IPv4") address")
        }
        return .header(.init(version: .v1, source: source, destination: destination, tlvTypes: [], length: end))
    }

    private static func port(_ digits: Slice<UnsafeRawBufferPointer>) -> Int? {
        guard (1...5).contains(digits.count), digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        guard digits.count == 1 || digits.first != 0x30 else { return nil }
        let value = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        return value <= 65535 ? value : nil
    }

    /// A textual address of one family (inet_pton is strict: dotted quads without leading zeros).
    private static func address(_ text: Slice<UnsafeRawBufferPointer>, inet6: Bool, port: Int) -> SocketAddress? {
        // Only what an address is written with (inet_pton would stop at a NUL and take what came before it).
        let allowed = { (byte: UInt8) in
            (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: ".") || (inet6 && (byte == UInt8(ascii: ":") || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x66)))
        }
        guard !text.isEmpty, text.count <= 45, text.allSatisfy(allowed) else { return nil }
        var cString = Array(text)
        cString.append(0)
        return cString.withUnsafeBufferPointer { pointer -> SocketAddress? in
            let characters = UnsafeRawPointer(pointer.baseAddress!).assumingMemoryBound(to: CChar.self)
            if inet6 {
                var address = sockaddr_in6()
                guard inet_pton(AF_INET6, characters, &address.sin6_addr) == 1 else { return nil }
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = in_port_t(port).bigEndian
                return SocketAddress(address)
            }
            var address = sockaddr_in()
            guard inet_pton(AF_INET, characters, &address.sin_addr) == 1 else { return nil }
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(port).bigEndian
            return SocketAddress(address)
        }
    }

    // MARK: version 2

    private static func parseV2(_ bytes: UnsafeRawBufferPointer) -> Parse {
        guard bytes.count >= 16 else { return .needMore }
        let versionCommand = bytes[12], familyTransport = bytes[13]
        guard versionCommand >> 4 == 2 else { return .invalid("v2 version nibble is \(versionCommand >> 4), not 2") }
        let command = versionCommand & 0x0F
        guard command <= 1 else { return .invalid("v2 command \(command) is neither LOCAL (0) nor PROXY (1)") }
        let announced = Int(bytes[14]) << 8 | Int(bytes[15])
        let length = 16 + announced
        guard length <= v2MaxLength else { return .invalid("v2 header of \(length) bytes (the gateway takes up to \(v2MaxLength))") }
        guard bytes.count >= length else { return .needMore }

        // LOCAL: the balancer's own connection (a health check). The receiver uses the socket's addresses and
        // discards the rest of the block, family included, unread.
        guard command == 1 else { return .header(.init(version: .v2, source: nil, destination: nil, tlvTypes: [], length: length)) }
        // The combinations the specification lists (UNSPEC, and TCP or UDP over IPv4, IPv6 or UNIX); any other
        // value must be rejected.
        let family = familyTransport >> 4, transport = familyTransport & 0x0F
        guard familyTransport == 0x00 || ((1...3).contains(family) && (1...2).contains(transport)) else {
            return .invalid("v2 address family and transport byte 0x\(String(familyTransport, radix: 16)) is not one the specification defines")
        }
        let addressLength = [0, 12, 36, 216][Int(family)]
        guard announced >= addressLength else {
            return .invalid("v2 length \(announced) is shorter than the \(addressLength)-byte address block")
        }
        var tlvTypes: [UInt8] = []
        var crc: (offset: Int, value: UInt32)?
        var at = 16 + addressLength
        while at < length {
            guard at + 3 <= length else { return .invalid("v2 TLV header runs past the header's length") }
            let type = bytes[at], valueLength = Int(bytes[at + 1]) << 8 | Int(bytes[at + 2])
            guard at + 3 + valueLength <= length else { return .invalid("v2 TLV of type 0x\(String(type, radix: 16)) runs past the header's length") }
            if type == 0x03 {
                guard valueLength == 4, crc == nil else { return .invalid("v2 CRC32C TLV is not one 4-byte value") }
                crc = (at + 3, UInt32(bytes[at + 3]) << 24 | UInt32(bytes[at + 4]) << 16 | UInt32(bytes[at + 5]) << 8 | UInt32(bytes[at + 6]))
            }
            tlvTypes.append(type)
            at += 3 + valueLength
        }
        if let crc {
            // The checksum is over the whole header with the checksum's own 4 bytes as zeros.
            var header = Array(bytes[0..<length])
            header.replaceSubrange(crc.offset..<crc.offset + 4, with: [0, 0, 0, 0])
            guard CRC32C.checksum(header) == crc.value else { return .invalid("v2 CRC32C does not match the header") }
        }

        // UNSPEC and UNIX carry no IP address, and UDP is not what this connection is: the socket's addresses
        // stand (the specification lets a receiver accept such a connection with its real endpoints).
        guard family == 1 || family == 2, transport == 1 else {
            return .header(.init(version: .v2, source: nil, destination: nil, tlvTypes: tlvTypes, length: length))
        }
        let (source, destination) = family == 1 ? inet4(bytes) : inet6(bytes)
        return .header(.init(version: .v2, source: source, destination: destination, tlvTypes: tlvTypes, length: length))
    }

    private static func port(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> in_port_t {
        in_port_t(bytes[offset]) << 8 | in_port_t(bytes[offset + 1])
    }

    private static func inet4(_ bytes: UnsafeRawBufferPointer) -> (SocketAddress, SocketAddress) {
        func make(_ offset: Int, _ portOffset: Int) -> SocketAddress {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 4])) }
            address.sin_port = port(bytes, at: portOffset).bigEndian
            return SocketAddress(address)
        }
        return (make(16, 24), make(20, 26))
    }

    private static func inet6(_ bytes: UnsafeRawBufferPointer) -> (SocketAddress, SocketAddress) {
        func make(_ offset: Int, _ portOffset: Int) -> SocketAddress {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + 16])) }
            address.sin6_port = port(bytes, at: portOffset).bigEndian
            return SocketAddress(address)
        }
        return (make(16, 48), make(32, 50))
    }
}

/// CRC-32C (Castagnoli), as the PROXY protocol v2 CRC32C TLV carries it: reflected polynomial 0x82F63B78,
/// initial value and final XOR 0xFFFFFFFF. By hand: swift-crypto has no CRC.
package enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
        return value
    }

    package static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
