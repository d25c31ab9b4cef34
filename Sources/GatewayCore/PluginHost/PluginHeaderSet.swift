import PluginAPI

/// A plugin's header set (ABI 1.5 `header_set_create`): headers checked and laid out once as the lines they are
/// sent as, and the names the plugin owns, whose every spelling a request loses before the set's headers go
/// in. Immutable, so shared by every event loop; the plugin holds one retain (`header_set_release` drops it)
/// and a request that took the lines holds their bytes, not the set.
package final class PluginHeaderSet: Sendable {
    /// The headers, as `name: value CRLF` lines (values repaired to UTF-8 as `add_headers` does).
    package let lines: HeaderBlock
    /// A line's name is hop-by-hop: the host removes such headers again before forwarding.
    package let addsHopByHop: Bool
    /// The owned names, lowercase with `_` as `-`.
    private let owned: [[UInt8]]
    /// Bit n set: some owned name has n bytes (bit 63: one has 63 or more). Most request headers differ in
    /// length from every owned name and are passed over with one test.
    private let ownedLengths: UInt64

    package enum Refusal: Error, Equatable {
        /// A NULL view with a nonzero length (GW_ERR_INVALID_ARGUMENT).
        case nullView
        /// A name that is not a token, a value with NUL, CR or LF, an owned name that is not a token
        /// (GW_ERR_INVALID_HEADER).
        case invalidHeader
    }

    /// Checks and copies the plugin's headers and owned names (the views need only last for the call).
    package init(headers: UnsafeBufferPointer<gw_header>, owned ownedNames: UnsafeBufferPointer<gw_str>) throws(Refusal) {
        var total = 0
        for header in headers {
            switch HeaderValidation.check(header) {
            case GW_OK: total += header.name.len + header.value.len + 4
            case GW_ERR_INVALID_ARGUMENT: throw .nullView
            default: throw .invalidHeader
            }
        }
        var owned: [[UInt8]] = []
        var lengths: UInt64 = 0
        for name in ownedNames {
            guard name.ptr != nil || name.len == 0 else { throw .nullView }
            guard HeaderValidation.isValidName(name.buffer) else { throw .invalidHeader }
            owned.append(name.buffer.map(Self.folded))
            lengths |= Self.lengthBit(name.len)
        }
        var lines = HeaderBlock(capacity: total)
        var hopByHop = false
        for header in headers {
            lines.append(name: header.name.buffer, value: header.value.buffer)
            if HTTP1ConnectionOptions.isHopByHop(header.name.buffer) { hopByHop = true }
        }
        self.lines = lines
        self.owned = owned
        ownedLengths = lengths
        addsHopByHop = hopByHop
    }

    /// Whether the set owns any name (a set may only add).
    package var ownsNames: Bool { ownedLengths != 0 }

    /// Whether `name` is an owned name in any case, `_` and `-` alike.
    @inline(__always)
    package func owns(_ name: UnsafeRawBufferPointer) -> Bool {
        guard ownedLengths & Self.lengthBit(name.count) != 0 else { return false }
        return ownsSlowly(name)
    }

    private func ownsSlowly(_ name: UnsafeRawBufferPointer) -> Bool {
        candidates: for candidate in owned where candidate.count == name.count {
            for i in 0..<name.count where Self.folded(name[i]) != candidate[i] { continue candidates }
            return true
        }
        return false
    }

    /// Whether any field of `block` has an owned name.
    package func ownsAny(of block: HeaderBlock) -> Bool {
        guard ownsNames, !block.isEmpty else { return false }
        var found = false
        block.forEach { name, _ in
            found = owns(name)
            return !found
        }
        return found
    }

    @inline(__always)
    private static func lengthBit(_ length: Int) -> UInt64 { 1 << UInt64(Swift.min(length, 63)) }

    /// A name byte lowercased, with `_` as `-`.
    @inline(__always)
    private static func folded(_ byte: UInt8) -> UInt8 {
        if byte >= 65 && byte <= 90 { return byte | 0x20 }
        return byte == 95 ? 45 : byte
    }
}
