import NIOHTTP1

/// How the gateway rewrites headers between client and backend: hop-by-hop headers removed (RFC 9110 7.6.1,
/// including those the Connection header names), X-Forwarded-* set from what the gateway itself saw.
package enum ProxyHeaders {
    /// Removes hop-by-hop headers in place. One pass over the names finds whether there is anything to remove
    /// (usually not: HTTP/1.1 clients seldom send any), so the common case costs a length check per header.
    package static func removeHopByHop(_ headers: inout HTTPHeaders) {
        guard headers.contains(where: { isHopByHop($0.name) }) else { return }
        var names: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            names.append(name)
            guard equalsIgnoringCase(Substring(name), "connection") else { continue }
            for token in value.split(separator: ",") {
                let listed = trimmed(token)
                // Connection may not name what frames or routes the message: Host and Content-Length stay
                // (Transfer-Encoding is hop-by-hop anyway, and re-framed).
                if !listed.isEmpty, !equalsIgnoringCase(listed, "close"), !equalsIgnoringCase(listed, "keep-alive"),
                    !equalsIgnoringCase(listed, "host"), !equalsIgnoringCase(listed, "content-length") {
                    names.append(String(listed))
                }
            }
        }
        for name in names where headers.contains(name: name) { headers.remove(name: name) }
    }

    /// Whether `name` (any case) is a hop-by-hop header: Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
    /// Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization. Lengths are compared first, nothing
    /// is allocated.
    @inline(__always)
    package static func isHopByHop(_ name: String) -> Bool {
        let s = Substring(name)
        switch name.utf8.count {
        case 2: return equalsIgnoringCase(s, "te")
        case 7: return equalsIgnoringCase(s, "trailer") || equalsIgnoringCase(s, "upgrade")
        case 10: return equalsIgnoringCase(s, "connection") || equalsIgnoringCase(s, "keep-alive")
        case 16: return equalsIgnoringCase(s, "proxy-connection")
        case 17: return equalsIgnoringCase(s, "transfer-encoding")
        case 18: return equalsIgnoringCase(s, "proxy-authenticate")
        case 19: return equalsIgnoringCase(s, "proxy-authorization")
        default: return false
        }
    }

    /// ASCII case-insensitive equality with a lowercase literal.
    package static func equalsIgnoringCase(_ text: Substring, _ lowercase: StaticString) -> Bool {
        guard text.utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            // Native strings (all of NIO's) lend their bytes: a plain loop, no iterator per byte.
            if let equal = text.utf8.withContiguousStorageIfAvailable({ bytes in
                for i in 0..<bytes.count where (bytes[i] >= 65 && bytes[i] <= 90 ? bytes[i] | 0x20 : bytes[i]) != expected[i] { return false }
                return true
            }) {
                return equal
            }
            return zip(text.utf8, expected).allSatisfy { byte, wanted in (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) == wanted }
        }
    }

    /// Without leading and trailing spaces and tabs.
    package static func trimmed(_ text: Substring) -> Substring {
        var text = text
        while let first = text.utf8.first, first == 32 || first == 9 { text = text.dropFirst() }
        while let last = text.utf8.last, last == 32 || last == 9 { text = text.dropLast() }
        return text
    }

    /// The request head sent to the backend. The client's Host is preserved.
    /// `hopByHopRemoved`: the head already went through `removeHopByHop` (the plugins' view) and nothing added
    /// one since.
    package static func upstreamRequest(
        _ head: HTTPRequestHead, clientIP: String, scheme: String, localPort: Int?, hasBody: Bool, hopByHopRemoved: Bool = false
    ) -> HTTPRequestHead {
        var headers = head.headers
        if !hopByHopRemoved { removeHopByHop(&headers) }
        headers.remove(name: "expect")
        // What the gateway sets replaces what the client sent, and joins the head in one append (no
        // per-name ASCII scan: these names are the gateway's own).
        var added: [(String, String)] = []
        added.reserveCapacity(5)
        // The client's Transfer-Encoding is hop-by-hop and was removed: a body without a Content-Length is
        // re-framed as chunked here. NIO's encoder frames a GET/DELETE/OPTIONS body with neither header as raw
        // bytes, which a backend would read as the next request (smuggling).
        if hasBody && !headers.contains(name: "content-length") {
            headers.remove(name: "transfer-encoding")
            added.append(("transfer-encoding", "chunked"))
        }
        let host = head.headers.first(name: "host")
        let previous = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        headers.remove(name: "x-forwarded-for")
        added.append(("x-forwarded-for", previous.isEmpty ? clientIP : "\(previous), \(clientIP)"))
        headers.remove(name: "x-forwarded-proto")
        added.append(("x-forwarded-proto", scheme))
        headers.remove(name: "x-forwarded-port")
        if let localPort { added.append(("x-forwarded-port", String(localPort))) }
        headers.remove(name: "x-forwarded-host")
        if let host { added.append(("x-forwarded-host", host)) }
        headers.add(contentsOf: HTTPHeaders(added))
        var upstream = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
        upstream.version = .http1_1
        return upstream
    }

    /// The response head sent to the client.
    package static func downstreamResponse(_ head: HTTPResponseHead, version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = head.headers
        removeHopByHop(&headers)
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: head.status, headers: headers)
    }
}
