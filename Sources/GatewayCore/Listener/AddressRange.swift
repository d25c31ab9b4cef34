#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// An IP address range in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address (`192.0.2.7`, a /32 or
/// /128). An IPv4-mapped IPv6 peer (`::ffff:10.1.2.3`, what a dual-stack socket reports) is matched as the IPv4
/// address it maps. By hand: NIO's `SocketAddress` parses addresses but has no ranges.
package struct AddressRange: Equatable, Sendable, CustomStringConvertible {
    /// 4 or 16 bytes, the bits past the prefix zeroed.
    private let network: [UInt8]
    private let prefixLength: Int

    /// Parses `text`; the error says what is wrong with it (for a configuration issue).
    package init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.bytes(of: String(parts[0])) else {
            throw ParseError("'\(text)' is not an IPv4 or IPv6 address or CIDR range (e.g. 10.0.0.0/8, 2001:db8::/32)")
        }
        let maximum = bytes.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), (0...maximum).contains(value) else {
                throw ParseError("'\(text)': the prefix length must be a number from 0 to \(maximum)")
            }
            length = value
        }
        let masked = Self.mask(bytes, length)
        guard masked == bytes else {
            throw ParseError("'\(text)' has bits set past its /\(length) prefix (did you mean \(Self.text(of: masked))/\(length)?)")
        }
        network = bytes
        prefixLength = length
    }

    package struct ParseError: Error, Equatable, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    package func contains(_ address: SocketAddress) -> Bool {
        guard var bytes = Self.bytes(of: address) else { return false }
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address.
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        return Self.mask(bytes, prefixLength) == network
    }

    package var description: String { "\(Self.text(of: network))/\(prefixLength)" }

    private static func mask(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = max(0, min(8, length - index * 8))
            return bits == 8 ? byte : byte & ~(0xFF >> bits)
        }
    }

    /// The bytes of an IPv4 or IPv6 address literal (4 or 16), or nil.
    package static func bytes(of text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    private static func bytes(of address: SocketAddress) -> [UInt8]? {
        switch address {
        case .v4(let v4):
            var raw = v4.address.sin_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        case .v6(let v6):
            var raw = v6.address.sin6_addr
            return withUnsafeBytes(of: &raw) { Array($0) }
        default:
            return nil
        }
    }

    private static func text(of bytes: [UInt8]) -> String {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        bytes.withUnsafeBytes { raw in
            _ = inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, raw.baseAddress, &out, socklen_t(out.count))
        }
        return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
