/// The two DNS messages backend discovery needs (RFC 1035, RFC 3596, RFC 6891): an A or AAAA query for one
/// name, and the addresses of its answer, read from bytes a DNS server (or anyone who can send to the gateway's
/// query port) sent. Nothing in the answer is trusted: every length, count and compression pointer is checked,
/// and only records of the asked type owned by the asked name, or by a name its CNAME chain leads to, count.
package enum DNSMessage {
    package enum RecordType: UInt16, Sendable {
        case a = 1
        case aaaa = 28
        case cname = 5
    }

    /// What an answer gave: the addresses (as text: `192.0.2.1`, `2001:db8::1`) and the smallest TTL of the
    /// records that led to them (nil when there were none).
    package struct Answer: Equatable, Sendable {
        package var addresses: [String]
        package var ttl: UInt32?

        package init(addresses: [String], ttl: UInt32?) {
            self.addresses = addresses
            self.ttl = ttl
        }
    }

    package enum Failure: Error, Equatable, CustomStringConvertible {
        /// The bytes are not a DNS response to this query; the reason says where they went wrong.
        case malformed(String)
        /// The server set TC: the answer did not fit in a UDP datagram.
        case truncated
        /// NXDOMAIN: the name does not exist.
        case nameNotFound
        /// Any other non-zero RCODE (SERVFAIL, REFUSED, ...).
        case serverError(rcode: UInt8)

        package var description: String {
            switch self {
            case .malformed(let why): return "malformed DNS response: \(why)"
            case .truncated: return "DNS response truncated (TC set; answers over TCP are not supported)"
            case .nameNotFound: return "no such name (NXDOMAIN)"
            case .serverError(let rcode): return "DNS server error (RCODE \(rcode)\(rcode == 2 ? ", SERVFAIL" : rcode == 5 ? ", REFUSED" : ""))"
            }
        }
    }

    /// The UDP payload size advertised with EDNS(0): the DNS flag day's value, which avoids fragmentation.
    package static let udpPayloadSize: UInt16 = 1232
    /// CNAME links followed at most (resolvers return the whole chain; a longer one is refused).
    package static let maxChain = 8

    /// A recursive query (RD) for `name`'s `type` records, with an EDNS(0) OPT record; nil when `name` cannot
    /// be written as a DNS name (a label empty or over 63 bytes, the whole over 253).
    package static func query(id: UInt16, name: String, type: RecordType) -> [UInt8]? {
        guard let encoded = encodeName(name) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12 + encoded.count + 4 + 11)
        bytes.append(contentsOf: [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00])  // RD
        bytes.append(contentsOf: [0, 1, 0, 0, 0, 0, 0, 1])  // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1
        bytes.append(contentsOf: encoded)
        bytes.append(contentsOf: [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1])  // class IN
        // OPT: root name, type 41, class = payload size, TTL 0 (extended RCODE, version, flags), no data.
        bytes.append(contentsOf: [0, 0, 41, UInt8(udpPayloadSize >> 8), UInt8(udpPayloadSize & 0xFF), 0, 0, 0, 0, 0, 0])
        return bytes
    }

    /// The name in wire form (length-prefixed labels, then the root), or nil when it is not a valid name.
    package static func encodeName(_ name: String) -> [UInt8]? {
        var text = Substring(name)
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty, text.utf8.count <= 253 else { return nil }
        var out: [UInt8] = []
        for label in text.split(separator: ".", omittingEmptySubsequences: false) {
            let bytes = Array(label.utf8)
            guard (1...63).contains(bytes.count) else { return nil }
            out.append(UInt8(bytes.count))
            out.append(contentsOf: bytes)
        }
        out.append(0)
        return out
    }

    /// The addresses that `response` gives for the query `(id, name, type)`.
    package static func addresses(in response: [UInt8], id: UInt16, name: String, type: RecordType) throws(Failure) -> Answer {
        guard let asked = encodeName(name).map(lowercased) else { throw .malformed("the asked name is not a DNS name") }
        var reader = Reader(bytes: response)
        guard response.count >= 12 else { throw .malformed("shorter than its 12-byte header") }
        let responseID = try reader.u16()
        let flags = try reader.u16()
        let questions = try reader.u16()
        let answers = try reader.u16()
        _ = try reader.u16()  // authority records: not read
        _ = try reader.u16()  // additional records: not read
        guard responseID == id else { throw .malformed("ID \(responseID) answers no query of ours (\(id))") }
        guard flags & 0x8000 != 0 else { throw .malformed("QR is 0: a query, not a response") }
        guard (flags >> 11) & 0xF == 0 else { throw .malformed("opcode \((flags >> 11) & 0xF), not QUERY") }
        if flags & 0x0200 != 0 { throw .truncated }
        let rcode = UInt8(flags & 0xF)
        if rcode == 3 { throw .nameNotFound }
        if rcode != 0 { throw .serverError(rcode: rcode) }
        guard questions == 1 else { throw .malformed("\(questions) questions, expected the 1 asked") }
        let questionName = try reader.name()
        let questionType = try reader.u16()
        let questionClass = try reader.u16()
        guard questionName == asked, questionType == type.rawValue, questionClass == 1 else {
            throw .malformed("the question is not the one asked")
        }

        // The answer section, whole, before any of it is believed.
        var records: [(owner: [UInt8], type: UInt16, ttl: UInt32, data: Range<Int>)] = []
        records.reserveCapacity(min(Int(answers), response.count / 11))  // a record takes 11 bytes at least
        for _ in 0..<answers {
            let owner = try reader.name()
            let recordType = try reader.u16()
            let recordClass = try reader.u16()
            let ttl = try reader.u32()
            let length = Int(try reader.u16())
            let data = try reader.skip(length)
            guard recordClass == 1 else { continue }
            records.append((owner, recordType, ttl, data))
        }

        // Follow the CNAME chain from the asked name; the addresses belong to its last name.
        var target = asked
        var ttl: UInt32?
        var seen: [[UInt8]] = [asked]
        while let alias = records.first(where: { $0.type == RecordType.cname.rawValue && $0.owner == target }) {
            guard seen.count <= maxChain else { throw .malformed("CNAME chain longer than \(maxChain)") }
            var data = Reader(bytes: response, offset: alias.data.lowerBound)
            let next = try data.name()
            guard data.offset == alias.data.upperBound else { throw .malformed("CNAME data longer than its name") }
            guard !seen.contains(next) else { throw .malformed("CNAME loop") }
            seen.append(next)
            ttl = min(ttl ?? alias.ttl, alias.ttl)
            target = next
        }
        var addresses: [String] = []
        let size = type == .a ? 4 : 16
        for record in records where record.type == type.rawValue && record.owner == target {
            guard record.data.count == size else {
                throw .malformed("\(type == .a ? "A" : "AAAA") record of \(record.data.count) bytes, expected \(size)")
            }
            let text = type == .a ? ipv4Text(response[record.data]) : ipv6Text(response[record.data])
            if !addresses.contains(text) { addresses.append(text) }
            ttl = min(ttl ?? record.ttl, record.ttl)
        }
        return Answer(addresses: addresses, ttl: addresses.isEmpty ? nil : ttl)
    }

    private static func lowercased(_ name: [UInt8]) -> [UInt8] {
        name.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }

    package static func ipv4Text(_ bytes: ArraySlice<UInt8>) -> String {
        bytes.map { String($0) }.joined(separator: ".")
    }

    /// RFC 5952 text: lowercase hex, the longest run (of two or more) of zero groups as `::`.
    package static func ipv6Text(_ bytes: ArraySlice<UInt8>) -> String {
        let start = bytes.startIndex
        let groups = (0..<8).map { UInt16(bytes[start + 2 * $0]) << 8 | UInt16(bytes[start + 2 * $0 + 1]) }
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8, groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength, i - runStart >= 2 { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        var text = ""
        var i = 0
        while i < 8 {
            if i == bestStart {
                text += "::"
                i += bestLength
                continue
            }
            if !text.isEmpty, !text.hasSuffix(":") { text += ":" }
            text += String(groups[i], radix: 16)
            i += 1
        }
        return text
    }

    /// Reads big-endian fields and names from a message, every read bounds-checked.
    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func u16() throws(Failure) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw .malformed("ends inside a field at byte \(offset)") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(Failure) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        mutating func skip(_ count: Int) throws(Failure) -> Range<Int> {
            guard offset + count <= bytes.count else { throw .malformed("a record's data runs past the end") }
            defer { offset += count }
            return offset..<(offset + count)
        }

        /// A name in wire form (lowercased, ending with the root), following compression pointers. Each pointer
        /// must point before itself, so pointers alone cannot loop; labels read after a jump can lead back to
        /// a pointer already followed, and such a loop ends at the 255-byte limit on the name.
        mutating func name() throws(Failure) -> [UInt8] {
            var out: [UInt8] = []
            var position = offset
            var jumped = false
            while true {
                guard position < bytes.count else { throw .malformed("a name runs past the end") }
                let length = bytes[position]
                switch length & 0xC0 {
                case 0x00:
                    if length == 0 {
                        out.append(0)
                        if !jumped { offset = position + 1 }
                        return out
                    }
                    let end = position + 1 + Int(length)
                    guard end <= bytes.count else { throw .malformed("a label runs past the end") }
                    guard out.count + 1 + Int(length) + 1 <= 255 else { throw .malformed("a name longer than 255 bytes") }
                    out.append(length)
                    for byte in bytes[(position + 1)..<end] { out.append((0x41...0x5A).contains(byte) ? byte | 0x20 : byte) }
                    position = end
                case 0xC0:
                    guard position + 1 < bytes.count else { throw .malformed("a compression pointer runs past the end") }
                    let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < position else { throw .malformed("a compression pointer that does not point backwards") }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    position = target
                default:
                    throw .malformed("label type 0x\(String(length & 0xC0, radix: 16)) (only plain labels and pointers exist)")
                }
            }
        }
    }
}
