import NIOHTTP1

/// Response heads for `HTTP1Parser`, on backend connections: the status line (HTTP/1.0 or 1.1, three digits,
/// an optional reason of visible bytes) and the fields, into a `BackendResponseHead` (the fields as bytes; the
/// standard reason phrase, as NIO's decoder made it). The body framing of RFC 9112 6.3: none for a response to HEAD, a 1xx, 204 or
/// 304; chunked when Transfer-Encoding ends with it, until the close for another coding or no length at all.
/// Interim responses (1xx but 101) are skipped, as NIO's decoder dropped them.
package struct HTTP1ResponseHeads: HTTP1HeadParsing {
    /// A request was sent and its (final) response has not been parsed yet: a response head that arrives
    /// otherwise is unsolicited, and refused (the backend is out of step; its connection must not be reused).
    package private(set) var awaitingResponse = false
    /// The request the next response answers was a HEAD: that response has no body, whatever its head says.
    package private(set) var answersHEAD = false
    /// Hop-by-hop fields are left out of the heads (the gateway never forwards them; no String is made for
    /// them); what the Connection fields said is in `lastConnection`.
    package var dropsHopByHop = false
    /// What the Connection fields of the last head parsed said.
    package private(set) var lastConnection = HTTP1ConnectionOptions()

    package init() {}

    /// A request went out (one at a time: backend connections are not pipelined).
    package mutating func requestSent(isHEAD: Bool) {
        awaitingResponse = true
        answersHEAD = isHEAD
    }

    package mutating func parsed(_ framing: HTTP1Framing, connection: HTTP1ConnectionOptions) {
        lastConnection = connection
        if framing != .skip {
            awaitingResponse = false
            answersHEAD = false
        }
    }

    package func parse(
        _ raw: UnsafeRawBufferPointer, start: Int, end: Int, maxFields: Int
    ) -> Result<(BackendResponseHead, HTTP1Framing, HTTP1ConnectionOptions), HTTP1ParseError> {
        guard awaitingResponse else { return .failure(.init(.unsolicited)) }
        // HTTP-version SP 3DIGIT [ SP reason-phrase ] CRLF
        var i = start
        guard i + 14 <= end, raw[i + 8] == 32 else { return .failure(.init(.statusLine)) }
        let version: HTTPVersion
        switch HTTP1Syntax.versionDigits(raw, at: i) {
        case nil: return .failure(.init(.statusLine))
        case (1, 1)?: version = .http1_1
        case (1, 0)?: version = .http1_0
        default: return .failure(.init(.unsupportedVersion))
        }
        i += 9
        var code = 0
        for offset in 0..<3 {
            let digit = raw[i + offset]
            guard digit >= 48 && digit <= 57 else { return .failure(.init(.statusLine)) }
            code = code * 10 + Int(digit - 48)
        }
        guard code >= 100 else { return .failure(.init(.statusLine)) }
        i += 3
        if raw[i] == 32 {
            i += 1
            while raw[i] != 13 {
                let byte = raw[i]
                guard byte >= 32 || byte == 9, byte != 127 else { return .failure(.init(.statusLine)) }
                i += 1
            }
        }
        guard raw[i] == 13 else { return .failure(.init(.statusLine)) }
        i += 2

        // The fields as the bytes they are forwarded as.
        var fields: HeaderBlock, framing: HTTP1Syntax.FramingFields
        switch HTTP1Syntax.fieldBlock(raw, from: i, end: end, maxFields: maxFields, dropHopByHop: dropsHopByHop) {
        case .success(let parsed): (fields, framing) = parsed
        case .failure(let error): return .failure(error)
        }
        // Both framings at once is a smuggling attempt or a broken server: refused, whatever the status.
        if framing.hasTransferEncoding, framing.length != nil { return .failure(.init(.lengthAndEncoding)) }
        if framing.hasTransferEncoding, version == .http1_0 { framing.connection.closeAfterMessage = true }
        let body: HTTP1Framing
        if code < 200 {
            body = code == 101 ? .upgrade : .skip
        } else if answersHEAD || code == 204 || code == 304 {
            body = .none
        } else if framing.hasTransferEncoding {
            body = framing.lastWasChunked ? .chunked : .untilClose
        } else {
            body = framing.length.map { .length($0) } ?? .untilClose
        }
        let head = BackendResponseHead(
            version: version, status: .init(statusCode: code), fields: fields, hasContentLength: framing.length != nil,
            withoutHopByHop: dropsHopByHop && framing.connection.listed.isEmpty
        )
        return .success((head, body, framing.connection))
    }
}

/// The parser of backend responses.
package typealias HTTP1ResponseParser = HTTP1Parser<HTTP1ResponseHeads>

extension HTTP1Parser where Heads == HTTP1ResponseHeads {
    package init(maxHeadBytes: Int, maxFields: Int) {
        self.init(heads: HTTP1ResponseHeads(), maxHeadBytes: maxHeadBytes, maxFields: maxFields)
    }
}
