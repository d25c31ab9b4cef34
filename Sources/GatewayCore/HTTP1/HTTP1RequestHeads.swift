import NIOHTTP1

/// Request heads for `HTTP1Parser`: the request line (one space between its parts, a method llhttp knows, a
/// target in origin, absolute or asterisk form of visible ASCII, HTTP/1.0 or 1.1) and the fields, into a
/// `ClientRequestHead` (the fields as bytes); a body only by Content-Length or chunked Transfer-Encoding.
package struct HTTP1RequestHeads: HTTP1HeadParsing {
    /// What the Connection fields of the last head parsed said (whether the client keeps the connection open).
    package private(set) var lastConnection = HTTP1ConnectionOptions()

    package init() {}

    package mutating func parsed(_ framing: HTTP1Framing, connection: HTTP1ConnectionOptions) {
        lastConnection = connection
    }

    package func parse(
        _ raw: UnsafeRawBufferPointer, start: Int, end: Int, maxFields: Int
    ) -> Result<(ClientRequestHead, HTTP1Framing, HTTP1ConnectionOptions), HTTP1ParseError> {
        // The request line: method SP request-target SP HTTP-version CRLF, single spaces.
        var i = start
        while raw[i] != 32 {
            let byte = raw[i]
            guard (byte >= 65 && byte <= 90) || byte == 45 else { return .failure(.init(byte == 13 ? .requestLine : .method)) }
            i += 1
        }
        guard i > start else { return .failure(.init(.requestLine)) }
        guard let method = Self.method(UnsafeRawBufferPointer(rebasing: raw[start..<i])) else { return .failure(.init(.method)) }
        let targetStart = i + 1
        i = targetStart
        while raw[i] != 32 {
            let byte = raw[i]
            guard byte > 32 && byte < 127 else { return .failure(.init(byte == 13 ? .requestLine : .target)) }
            i += 1
        }
        guard i > targetStart else { return .failure(.init(.requestLine)) }
        let targetEnd = i
        guard method.isCONNECT || Self.isTargetForm(UnsafeRawBufferPointer(rebasing: raw[targetStart..<targetEnd])) else {
            return .failure(.init(.target))
        }
        i += 1
        guard i + 10 <= end, raw[i + 8] == 13 else { return .failure(.init(.version)) }
        let version: HTTPVersion
        switch HTTP1Syntax.versionDigits(raw, at: i) {
        case nil: return .failure(.init(.version))
        case (1, 1)?: version = .http1_1
        case (1, 0)?: version = .http1_0
        default: return .failure(.init(.unsupportedVersion))
        }
        i += 10

        let fields: HeaderBlock, framing: HTTP1Syntax.FramingFields
        switch HTTP1Syntax.fieldBlock(raw, from: i, end: end, maxFields: maxFields) {
        case .success(let parsed): (fields, framing) = parsed
        case .failure(let error): return .failure(error)
        }
        let body: HTTP1Framing
        if framing.hasTransferEncoding {
            // A request's Transfer-Encoding must end with chunked (RFC 9112 6.3), and never come with a length.
            guard framing.length == nil else { return .failure(.init(.lengthAndEncoding)) }
            guard framing.lastWasChunked else { return .failure(.init(.transferEncoding)) }
            body = .chunked
        } else {
            body = framing.length.map { .length($0) } ?? .none
        }
        let uri = String(decoding: UnsafeRawBufferPointer(rebasing: raw[targetStart..<targetEnd]), as: UTF8.self)
        return .success((ClientRequestHead(method: method, version: version, uri: uri, fields: fields), body, framing.connection))
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
        case 5:
            if bytes[0] == 80, bytes[1] == 65, bytes[2] == 84, bytes[3] == 67, bytes[4] == 72 { return .PATCH }
        case 6:
            if bytes[0] == 68, bytes[1] == 69, bytes[2] == 76, bytes[3] == 69, bytes[4] == 84, bytes[5] == 69 { return .DELETE }
        case 7:
            if bytes[0] == 79, bytes[1] == 80, bytes[2] == 84, bytes[3] == 73, bytes[4] == 79, bytes[5] == 78, bytes[6] == 83 { return .OPTIONS }
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

/// The parser of client requests.
package typealias HTTP1RequestParser = HTTP1Parser<HTTP1RequestHeads>

extension HTTP1Parser where Heads == HTTP1RequestHeads {
    package init(maxHeadBytes: Int, maxFields: Int) {
        self.init(heads: HTTP1RequestHeads(), maxHeadBytes: maxHeadBytes, maxFields: maxFields)
    }
}
