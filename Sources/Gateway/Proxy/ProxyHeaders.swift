import NIOHTTP1

/// How the gateway rewrites headers between client and backend: hop-by-hop headers removed (RFC 9110 7.6.1,
/// including those the Connection header names), X-Forwarded-* set from what the gateway itself saw.
enum ProxyHeaders {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authenticate", "proxy-authorization",
    ]

    /// Removes hop-by-hop headers in place. One pass over the names finds whether there is anything to remove
    /// (usually not: HTTP/1.1 clients seldom send any), so the common case costs a length check per header.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        guard headers.contains(where: { isHopByHop($0.name) }) else { return }
        var names: [String] = []
        for (name, value) in headers where isHopByHop(name) {
            names.append(name)
            guard name.utf8.count == 10, name.lowercased() == "connection" else { continue }
            for token in value.split(separator: ",") {
                let listed = token.trimmingCharacters(in: .whitespaces).lowercased()
                if !listed.isEmpty, listed != "close", listed != "keep-alive" { names.append(listed) }
            }
        }
        for name in names where headers.contains(name: name) { headers.remove(name: name) }
    }

    /// Whether `name` (any case) is one of `hopByHop`; lengths are compared first.
    @inline(__always)
    static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: return name.lowercased() == "te"
        case 7: let lower = name.lowercased(); return lower == "trailer" || lower == "upgrade"
        case 10: let lower = name.lowercased(); return lower == "connection" || lower == "keep-alive"
        case 16: return name.lowercased() == "proxy-connection"
        case 17: return name.lowercased() == "transfer-encoding"
        case 18: return name.lowercased() == "proxy-authenticate"
        case 19: return name.lowercased() == "proxy-authorization"
        default: return false
        }
    }

    /// The request head sent to the backend. The client's Host is preserved.
    static func upstreamRequest(
        _ head: HTTPRequestHead, clientIP: String, scheme: String, localPort: Int?
    ) -> HTTPRequestHead {
        var headers = head.headers
        removeHopByHop(&headers)
        headers.remove(name: "expect")
        let host = head.headers.first(name: "host")
        let previous = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        headers.replaceOrAdd(name: "x-forwarded-for", value: previous.isEmpty ? clientIP : "\(previous), \(clientIP)")
        headers.replaceOrAdd(name: "x-forwarded-proto", value: scheme)
        if let localPort { headers.replaceOrAdd(name: "x-forwarded-port", value: String(localPort)) } else { headers.remove(name: "x-forwarded-port") }
        if let host { headers.replaceOrAdd(name: "x-forwarded-host", value: host) } else { headers.remove(name: "x-forwarded-host") }
        var upstream = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri, headers: headers)
        upstream.version = .http1_1
        return upstream
    }

    /// The response head sent to the client.
    static func downstreamResponse(_ head: HTTPResponseHead, version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = head.headers
        removeHopByHop(&headers)
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: head.status, headers: headers)
    }
}
