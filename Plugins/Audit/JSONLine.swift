import GatewayPluginKit

#if canImport(Glibc)
import Glibc
#endif

/// Builds one JSON object as UTF-8 bytes, fields in a fixed order, values escaped. A request line is built
/// in its thread's reused buffer (`ThreadScratch.line`) and copied once, into the writer's batch: no
/// allocation and no intermediate String per line in the steady state. It writes through a pointer: an
/// Array append checks uniqueness and capacity each time (~25 instructions, ~60 appends a line).
struct JSONLine: ~Copyable {
    private var base: UnsafeMutableRawPointer
    private var count = 0
    private var capacity: Int
    private let fields: AuditFieldSet
    /// The thread's scratch whose buffer this line borrowed and gives back when it ends; nil: its own buffer.
    private let lender: ThreadScratch?

    /// A run of fields without the object's start, for `appendRaw` into a line.
    init(fragmentWith fields: AuditFieldSet) {
        self.fields = fields
        capacity = 512
        base = .allocate(byteCount: capacity, alignment: 1)
        lender = nil
    }

    init(event: StaticString, fields: AuditFieldSet) {
        self.fields = fields
        let scratch = ThreadScratch.current
        if let buffer = scratch.line {
            scratch.line = nil
            base = buffer.baseAddress!
            capacity = buffer.count
            lender = scratch
        } else {
            // The thread's buffer is out (a line within a line: not done today): one of its own.
            capacity = 1024
            base = .allocate(byteCount: capacity, alignment: 1)
            lender = nil
        }
        append("{\"time\":\"")
        appendTimestamp(scratch)
        append("\",\"event\":\"")
        append(event)
        append(byte: 0x22)
    }

    deinit {
        if let lender {
            lender.line = UnsafeMutableRawBufferPointer(start: base, count: capacity)
        } else {
            base.deallocate()
        }
    }

    /// The bytes written so far (a fragment's, to keep).
    var fragment: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }

    @inline(__always)
    func wants(_ field: AuditField) -> Bool { fields.contains(field) }

    /// Room for `more` bytes after `count`.
    @inline(__always)
    private mutating func reserve(_ more: Int) {
        if count + more > capacity { grow(to: count + more) }
    }

    @inline(never)
    private mutating func grow(to needed: Int) {
        let newCapacity = Swift.max(capacity * 2, needed)
        let larger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 1)
        larger.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = larger
        capacity = newCapacity
    }

    private mutating func append(byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    private mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        reserve(bytes.count)
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { append(UnsafeRawBufferPointer($0)) }
    }

    mutating func appendRaw(_ fragment: [UInt8]) {
        fragment.withUnsafeBytes { append($0) }
    }

    /// `,"key":` and, for a string value, its opening quote: the field's key bytes, copied as they are.
    private mutating func key(_ field: AuditField, quote: Bool = false) {
        let key = field.key
        let length = key.utf8CodeUnitCount
        reserve(length + 1)
        (base + count).copyMemory(from: key.utf8Start, byteCount: length)
        count += length
        if quote {
            base.storeBytes(of: UInt8(ascii: "\""), toByteOffset: count, as: UInt8.self)
            count += 1
        }
    }

    /// `bytes` escaped for a JSON string: as they are when no byte needs escaping (the usual case, checked
    /// eight bytes at a time), else through `JSONText`.
    private mutating func appendEscaped(_ bytes: UnsafeRawBufferPointer) {
        if JSONText.needsNoEscaping(bytes) {
            append(bytes)
            return
        }
        var escaped: [UInt8] = []
        JSONText.appendEscaped(bytes, to: &escaped)
        escaped.withUnsafeBytes { append($0) }
    }

    mutating func add(_ field: AuditField, _ value: String?) {
        guard var value, wants(field) else { return }
        self.key(field, quote: true)
        value.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0)) }
        append(byte: 0x22)
    }

    /// A value the host lent for the duration of the hook.
    mutating func add(_ field: AuditField, _ value: gw_str?) {
        guard let value, wants(field) else { return }
        self.key(field, quote: true)
        appendEscaped(value.buffer)
        append(byte: 0x22)
    }

    mutating func add(_ field: AuditField, _ value: Int64?) {
        guard let value, wants(field) else { return }
        self.key(field)
        appendDecimal(value)
    }

    /// A string known to need no escaping (a fixed word of the log's vocabulary).
    mutating func addWord(_ field: AuditField, _ word: StaticString) {
        guard wants(field) else { return }
        self.key(field, quote: true)
        append(word)
        append(byte: 0x22)
    }

    /// One item of a list built item by item (`closeList` ends it): `"<prefix><value>"`.
    mutating func appendListItem(_ field: AuditField, prefix: StaticString, _ value: gw_str, first: Bool) {
        if first {
            self.key(field)
            append(byte: UInt8(ascii: "["))
        } else {
            append(byte: UInt8(ascii: ","))
        }
        append(byte: 0x22)
        append(prefix)
        appendEscaped(value.buffer)
        append(byte: 0x22)
    }

    mutating func closeList() { append(byte: UInt8(ascii: "]")) }

    mutating func addTrue(_ field: AuditField) {
        guard wants(field) else { return }
        self.key(field)
        append("true")
    }

    /// Microseconds as milliseconds with three decimals, e.g. 12407 -> 12.407.
    mutating func addMilliseconds(_ field: AuditField, microseconds: Int64) {
        guard wants(field) else { return }
        self.key(field)
        if microseconds < 0 { append(byte: UInt8(ascii: "-")) }
        let magnitude = microseconds.magnitude
        appendDecimal(Int64(magnitude / 1000))
        append(byte: UInt8(ascii: "."))
        appendDecimal(Int64(magnitude % 1000), width: 3)
    }

    /// Ends the object and hands the line to `writer` (one copy); the buffer goes back to the thread when the
    /// line ends.
    mutating func submit(to writer: AuditWriter) {
        append(byte: UInt8(ascii: "}"))
        writer.submit(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// `value` in decimal, zero-padded to `width` digits: written from its last digit back, two at a time.
    private mutating func appendDecimal(_ value: Int64, width: Int = 1) {
        reserve(21 + width)
        if value < 0 {
            base.storeBytes(of: UInt8(ascii: "-"), toByteOffset: count, as: UInt8.self)
            count += 1
        }
        var magnitude = value.magnitude
        var digits = 1
        var bound: UInt64 = 10
        while digits < 20, magnitude >= bound {
            digits += 1
            bound &*= 10
        }
        let start = base + count
        var at = start + Swift.max(digits, width)
        let pairs = UnsafeRawPointer(Self.digitPairs.utf8Start)
        while magnitude >= 100 {
            let pair = Int(magnitude % 100)
            magnitude /= 100
            at -= 2
            at.copyMemory(from: pairs + 2 * pair, byteCount: 2)
        }
        if magnitude >= 10 {
            at -= 2
            at.copyMemory(from: pairs + 2 * Int(magnitude), byteCount: 2)
        } else {
            at -= 1
            at.storeBytes(of: UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude), as: UInt8.self)
        }
        while at > start {
            at -= 1
            at.storeBytes(of: UInt8(ascii: "0"), as: UInt8.self)
        }
        count += Swift.max(digits, width)
    }

    /// "00", "01", ... "99": two digits per division.
    private static let digitPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Local time with milliseconds and the UTC offset, e.g. 2026-11-29T02:50:01.123+00:00. The part up to
    /// the seconds is formatted once per second (per thread); each line only adds the milliseconds.
    private mutating func appendTimestamp(_ scratch: ThreadScratch) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        if scratch.second != now.tv_sec {
            var seconds = now.tv_sec
            var parts = tm()
            localtime_r(&seconds, &parts)
            let offset = Int(parts.tm_gmtoff)
            let minutes = abs(offset) / 60
            func padded(_ value: Int, _ width: Int) -> String {
                let digits = String(value)
                return String(repeating: "0", count: Swift.max(0, width - digits.count)) + digits
            }
            let date = "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))"
            let time = "\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2))"
            let prefix = Array("\(date)T\(time).".utf8)
            let suffix = Array("\(offset < 0 ? "-" : "+")\(padded(minutes / 60, 2)):\(padded(minutes % 60, 2))".utf8)
            // 26 bytes; at most ~50 with an Int32 year and an offset far from any real one. Past the buffer (it
            // cannot be), written as it is and not kept.
            guard prefix.count + suffix.count <= scratch.stamp.count else {
                prefix.withUnsafeBytes { append($0) }
                appendDecimal(Int64(now.tv_nsec / 1_000_000), width: 3)
                suffix.withUnsafeBytes { append($0) }
                return
            }
            scratch.second = now.tv_sec
            scratch.stamp.copyBytes(from: prefix)
            UnsafeMutableRawBufferPointer(rebasing: scratch.stamp[prefix.count...]).copyBytes(from: suffix)
            scratch.prefixCount = prefix.count
            scratch.suffixCount = suffix.count
        }
        let stamp = UnsafeRawBufferPointer(scratch.stamp)
        append(UnsafeRawBufferPointer(rebasing: stamp[..<scratch.prefixCount]))
        appendDecimal(Int64(now.tv_nsec / 1_000_000), width: 3)
        append(UnsafeRawBufferPointer(rebasing: stamp[scratch.prefixCount..<(scratch.prefixCount + scratch.suffixCount)]))
    }
}
