import NIOCore
import NIOHTTP1

/// The gateway's HTTP/1.x request parser (RFC 9112), in place of NIO's llhttp-based decoder on client
/// connections: bytes in, request parts out, nothing else (no I/O, no allocation but the head's strings).
///
/// It is strict where llhttp is, and stricter where a proxy must be: every line ends with CRLF (no bare LF or
/// CR), no obs-fold, header names are tokens, values hold no control byte but HTAB, one Content-Length of digits
/// only, a Transfer-Encoding whose last coding is `chunked` (and no other `chunked`), never both; the target in
/// origin, absolute or asterisk form; chunk size lines are hex digits with well-formed extensions (no
/// whitespace), chunk data ends with CRLF, trailer fields are checked
/// like header fields. A head is returned only once all of it has arrived and its framing is decided, so a
/// request refused here never reaches a plugin or a backend. `HTTP1Differential` (GatewayTooling) compares it
/// with llhttp; docs/fuzzing.md lists where the two differ on purpose.
///
/// The owner feeds it what it reads (`append`) and takes parts (`next`) as far as it can use them: bytes of a
/// pipelined request wait here, unparsed, while the request before it is answered.
package struct HTTP1RequestParser {
    package enum Part {
        case head(HTTPRequestHead)
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case head
        case contentLength(remaining: Int64)
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        /// The message is complete: `.end` is the next part.
        case end
        case failed(HTTP1ParseError)
    }

    private var input = ByteBuffer()
    private var state = State.head
    /// How far the head or line being read was already scanned for its end (a head trickled in byte by byte is
    /// not scanned again from its start on every read).
    private var scanned = 0
    private var trailerBytes = 0
    private var trailerFields = 0
    /// The most bytes of a head (request line, fields and the blank line) or of a trailer section.
    package let maxHeadBytes: Int
    /// The most fields in a head, and in a trailer section.
    package let maxFields: Int

    /// The longest chunk size line (size and extensions).
    static let maxChunkLine = 4096

    package init(maxHeadBytes: Int, maxFields: Int) {
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }

    /// Bytes received and not yet returned as parts.
    package var bufferedBytes: Int { input.readableBytes }

    /// Adds what was read. The first buffer is kept as it is (no copy); later ones are appended to what waits.
    package mutating func append(_ buffer: ByteBuffer) {
        if input.readableBytes == 0 {
            input = buffer
        } else {
            var buffer = buffer
            input.writeBuffer(&buffer)
        }
    }

    /// Drops everything buffered (the connection is closing).
    package mutating func discard() {
        input = ByteBuffer()
        scanned = 0
    }

    /// The next part, or nil until more bytes arrive. After an error every call throws it again.
    package mutating func next() throws(HTTP1ParseError) -> Part? {
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .head:
                return try nextHead()
            case .end:
                state = .head
                return .end
            case .contentLength(let remaining):
                guard let body = takeBody(remaining) else { return nil }
                let left = remaining - Int64(body.readableBytes)
                state = left == 0 ? .end : .contentLength(remaining: left)
                return .body(body)
            case .chunkData(let remaining):
                guard let body = takeBody(remaining) else { return nil }
                let left = remaining - Int64(body.readableBytes)
                state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                return .body(body)
            case .chunkDataEnd:
                let crlf = input.readableBytes >= 2 ? input.getInteger(at: input.readerIndex, as: UInt16.self) : nil
                guard let crlf else {
                    if input.readableBytes == 1, input.getInteger(at: input.readerIndex, as: UInt8.self) != 13 { try fail(.chunkEnd) }
                    return nil
                }
                guard crlf == 0x0D0A else { try fail(.chunkEnd) }
                input.moveReaderIndex(forwardBy: 2)
                state = .chunkSize
            case .chunkSize:
                guard let length = try line(limit: Self.maxChunkLine, reason: .chunkSize) else { return nil }
                let size = input.withUnsafeReadableBytes { Self.chunkSize(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
                guard let size else { try fail(.chunkSize) }
                consume(length + 2)
                if size == 0 {
                    trailerBytes = 0
                    trailerFields = 0
                    state = .trailers
                } else {
                    state = .chunkData(remaining: size)
                }
            case .trailers:
                guard let length = try line(limit: maxHeadBytes - trailerBytes, reason: .headTooLarge) else { return nil }
                if length == 0 {
                    consume(2)
                    state = .head
                    return .end
                }
                trailerFields += 1
                if trailerFields > maxFields { try fail(.tooManyFields) }
                let valid = input.withUnsafeReadableBytes { raw in
                    Self.field(raw, from: 0, to: length) != nil
                }
                guard valid else { try fail(.trailers) }
                trailerBytes += length + 2
                consume(length + 2)
            }
        }
    }

    private mutating func fail(_ reason: HTTP1ParseError.Reason) throws(HTTP1ParseError) -> Never {
        let error = HTTP1ParseError(reason)
        state = .failed(error)
        discard()
        throw error
    }

    private mutating func consume(_ count: Int) {
        input.moveReaderIndex(forwardBy: count)
        scanned = 0
        if input.readableBytes == 0 { input = ByteBuffer() }
    }

    /// Up to `remaining` body bytes of what waits, as a slice of the received buffer (no copy).
    private mutating func takeBody(_ remaining: Int64) -> ByteBuffer? {
        let available = input.readableBytes
        guard available > 0 else { return nil }
        let body = input.readSlice(length: Int(min(Int64(available), remaining)))!
        if input.readableBytes == 0 { input = ByteBuffer() }
        return body
    }

    // MARK: lines

    /// The length of the line at the reader index, without its CRLF; nil until all of it arrived. A bare LF or
    /// CR, or a line longer than `limit`, is an error.
    private mutating func line(limit: Int, reason: HTTP1ParseError.Reason) throws(HTTP1ParseError) -> Int? {
        let from = scanned
        let found: Int? = input.withUnsafeReadableBytes { raw in
            var i = from
            while i < raw.count {
                let byte = raw[i]
                if byte == 10 { return i == 0 || raw[i - 1] != 13 ? -1 : i - 1 }
                if byte == 13, i + 1 < raw.count, raw[i + 1] != 10 { return -1 }
                i += 1
            }
            return nil
        }
        if let found {
            if found < 0 { try fail(.lineEnding) }
            if found > limit { try fail(reason) }
            return found
        }
        if input.readableBytes > limit + 2 { try fail(reason) }
        // The last byte may be the CR of a CRLF whose LF has not arrived: look at it again next time.
        scanned = max(0, input.readableBytes - 1)
        return nil
    }

    // MARK: the head

    private enum HeadScan {
        case incomplete(scanned: Int)
        case complete(start: Int, end: Int)
        case invalid(HTTP1ParseError.Reason)
    }

    private mutating func nextHead() throws(HTTP1ParseError) -> Part? {
        guard input.readableBytes > 0 else { return nil }
        let scan = input.withUnsafeReadableBytes { Self.findHeadEnd($0, from: scanned, limit: maxHeadBytes) }
        switch scan {
        case .invalid(let reason):
            try fail(reason)
        case .incomplete(let scannedTo):
            scanned = scannedTo
            return nil
        case .complete(let start, let end):
            let maxFields = self.maxFields
            let parsed = input.withUnsafeReadableBytes { Self.parseHead($0, start: start, end: end, maxFields: maxFields) }
            switch parsed {
            case .failure(let error):
                try fail(error.reason)
            case .success(let (head, framing)):
                consume(end)
                switch framing {
                case .none: state = .end
                case .length(let length): state = length > 0 ? .contentLength(remaining: length) : .end
                case .chunked: state = .chunkSize
                }
                return .head(head)
            }
        }
    }

    /// Where the head starts (after one optional empty line, RFC 9112 2.2) and ends (after its blank line). Every
    /// LF must follow a CR and every CR precede an LF.
    private static func findHeadEnd(_ raw: UnsafeRawBufferPointer, from: Int, limit: Int) -> HeadScan {
        let count = raw.count
        if raw[0] == 13, count == 1 { return .incomplete(scanned: 0) }
        let start = count >= 2 && raw[0] == 13 && raw[1] == 10 ? 2 : 0
        var i = max(from, start)
        while i < count {
            let byte = raw[i]
            if byte == 10 {
                if i == start || raw[i - 1] != 13 { return .invalid(.lineEnding) }
                if i - 3 >= start, raw[i - 2] == 10 {
                    return i + 1 - start > limit ? .invalid(.headTooLarge) : .complete(start: start, end: i + 1)
                }
            } else if byte == 13, i + 1 < count, raw[i + 1] != 10 {
                return .invalid(.lineEnding)
            }
            i += 1
        }
        if count - start > limit { return .invalid(.headTooLarge) }
        return .incomplete(scanned: max(start, count - 1))
    }

    package enum Framing: Equatable {
        case none
        case length(Int64)
        case chunked
    }

    /// Parses a complete head, `raw[start..<end]` (ending with its blank line), into NIO's head type and the
    /// body's framing.
    static func parseHead(
        _ raw: UnsafeRawBufferPointer, start: Int, end: Int, maxFields: Int
    ) -> Result<(HTTPRequestHead, Framing), HTTP1ParseError> {
        // The request line: method SP request-target SP HTTP-version CRLF, single spaces.
        var i = start
        while raw[i] != 32 {
            let byte = raw[i]
            guard (byte >= 65 && byte <= 90) || byte == 45 else { return .failure(.init(byte == 13 ? .requestLine : .method)) }
            i += 1
        }
        guard i > start else { return .failure(.init(.requestLine)) }
        guard let method = method(UnsafeRawBufferPointer(rebasing: raw[start..<i])) else { return .failure(.init(.method)) }
        let targetStart = i + 1
        i = targetStart
        while raw[i] != 32 {
            let byte = raw[i]
            guard byte > 32 && byte < 127 else { return .failure(.init(byte == 13 ? .requestLine : .target)) }
            i += 1
        }
        guard i > targetStart else { return .failure(.init(.requestLine)) }
        let targetEnd = i
        guard method == .CONNECT || isTargetForm(UnsafeRawBufferPointer(rebasing: raw[targetStart..<targetEnd])) else {
            return .failure(.init(.target))
        }
        i += 1
        guard i + 10 <= end, raw[i + 8] == 13 else { return .failure(.init(.version)) }
        let version: HTTPVersion
        switch versionDigits(raw, at: i) {
        case nil: return .failure(.init(.version))
        case (1, 1)?: version = .http1_1
        case (1, 0)?: version = .http1_0
        default: return .failure(.init(.unsupportedVersion))
        }
        i += 10

        // The fields, up to the blank line at end - 2.
        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        var length: Int64?
        var encodings = 0
        var lastWasChunked = false
        var hasTransferEncoding = false
        while i < end - 2 {
            var lineEnd = i
            while raw[lineEnd] != 13 { lineEnd += 1 }
            guard raw[i] != 32 && raw[i] != 9 else { return .failure(.init(.obsFold)) }
            guard let field = field(raw, from: i, to: lineEnd) else { return .failure(.init(fieldError(raw, from: i, to: lineEnd))) }
            guard fields.count < maxFields else { return .failure(.init(.tooManyFields)) }
            let name = UnsafeRawBufferPointer(rebasing: raw[i..<field.colon])
            let value = UnsafeRawBufferPointer(rebasing: raw[field.valueStart..<field.valueEnd])
            switch name.count {
            case 14 where equalsIgnoringCase(name, "content-length"):
                // Digits only, no whitespace after them (llhttp refuses it too), and only once.
                guard length == nil, field.valueEnd == lineEnd, let parsed = decimal(value) else { return .failure(.init(.contentLength)) }
                length = parsed
            case 17 where equalsIgnoringCase(name, "transfer-encoding"):
                hasTransferEncoding = true
                guard codings(value, count: &encodings, lastWasChunked: &lastWasChunked) else { return .failure(.init(.transferEncoding)) }
            default:
                break
            }
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            i = lineEnd + 2
        }
        let framing: Framing
        if hasTransferEncoding {
            guard length == nil else { return .failure(.init(.lengthAndEncoding)) }
            guard lastWasChunked else { return .failure(.init(.transferEncoding)) }
            framing = .chunked
        } else {
            framing = length.map { .length($0) } ?? .none
        }
        let uri = String(decoding: UnsafeRawBufferPointer(rebasing: raw[targetStart..<targetEnd]), as: UTF8.self)
        return .success((HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(fields)), framing))
    }

    /// Origin-form (`/...`), asterisk-form (`*`) or absolute-form (a scheme, then `://`), as llhttp takes them;
    /// `RequestHeadValidator` then refuses every absolute form but http and https.
    private static func isTargetForm(_ target: UnsafeRawBufferPointer) -> Bool {
        if target[0] == 47 { return true }
        if target[0] == 42 { return target.count == 1 }
        guard target[0] | 0x20 >= 97 && target[0] | 0x20 <= 122 else { return false }
        var i = 1
        while i < target.count {
            let byte = target[i]
            if byte == 58 { return i + 2 < target.count && target[i + 1] == 47 && target[i + 2] == 47 }
            guard (byte | 0x20 >= 97 && byte | 0x20 <= 122) || (byte >= 48 && byte <= 57) || byte == 43 || byte == 45 || byte == 46 else { return false }
            i += 1
        }
        return false
    }

    /// "HTTP/" DIGIT "." DIGIT at `at`, as its two digits.
    private static func versionDigits(_ raw: UnsafeRawBufferPointer, at i: Int) -> (Int, Int)? {
        guard raw[i] == 72, raw[i + 1] == 84, raw[i + 2] == 84, raw[i + 3] == 80, raw[i + 4] == 47, raw[i + 6] == 46 else { return nil }
        let major = raw[i + 5], minor = raw[i + 7]
        guard major >= 48 && major <= 57 && minor >= 48 && minor <= 57 else { return nil }
        return (Int(major - 48), Int(minor - 48))
    }

    /// A field line `raw[from..<to]` (without its CRLF): a token name, a colon, the value without the optional
    /// whitespace around it. Nil if the name is empty or not a token, or the value holds a control byte other
    /// than HTAB (obs-text, bytes 0x80 to 0xFF, is allowed as RFC 9110 5.5 allows it).
    static func field(_ raw: UnsafeRawBufferPointer, from: Int, to: Int) -> (colon: Int, valueStart: Int, valueEnd: Int)? {
        var i = from
        while i < to, raw[i] != 58 {
            guard isTokenByte(raw[i]) else { return nil }
            i += 1
        }
        guard i > from, i < to else { return nil }
        let colon = i
        i += 1
        while i < to, raw[i] == 32 || raw[i] == 9 { i += 1 }
        let valueStart = i
        var valueEnd = i
        while i < to {
            let byte = raw[i]
            guard byte >= 32 || byte == 9, byte != 127 else { return nil }
            i += 1
            if byte != 32 && byte != 9 { valueEnd = i }
        }
        return (colon, valueStart, valueEnd)
    }

    private static func fieldError(_ raw: UnsafeRawBufferPointer, from: Int, to: Int) -> HTTP1ParseError.Reason {
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
    private static func decimal(_ value: UnsafeRawBufferPointer) -> Int64? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var result: Int64 = 0
        for byte in value {
            guard byte >= 48 && byte <= 57 else { return nil }
            result = result * 10 + Int64(byte - 48)
        }
        return result
    }

    /// Adds the codings of one Transfer-Encoding value to what earlier values listed: comma-separated tokens
    /// (empty elements skipped), and no coding after `chunked`. False if the value breaks either rule or lists
    /// no coding at all.
    private static func codings(_ value: UnsafeRawBufferPointer, count: inout Int, lastWasChunked: inout Bool) -> Bool {
        var listed = 0
        var i = 0
        while i < value.count {
            while i < value.count, value[i] == 32 || value[i] == 9 || value[i] == 44 { i += 1 }
            let start = i
            while i < value.count, isTokenByte(value[i]) { i += 1 }
            let end = i
            while i < value.count, value[i] == 32 || value[i] == 9 { i += 1 }
            guard i == value.count || value[i] == 44 else { return false }
            guard end > start else { continue }
            if lastWasChunked { return false }
            lastWasChunked = equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: value[start..<end]), "chunked")
            listed += 1
        }
        count += listed
        return listed > 0
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

    @inline(__always)
    private static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for i in 0..<bytes.count {
            let byte = bytes[i]
            if (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) != expected[i] { return false }
        }
        return true
    }

    // MARK: methods

    /// The methods llhttp knows in HTTP mode (its HTTP_METHOD_MAP), and only those: a method the gateway has
    /// never seen is refused, not forwarded.
    private static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod? {
        switch bytes.count {
        case 3:
            if bytes[0] == 71, bytes[1] == 69, bytes[2] == 84 { return .GET }
            if bytes[0] == 80, bytes[1] == 85, bytes[2] == 84 { return .PUT }
        case 4:
            if bytes[0] == 80, bytes[1] == 79, bytes[2] == 83, bytes[3] == 84 { return .POST }
            if bytes[0] == 72, bytes[1] == 69, bytes[2] == 65, bytes[3] == 68 { return .HEAD }
        default:
            break
        }
        let name = String(decoding: bytes, as: UTF8.self)
        guard knownMethods.contains(name) else { return nil }
        return HTTPMethod(rawValue: name)
    }

    private static let knownMethods: Set<String> = [
        "DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK", "MKCOL", "MOVE", "PROPFIND",
        "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND", "ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
        "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE", "QUERY",
    ]
}
