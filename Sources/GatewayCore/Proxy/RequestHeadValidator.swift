import NIOHTTP1

/// The checks a request head passes before routing, plugins or any backend sees it (RFC 9112), and the one
/// normal form they then all see: an absolute-form target becomes origin-form with Host taken from its
/// authority (as RFC 9112 3.2.2 tells a server to do), and Content-Length becomes one canonical value. A head
/// that fails is answered by the gateway and its connection closed; nothing of it reaches a backend.
package enum RequestHeadValidator {
    package struct Refusal: Error, Equatable, Sendable {
        package var status: HTTPResponseStatus
        package var message: String

        package init(_ status: HTTPResponseStatus, _ message: String) {
            self.status = status
            self.message = message
        }
    }

    /// What the checks learnt of a head they passed, so that the proxy need not look through its fields again.
    package struct Facts: Equatable, Sendable {
        /// The Host value after normalisation (the target's authority for an absolute-form target).
        package var host: String?
        /// The body's length (the one canonical Content-Length), if it has one.
        package var contentLength: Int64?
        /// The body is chunked (Transfer-Encoding: chunked, the only coding let through).
        package var chunked = false
        /// An Expect field is among the fields.
        package var hasExpect = false
        /// A hop-by-hop field (`ProxyHeaders.isHopByHop`) is among the fields.
        package var hasHopByHop = false
    }

    /// Checks and normalises `head` in place; the refusal to answer with otherwise.
    package static func normalise(_ head: inout HTTPRequestHead, maxBodyBytes: Int64) -> Refusal? {
        if case .failure(let refusal) = check(&head, maxBodyBytes: maxBodyBytes) { return refusal }
        return nil
    }

    /// `normalise`, and on success what the checks learnt of the head.
    package static func check(_ head: inout HTTPRequestHead, maxBodyBytes: Int64) -> Result<Facts, Refusal> {
        guard head.version.major == 1 else { return .failure(Refusal(.httpVersionNotSupported, "HTTP version not supported\n")) }
        if case .CONNECT = head.method { return .failure(Refusal(.methodNotAllowed, "CONNECT is not supported\n")) }
        // One pass over the names (compared by length first, no allocation) finds the ones that matter here and
        // to the proxy; the common request has a Host and nothing else to look at.
        var facts = Facts()
        var hosts = 0
        var hasLength = false
        for (name, value) in head.headers {
            switch name.utf8.count {
            case 4 where ProxyHeaders.equalsIgnoringCase(Substring(name), "host"):
                hosts += 1
                // One host[:port] (or empty), nothing else: `Host: attacker.example, api.corp.example` would
                // route by one name and reach a backend that reads the other.
                guard value.isEmpty || isAuthority(Substring(value)) else { return .failure(Refusal(.badRequest, "invalid Host header\n")) }
                if facts.host == nil { facts.host = value }
            case 6 where ProxyHeaders.equalsIgnoringCase(Substring(name), "expect"): facts.hasExpect = true
            case 14 where ProxyHeaders.equalsIgnoringCase(Substring(name), "content-length"): hasLength = true
            case 17 where ProxyHeaders.equalsIgnoringCase(Substring(name), "transfer-encoding"):
                facts.chunked = true
                facts.hasHopByHop = true
            default:
                if !facts.hasHopByHop, ProxyHeaders.isHopByHop(name) { facts.hasHopByHop = true }
            }
        }
        // RFC 9112 3.2: more than one Host is refused (before an absolute-form target replaces it), none too in
        // HTTP/1.1.
        if hosts > 1 { return .failure(Refusal(.badRequest, "missing or repeated Host header\n")) }
        if head.uri.utf8.first != UInt8(ascii: "/") || head.uri.utf8.contains(UInt8(ascii: "#")) {
            if let refusal = normaliseTarget(&head) { return .failure(refusal) }
            facts.host = head.headers.first(name: "host")
            if hosts == 0, facts.host != nil { hosts = 1 }
        }
        if head.version.minor >= 1, hosts == 0 { return .failure(Refusal(.badRequest, "missing or repeated Host header\n")) }
        if facts.chunked {
            let transferEncoding = head.headers[canonicalForm: "transfer-encoding"]
            if head.version.minor == 0 { return .failure(Refusal(.badRequest, "Transfer-Encoding in an HTTP/1.0 request\n")) }
            if hasLength { return .failure(Refusal(.badRequest, "both Transfer-Encoding and Content-Length\n")) }
            // Only chunked, once: another coding (gzip, chunked) would be lost or misread on the way.
            guard transferEncoding.count == 1, ProxyHeaders.equalsIgnoringCase(ProxyHeaders.trimmed(transferEncoding[0]), "chunked") else {
                return .failure(Refusal(.notImplemented, "transfer coding not supported (only chunked)\n"))
            }
        }
        if hasLength {
            let lengths = head.headers[canonicalForm: "content-length"]
            // Every value (and every item of a comma-separated list) digits only and the same number.
            var length: Int64?
            for item in lengths {
                let value = ProxyHeaders.trimmed(item)
                guard !value.isEmpty, value.utf8.count <= 18, value.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let parsed = Int64(value),
                    length == nil || length == parsed
                else { return .failure(Refusal(.badRequest, "invalid Content-Length\n")) }
                length = parsed
            }
            guard let length else { return .failure(Refusal(.badRequest, "invalid Content-Length\n")) }
            if length > maxBodyBytes { return .failure(Refusal(.payloadTooLarge, "request body larger than \(maxBodyBytes) bytes\n")) }
            let canonical = String(length)
            if head.headers["content-length"] != [canonical] { head.headers.replaceOrAdd(name: "content-length", value: canonical) }
            facts.contentLength = length
        }
        return .success(facts)
    }

    /// `check` on a parsed head's bytes. The usual request (an origin-form target without a fragment, one valid
    /// Host, a Content-Length in its canonical form, or `Transfer-Encoding: chunked`, or neither) passes here
    /// with no String made but the Host's; every other head is checked (and refused, or normalised) by `check` on NIO's type,
    /// whose result it then is. So both always agree (`RequestHeadValidatorTests` compares them on random heads).
    package static func check(_ head: inout ClientRequestHead, maxBodyBytes: Int64) -> Result<Facts, Refusal> {
        if let facts = usualFacts(head, maxBodyBytes: maxBodyBytes) { return .success(facts) }
        var nio = head.nioHead
        let result = check(&nio, maxBodyBytes: maxBodyBytes)
        if case .success = result { head = ClientRequestHead(nio) }
        return result
    }

    /// The facts of a head that `check` on NIO's type would pass as it is; nil for any other head (and for
    /// some it would pass, which it then checks).
    package static func usualFacts(_ head: ClientRequestHead, maxBodyBytes: Int64) -> Facts? {
        guard head.version.major == 1, !head.method.isCONNECT else { return nil }
        let isOriginForm = head.uri.utf8.withContiguousStorageIfAvailable { target in
            target.first == UInt8(ascii: "/") && !target.contains(UInt8(ascii: "#"))
        }
        guard isOriginForm == true else { return nil }
        var facts = Facts()
        var hosts = 0
        var usual = true
        head.fields.forEach { name, value in
            switch name.count {
            case 4 where HTTP1Syntax.equalsIgnoringCase(name, "host"):
                hosts += 1
                guard hosts == 1, value.isEmpty || isAuthority(value) else {
                    usual = false
                    return false
                }
                facts.host = String(decoding: value, as: UTF8.self)
            case 6 where HTTP1Syntax.equalsIgnoringCase(name, "expect"):
                facts.hasExpect = true
            case 14 where HTTP1Syntax.equalsIgnoringCase(name, "content-length"):
                // Canonical: the digits of a number no larger than the limit, without a leading zero (the parser
                // lets one Content-Length of 1 to 18 digits through).
                guard facts.contentLength == nil, let length = HTTP1Syntax.decimal(value), value.count == 1 || value[0] != 48,
                    length <= maxBodyBytes
                else {
                    usual = false
                    return false
                }
                facts.contentLength = length
            case 17 where HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding"):
                // Chunked and nothing else, once (the parser trimmed the value).
                guard !facts.chunked, HTTP1Syntax.equalsIgnoringCase(value, "chunked") else {
                    usual = false
                    return false
                }
                facts.chunked = true
                facts.hasHopByHop = true
            default:
                if !facts.hasHopByHop, HTTP1ConnectionOptions.isHopByHop(name) { facts.hasHopByHop = true }
            }
            return true
        }
        guard usual, hosts == 1 || (hosts == 0 && head.version.minor == 0) else { return nil }
        // A chunked body: HTTP/1.1, and no Content-Length beside it.
        if facts.chunked, head.version.minor == 0 || facts.contentLength != nil { return nil }
        return facts
    }

    /// Origin-form ("/path?query") stays; "*" for OPTIONS stays; absolute-form ("http://host:port/path") becomes
    /// origin-form with Host set to its authority. A fragment, userinfo, another scheme or anything else is
    /// refused.
    private static func normaliseTarget(_ head: inout HTTPRequestHead) -> Refusal? {
        let target = head.uri.utf8
        if target.contains(UInt8(ascii: "#")) { return Refusal(.badRequest, "fragment in request target\n") }
        if target.first == UInt8(ascii: "/") { return nil }
        if head.uri == "*", head.method == .OPTIONS { return nil }
        let scheme: Int
        if hasPrefixIgnoringCase(target, "http://") {
            scheme = 7
        } else if hasPrefixIgnoringCase(target, "https://") {
            scheme = 8
        } else {
            return Refusal(.badRequest, "invalid request target\n")
        }
        let rest = head.uri.utf8.dropFirst(scheme)
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? rest.endIndex
        let authority = Substring(rest[rest.startIndex..<authorityEnd])
        guard isAuthority(authority) else {
            return Refusal(.badRequest, "invalid authority in request target\n")
        }
        let path = Substring(rest[authorityEnd...])
        head.uri = path.utf8.first == UInt8(ascii: "/") ? String(path) : "/" + path
        // RFC 9112 3.2.2: the target's authority wins over any Host the client sent.
        head.headers.replaceOrAdd(name: "host", value: String(authority))
        return nil
    }

    /// host[:port]: a name (letters, digits, '-', '.', '_') or an IP literal (IPv6 in brackets), and a port of
    /// digits only. No userinfo, no list, no spaces: what a Host header may carry.
    package static func isAuthority(_ text: Substring) -> Bool {
        // Over the string's own bytes (a native string lends them): indexing a Substring's UTF-8 view was ~780
        // instructions for a `localhost:8443` on every request.
        if let answer = text.utf8.withContiguousStorageIfAvailable({ isAuthority(UnsafeRawBufferPointer($0)) }) { return answer }
        var copy = String(text)
        return copy.withUTF8 { isAuthority(UnsafeRawBufferPointer($0)) }
    }

    private static func isAuthority(_ host: UnsafeRawBufferPointer) -> Bool {
        func isPort(_ from: Int) -> Bool {
            let count = host.count - from
            guard count > 0, count <= 5 else { return false }
            for i in from..<host.count where !(host[i] >= 48 && host[i] <= 57) { return false }
            return true
        }
        if host.first == UInt8(ascii: "[") {
            guard let close = host.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return false }
            for i in 1..<close {
                let byte = host[i]
                guard byte == 58 || byte == 46 || (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 102) else { return false }
            }
            if close + 1 == host.count { return true }
            return host[close + 1] == UInt8(ascii: ":") && isPort(close + 2)
        }
        // One pass: name bytes up to the first colon, then a port (a second colon is not a port digit).
        var i = 0
        while i < host.count {
            let byte = host[i]
            if byte == UInt8(ascii: ":") { return i > 0 && isPort(i + 1) }
            guard isNameByte(byte) else { return false }
            i += 1
        }
        return i > 0
    }

    /// Letters, digits, `-`, `.` and `_`.
    @inline(__always)
    private static func isNameByte(_ byte: UInt8) -> Bool {
        if byte < 64 { return (0x03FF_6000_0000_0000 as UInt64) >> UInt64(byte) & 1 == 1 }
        if byte < 128 { return (0x07FF_FFFE_87FF_FFFE as UInt64) >> UInt64(byte - 64) & 1 == 1 }
        return false
    }

    private static func hasPrefixIgnoringCase(_ text: String.UTF8View, _ lowercase: StaticString) -> Bool {
        ProxyHeaders.equalsIgnoringCase(Substring(text.prefix(lowercase.utf8CodeUnitCount)), lowercase)
    }
}
