import NIOCore

/// The gateway's HTTP/1.x parser (RFC 9112), for requests (`HTTP1RequestParser`, on client connections) and
/// responses (`HTTP1ResponseParser`, on backend connections), in place of NIO's llhttp-based decoders: bytes
/// in, parts out, nothing else (no I/O; the heads' field blocks and targets are its only allocations).
///
/// It is strict where llhttp is, and stricter where a proxy must be: every line ends with CRLF (no bare LF or
/// CR), no obs-fold, header names are tokens, values hold no control byte but HTAB, one Content-Length of digits
/// only, a Transfer-Encoding whose codings are tokens with `chunked` only last, never both; chunk size lines are
/// hex digits with well-formed extensions (no whitespace), chunk data ends with CRLF, trailer fields are
/// checked like header fields. A head is returned only once all of it has arrived and its framing is decided,
/// so a request refused here never reaches a plugin or a backend, and a response refused here never reaches a
/// client. `HTTP1Differential` (GatewayTooling) compares the request parser with llhttp; docs/fuzzing.md lists
/// where the two differ on purpose.
///
/// The owner feeds it what it reads (`append`) and takes parts (`next`) as far as it can use them: bytes of a
/// pipelined request wait here, unparsed, while the request before it is answered.
package struct HTTP1Parser<Heads: HTTP1HeadParsing> {
    package enum Part {
        case head(Heads.Head)
        case body(ByteBuffer)
        case end
    }

    private enum State {
        case head
        case contentLength(remaining: Int64)
        case untilClose
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        /// The message is complete: `.end` is the next part.
        case end
        /// A 101 response is complete: `.end` is the next part, and nothing after it.
        case endThenIgnoring
        /// After an upgrade: nothing more is parsed, whatever arrives.
        case ignoring
        case failed(HTTP1ParseError)
    }

    package var heads: Heads
    private var input = ByteBuffer()
    private var state = State.head
    /// How far the head or line being read was already scanned for its end (a head trickled in byte by byte is
    /// not scanned again from its start on every read).
    private var scanned = 0
    private var trailerBytes = 0
    private var trailerFields = 0
    /// The most bytes of a head (start line, fields and the blank line) or of a trailer section.
    package let maxHeadBytes: Int
    /// The most fields in a head, and in a trailer section.
    package let maxFields: Int

    /// The longest chunk size line (size and extensions).
    static var maxChunkLine: Int { 4096 }

    package init(heads: Heads, maxHeadBytes: Int, maxFields: Int) {
        self.heads = heads
        self.maxHeadBytes = maxHeadBytes
        self.maxFields = maxFields
    }

    /// Bytes received and not yet returned as parts.
    package var bufferedBytes: Int { input.readableBytes }
    /// The capacity of the buffer that holds them (tests: nothing consumed is kept).
    package var bufferedCapacity: Int { input.capacity }

    /// The bytes received and not yet returned as parts (a view of them; nil when there are none).
    package var buffered: ByteBuffer? { input.readableBytes > 0 ? input : nil }

    /// Adds what was read. The first buffer is kept as it is (no copy); later ones are appended to what waits,
    /// after the bytes already parsed are dropped (nothing consumed is ever kept or copied again). Ignored after
    /// an upgrade or an error.
    package mutating func append(_ buffer: ByteBuffer) {
        switch state {
        case .ignoring, .failed: return
        default: break
        }
        if input.readableBytes == 0 {
            input = buffer
        } else {
            if input.readerIndex > 0 { input.discardReadBytes() }
            var buffer = buffer
            input.writeBuffer(&buffer)
        }
    }

    /// After a 101 response's end: the bytes that came after the response, which belong to the protocol switched
    /// to (a WebSocket tunnel's first frames), handed over once; nil when none came. Nothing is buffered after.
    package mutating func takeUpgraded() -> ByteBuffer? {
        guard case .ignoring = state, input.readableBytes > 0 else { return nil }
        let rest = input
        discard()
        return rest
    }

    /// No message is in progress: the next byte would start a head.
    package var isBetweenMessages: Bool {
        if case .head = state { return input.readableBytes == 0 }
        return false
    }

    /// Drops everything buffered (the connection is closing).
    package mutating func discard() {
        input = ByteBuffer()
        scanned = 0
    }

    /// The peer closed the connection: the end of a body delimited by the close, nil between messages (or
    /// after an upgrade), an error in the middle of one.
    package mutating func finish() throws(HTTP1ParseError) -> Part? {
        switch state {
        case .untilClose:
            state = .head
            return .end
        case .head where input.readableBytes == 0, .ignoring, .failed:
            return nil
        case .end:
            state = .head
            return .end
        case .endThenIgnoring:
            state = .ignoring
            return .end
        default:
            try fail(.truncated)
        }
    }

    /// The next part, or nil until more bytes arrive. After an error every call throws it again.
    package mutating func next() throws(HTTP1ParseError) -> Part? {
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .ignoring:
                return nil
            case .head:
                guard let part = try nextHead() else { return nil }
                return part
            case .end:
                state = .head
                return .end
            case .endThenIgnoring:
                // What follows the 101 is another protocol's: kept for `takeUpgraded`, never parsed.
                state = .ignoring
                return .end
            case .contentLength(let remaining):
                guard let body = takeBody(remaining) else { return nil }
                let left = remaining - Int64(body.readableBytes)
                state = left == 0 ? .end : .contentLength(remaining: left)
                return .body(body)
            case .untilClose:
                guard let body = takeBody(.max) else { return nil }
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
                consume(2)
                state = .chunkSize
            case .chunkSize:
                guard let length = try line(limit: Self.maxChunkLine, reason: .chunkSize) else { return nil }
                let size = input.withUnsafeReadableBytes { HTTP1Syntax.chunkSize(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
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
                // A valid field, and no framing field: a trailer may not change how the message was framed
                // (RFC 9110 6.5.1; llhttp refuses a Transfer-Encoding there too).
                let valid = input.withUnsafeReadableBytes { raw in
                    guard let field = HTTP1Syntax.fieldLine(raw, from: 0), field.lineEnd == length else { return false }
                    let name = UnsafeRawBufferPointer(rebasing: raw[0..<field.colon])
                    return !HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding") && !HTTP1Syntax.equalsIgnoringCase(name, "content-length")
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
        while true {
            guard input.readableBytes > 0 else { return nil }
            let scan = input.withUnsafeReadableBytes { Self.findHeadEnd($0, from: scanned, limit: maxHeadBytes) }
            switch scan {
            case .invalid(let reason):
                try fail(reason)
            case .incomplete(let scannedTo):
                scanned = scannedTo
                return nil
            case .complete(let start, let end):
                // A copy of the buffer (one reference), not of the heads, for the closure to read both.
                let received = input
                let parsed = received.withUnsafeReadableBytes { heads.parse($0, start: start, end: end, maxFields: maxFields) }
                switch consume parsed {
                case .failure(let error):
                    try fail(error.reason)
                case .success(let (head, framing, connection)):
                    consume(end)
                    self.heads.parsed(framing, connection: connection)
                    switch framing {
                    case .skip: continue
                    case .none: state = .end
                    case .length(let length): state = length > 0 ? .contentLength(remaining: length) : .end
                    case .chunked: state = .chunkSize
                    case .untilClose: state = .untilClose
                    case .upgrade: state = .endThenIgnoring
                    }
                    return .head(head)
                }
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
            // Eight bytes at a time to the next CR or LF (the only bytes this scan looks at).
            if i + 8 <= count {
                let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                let found = HTTP1Syntax.zeroBytes(word ^ 0x0A0A_0A0A_0A0A_0A0A) | HTTP1Syntax.zeroBytes(word ^ 0x0D0D_0D0D_0D0D_0D0D)
                guard found != 0 else {
                    i += 8
                    continue
                }
                i += found.trailingZeroBitCount / 8
            }
            let byte = raw[i]
            if byte == 13 {
                // A CR and its LF at once (one stop per line, not two): the LF's checks are the ones below.
                guard i + 1 < count else { break }
                guard raw[i + 1] == 10 else { return .invalid(.lineEnding) }
                if i - 2 >= start, raw[i - 1] == 10 {
                    return i + 2 - start > limit ? .invalid(.headTooLarge) : .complete(start: start, end: i + 2)
                }
                i += 2
                continue
            }
            if byte == 10 {
                // An LF whose CR was not just passed: the first byte scanned (the scan resumed there), or a bare LF.
                if i == start || raw[i - 1] != 13 { return .invalid(.lineEnding) }
                if i - 3 >= start, raw[i - 2] == 10 {
                    return i + 1 - start > limit ? .invalid(.headTooLarge) : .complete(start: start, end: i + 1)
                }
            }
            i += 1
        }
        if count - start > limit { return .invalid(.headTooLarge) }
        return .incomplete(scanned: max(start, count - 1))
    }
}
