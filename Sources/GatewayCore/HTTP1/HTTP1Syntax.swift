/// The pieces of RFC 9110/9112 syntax both HTTP/1 parsers check, on raw bytes.
package enum HTTP1Syntax {
    /// A field line from `from` to its CR, found on the way (no scan for the line's end first): a token name, a
    /// colon, the value without the optional whitespace around it, and where the line ends. Nil if the name is
    /// empty or not a token, or the value holds a control byte other than HTAB (obs-text, bytes 0x80 to 0xFF,
    /// is allowed as RFC 9110 5.5 allows it). The line must end with CRLF and hold no other CR or LF: every CR
    /// of a head precedes an LF and every LF follows a CR (`HTTP1Parser.findHeadEnd`; a trailer line is cut at
    /// its first CRLF). Neither is a token byte nor allowed in a value, so the name stops at its colon or fails,
    /// and the value scan (eight bytes at a time to the next control byte or DEL) stops at the CR or fails.
    /// `ascii`: the value has no byte above 0x7F (found on the same scan).
    @inline(__always)
    package static func fieldLine(_ raw: UnsafeRawBufferPointer, from: Int) -> (colon: Int, valueStart: Int, valueEnd: Int, lineEnd: Int, ascii: Bool)? {
        var i = from
        let count = raw.count
        // The name: eight bytes at a time while they are letters, digits and `-` (tokens all), then byte by byte.
        while i + 8 <= count, HeaderValidation.isCommonNameWord(raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
        while raw[i] != 58 {
            guard isTokenByte(raw[i]) else { return nil }
            i += 1
        }
        guard i > from else { return nil }
        let colon = i
        i += 1
        while raw[i] == 32 || raw[i] == 9 { i += 1 }
        let valueStart = i
        // Every value byte scanned, OR-ed together: bit 7 of a byte is set if one was above 0x7F.
        var high: UInt64 = 0
        while true {
            if i + 8 <= count {
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let found = controlOrDelete(word)
                guard found != 0 else {
                    high |= word
                    i += 8
                    continue
                }
                // The bytes before the first control byte (the others are looked at one by one below).
                let before = found.trailingZeroBitCount / 8
                high |= before == 0 ? 0 : word & (UInt64.max >> UInt64(64 - 8 * before))
                i += before
            }
            let byte = raw[i]
            if byte == 13 { break }
            guard byte >= 32 || byte == 9, byte != 127 else { return nil }
            high |= UInt64(byte)
            i += 1
        }
        var valueEnd = i
        while valueEnd > valueStart, raw[valueEnd - 1] == 32 || raw[valueEnd - 1] == 9 { valueEnd -= 1 }
        return (colon, valueStart, valueEnd, i, high & 0x8080_8080_8080_8080 == 0)
    }

    /// Bit 7 of each byte of the result is set where that byte of `word` is 0 (exact, no false positives).
    @inline(__always)
    static func zeroBytes(_ word: UInt64) -> UInt64 {
        ~(((word & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | word | 0x7F7F_7F7F_7F7F_7F7F)
    }

    /// Bit 7 of each byte of the result is set where that byte of `word` is below 0x20 or is 0x7F.
    @inline(__always)
    static func controlOrDelete(_ word: UInt64) -> UInt64 {
        let atLeastSpace = ((word & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x6060_6060_6060_6060) | word
        return (~atLeastSpace & 0x8080_8080_8080_8080) | zeroBytes(word ^ 0x7F7F_7F7F_7F7F_7F7F)
    }

    /// The field lines of a head from `start` up to its blank line at `end - 2` (every line ended by CRLF): each
    /// checked (`fieldLine`, no obs-fold, at most `maxFields`), the framing fields collected, the rest kept as
    /// the bytes they are forwarded as: one buffer, the head's size (more only for invalid UTF-8, which is
    /// repaired). Lines already written as `HeaderBlock` writes them (`name: value CRLF`, one space, ASCII) are
    /// copied as they are, a run of consecutive ones at once; the others field by field.
    /// `dropHopByHop`: hop-by-hop fields (`HTTP1ConnectionOptions.isHopByHop`) are checked and read but not kept;
    /// the names the Connection fields list are in the framing's `connection`.
    static func fieldBlock(
        _ raw: UnsafeRawBufferPointer, from start: Int, end: Int, maxFields: Int, dropHopByHop: Bool = false
    ) -> Result<(HeaderBlock, FramingFields), HTTP1ParseError> {
        var fields = HeaderBlock(capacity: end - 2 - start)
        var run = (start: 0, end: 0, count: 0)
        let scanned = scanFields(raw, from: start, end: end, maxFields: maxFields, dropHopByHop: dropHopByHop) { name, value, ascii, lineStart, lineEnd in
            // One byte besides the value after the colon, and it is a space: the (trimmed) value cannot start on
            // it, so the line is `name: value`.
            let canonical = lineEnd - lineStart == name.count + 2 + value.count && raw[lineStart + name.count + 1] == 32
            if canonical, ascii {
                if run.end != lineStart {
                    if run.count > 0 { fields.append(lines: UnsafeRawBufferPointer(rebasing: raw[run.start..<run.end]), count: run.count) }
                    run = (lineStart, lineStart, 0)
                }
                run.end = lineEnd + 2
                run.count += 1
            } else {
                if run.count > 0 { fields.append(lines: UnsafeRawBufferPointer(rebasing: raw[run.start..<run.end]), count: run.count) }
                run = (0, 0, 0)
                fields.append(name: name, value: value)
            }
        }
        switch scanned {
        case .success(let framing):
            if run.count > 0 { fields.append(lines: UnsafeRawBufferPointer(rebasing: raw[run.start..<run.end]), count: run.count) }
            return .success((fields, framing))
        case .failure(let error):
            return .failure(error)
        }
    }

    /// The field lines checked as `fieldBlock` checks them, handing each kept field's name, value, whether the
    /// value is ASCII (views of `raw`) and its line (`raw[lineStart..<lineEnd]`,
    /// without the CRLF) to `keep` instead of making Strings.
    @inline(__always)
    static func scanFields(
        _ raw: UnsafeRawBufferPointer, from start: Int, end: Int, maxFields: Int, dropHopByHop: Bool,
        keep: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ ascii: Bool, _ lineStart: Int, _ lineEnd: Int) -> Void
    ) -> Result<FramingFields, HTTP1ParseError> {
        var framing = FramingFields()
        var i = start
        var count = 0
        while i < end - 2 {
            guard raw[i] != 32 && raw[i] != 9 else { return .failure(.init(.obsFold)) }
            guard let field = fieldLine(raw, from: i) else {
                var lineEnd = i
                while raw[lineEnd] != 13 { lineEnd += 1 }
                return .failure(.init(fieldError(raw, from: i, to: lineEnd)))
            }
            let lineEnd = field.lineEnd
            guard count < maxFields else { return .failure(.init(.tooManyFields)) }
            count += 1
            let name = UnsafeRawBufferPointer(rebasing: raw[i..<field.colon])
            let value = UnsafeRawBufferPointer(rebasing: raw[field.valueStart..<field.valueEnd])
            if let error = framing.take(name: name, value: value, valueEndsLine: field.valueEnd == lineEnd) { return .failure(.init(error)) }
            let lineStart = i
            i = lineEnd + 2
            if dropHopByHop, HTTP1ConnectionOptions.isHopByHop(name) { continue }
            keep(name, value, field.ascii, lineStart, lineEnd)
        }
        return .success(framing)
    }

    /// Why `field` refused a line: its name, or its value.
    static func fieldError(_ raw: UnsafeRawBufferPointer, from: Int, to: Int) -> HTTP1ParseError.Reason {
        var i = from
        while i < to, raw[i] != 58 {
            guard isTokenByte(raw[i]) else { return .fieldName }
            i += 1
        }
        return i > from && i < to ? .fieldValue : .fieldName
    }

    /// RFC 9110 5.6.2 tchar: letters, digits and ! # $ % & ' * + - . ^ _ ` | ~.
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return (0x03FF_6CFA_0000_0000 as UInt64) >> UInt64(byte) & 1 == 1 }
        if byte < 128 { return (0x57FF_FFFF_C7FF_FFFE as UInt64) >> UInt64(byte - 64) & 1 == 1 }
        return false
    }

    /// 1 to 18 digits, nothing else.
    static func decimal(_ value: UnsafeRawBufferPointer) -> Int64? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var result: Int64 = 0
        for byte in value {
            guard byte >= 48 && byte <= 57 else { return nil }
            result = result * 10 + Int64(byte - 48)
        }
        return result
    }

    /// "HTTP/" DIGIT "." DIGIT at `i`, as its two digits.
    static func versionDigits(_ raw: UnsafeRawBufferPointer, at i: Int) -> (Int, Int)? {
        guard raw[i] == 72, raw[i + 1] == 84, raw[i + 2] == 84, raw[i + 3] == 80, raw[i + 4] == 47, raw[i + 6] == 46 else { return nil }
        let major = raw[i + 5], minor = raw[i + 7]
        guard major >= 48 && major <= 57 && minor >= 48 && minor <= 57 else { return nil }
        return (Int(major - 48), Int(minor - 48))
    }

    /// Adds the codings of one Transfer-Encoding value to what earlier values listed: tokens separated by
    /// commas and optional whitespace, no empty element (llhttp refuses a trailing comma; the gateway any), and
    /// no coding after `chunked`. False if the value breaks a rule or is empty.
    static func codings(_ value: UnsafeRawBufferPointer, count: inout Int, lastWasChunked: inout Bool) -> Bool {
        var i = 0
        while true {
            while i < value.count, value[i] == 32 || value[i] == 9 { i += 1 }
            let start = i
            while i < value.count, isTokenByte(value[i]) { i += 1 }
            let end = i
            while i < value.count, value[i] == 32 || value[i] == 9 { i += 1 }
            guard end > start, lastWasChunked == false else { return false }
            lastWasChunked = equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: value[start..<end]), "chunked")
            count += 1
            if i == value.count { return true }
            guard value[i] == 44 else { return false }
            i += 1
        }
    }

    /// A chunk size line without its CRLF: 1 to 15 hex digits, then extensions `*( ";" token [ "=" ( token /
    /// quoted-string ) ] )` (RFC 9112 7.1.1) without the optional whitespace the grammar allows around `;` and
    /// `=` (llhttp refuses it too, and backends split such lines differently). Nil if it is anything else.
    static func chunkSize(_ line: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        var size: Int64 = 0
        while i < line.count, let digit = hexValue(line[i]) {
            guard i < 15 else { return nil }
            size = size << 4 | Int64(digit)
            i += 1
        }
        guard i > 0 else { return nil }
        func token() -> Bool {
            let start = i
            while i < line.count, isTokenByte(line[i]) { i += 1 }
            return i > start
        }
        while i < line.count {
            guard line[i] == 59 else { return nil }
            i += 1
            guard token() else { return nil }
            guard i < line.count, line[i] == 61 else { continue }
            i += 1
            if i < line.count, line[i] == 34 {
                i += 1
                var closed = false
                while i < line.count {
                    let byte = line[i]
                    if byte == 34 { closed = true; i += 1; break }
                    if byte == 92 { i += 1; guard i < line.count else { return nil } }
                    let quoted = line[i]
                    guard quoted == 9 || (quoted >= 32 && quoted != 127) else { return nil }
                    i += 1
                }
                guard closed else { return nil }
            } else {
                guard token() else { return nil }
            }
        }
        return size
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: return byte - 48
        case 65...70: return byte - 55
        case 97...102: return byte - 87
        default: return nil
        }
    }

    /// ASCII case-insensitive equality with a lowercase ASCII literal, exact for any bytes: four or eight bytes
    /// at a time, where bit 5 of an input byte is ignored only where the literal has a letter (`b | 0x20 == t`
    /// holds for a letter `t` exactly when `b` is `t` in either case).
    @inline(__always)
    package static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let count = lowercase.utf8CodeUnitCount
        guard bytes.count == count else { return false }
        let expected = UnsafeRawPointer(lowercase.utf8Start)
        if count >= 8 {
            var i = 0
            while i + 8 < count {
                guard foldedEquals(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self), expected.loadUnaligned(fromByteOffset: i, as: UInt64.self)) else {
                    return false
                }
                i += 8
            }
            // The last eight bytes (overlapping the word before when the length is not a multiple of eight).
            return foldedEquals(bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self), expected.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
        }
        if count >= 4 {
            return foldedEquals(UInt64(bytes.loadUnaligned(as: UInt32.self)), UInt64(expected.loadUnaligned(as: UInt32.self)))
                && foldedEquals(
                    UInt64(bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)),
                    UInt64(expected.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)))
        }
        for i in 0..<count {
            let byte = bytes[i]
            if (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) != expected.load(fromByteOffset: i, as: UInt8.self) { return false }
        }
        return true
    }

    /// `input` equals `lowercase` (ASCII bytes) with the case of the letters of `lowercase` ignored.
    @inline(__always)
    static func foldedEquals(_ input: UInt64, _ lowercase: UInt64) -> Bool {
        // Bit 7 of a byte is set where the literal's byte is in 0x61...0x7A (no carry between bytes: all < 0x80).
        let letters = (lowercase &+ 0x1F1F_1F1F_1F1F_1F1F) & ~(lowercase &+ 0x0505_0505_0505_0505) & 0x8080_8080_8080_8080
        return input | (letters >> 2) == lowercase
    }

    /// The framing fields of a head, collected field by field: Content-Length once, Transfer-Encoding codings.
    struct FramingFields {
        var length: Int64?
        var encodings = 0
        var lastWasChunked = false
        var hasTransferEncoding = false
        var connection = HTTP1ConnectionOptions()

        /// Takes one field; the error if it breaks a framing rule.
        @inline(__always)
        mutating func take(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, valueEndsLine: Bool) -> HTTP1ParseError.Reason? {
            switch name.count {
            case 14 where HTTP1Syntax.equalsIgnoringCase(name, "content-length"):
                // Digits only, no whitespace after them (llhttp refuses it too), and only once.
                guard length == nil, valueEndsLine, let parsed = HTTP1Syntax.decimal(value) else { return .contentLength }
                length = parsed
            case 17 where HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding"):
                // Tokens only, and no whitespace after the last (llhttp refuses `chunked` followed by a tab).
                hasTransferEncoding = true
                guard valueEndsLine, HTTP1Syntax.codings(value, count: &encodings, lastWasChunked: &lastWasChunked) else { return .transferEncoding }
            case 10 where HTTP1Syntax.equalsIgnoringCase(name, "connection"):
                connection.take(value)
            default:
                break
            }
            return nil
        }
    }
}
