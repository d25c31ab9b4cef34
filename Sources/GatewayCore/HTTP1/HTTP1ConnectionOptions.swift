import NIOHTTP1

/// What a head's Connection fields say, read from the bytes while the head is parsed: whether the message
/// leaves its connection open, and which other fields they name as hop-by-hop (RFC 9110 7.6.1). NIO's
/// `isKeepAlive` and the String-based removal of hop-by-hop fields cost ~10,000 instructions on a backend's
/// `Connection: keep-alive` response; these facts are a byte comparison per Connection element.
package struct HTTP1ConnectionOptions: Equatable, Sendable {
    /// A `close` element.
    package var close = false
    /// How many `keep-alive` elements.
    package var keepAlives = 0
    /// The other names the Connection fields list (as sent; removal ignores ASCII case only), but `host` and
    /// `content-length`, which
    /// Connection may never remove (they route and frame the message). Empty for all but unusual senders.
    package var listed: [String] = []
    /// An HTTP/1.0 message with a Transfer-Encoding field: RFC 9112 6.1 has the recipient close the connection
    /// after it, whatever the Connection fields say (set by the response heads).
    package var closeAfterMessage = false

    package init() {}

    /// Whether the message leaves its connection open, exactly as NIO's `HTTPHeaders.isKeepAlive(version:)`
    /// decides: a `close` closes, one `keep-alive` keeps open and two close; otherwise HTTP/1.1 keeps open.
    package func isKeepAlive(version: HTTPVersion) -> Bool {
        if close || keepAlives > 1 { return false }
        if keepAlives == 1 { return true }
        return version.major == 1 && version.minor >= 1
    }

    /// Takes the value of one Connection field: its comma-separated elements without the spaces and tabs
    /// around them.
    mutating func take(_ value: UnsafeRawBufferPointer) {
        // The usual values, one element without whitespace (the parser trimmed the value's ends).
        if HTTP1Syntax.equalsIgnoringCase(value, "keep-alive") {
            keepAlives += 1
            return
        }
        if HTTP1Syntax.equalsIgnoringCase(value, "close") {
            close = true
            return
        }
        var i = 0
        while i <= value.count {
            var end = i
            while end < value.count, value[end] != 44 { end += 1 }
            var (s, e) = (i, end)
            while s < e, value[s] == 32 || value[s] == 9 { s += 1 }
            while e > s, value[e - 1] == 32 || value[e - 1] == 9 { e -= 1 }
            let element = UnsafeRawBufferPointer(rebasing: value[s..<e])
            if HTTP1Syntax.equalsIgnoringCase(element, "close") {
                close = true
            } else if HTTP1Syntax.equalsIgnoringCase(element, "keep-alive") {
                keepAlives += 1
            } else if !element.isEmpty, !HTTP1Syntax.equalsIgnoringCase(element, "host"),
                !HTTP1Syntax.equalsIgnoringCase(element, "content-length") {
                // Not lowercased: Unicode case mapping would turn a KELVIN SIGN into `k` and name another field.
                listed.append(String(decoding: element, as: UTF8.self))
            }
            i = end + 1
        }
    }

    /// Whether `name` (any case) is a hop-by-hop field by itself: Connection, Keep-Alive, Proxy-Connection, TE,
    /// Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate, Proxy-Authorization (`ProxyHeaders.isHopByHop`
    /// on bytes).
    static func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 2: return HTTP1Syntax.equalsIgnoringCase(name, "te")
        case 7: return HTTP1Syntax.equalsIgnoringCase(name, "trailer") || HTTP1Syntax.equalsIgnoringCase(name, "upgrade")
        case 10: return HTTP1Syntax.equalsIgnoringCase(name, "connection") || HTTP1Syntax.equalsIgnoringCase(name, "keep-alive")
        case 16: return HTTP1Syntax.equalsIgnoringCase(name, "proxy-connection")
        case 17: return HTTP1Syntax.equalsIgnoringCase(name, "transfer-encoding")
        case 18: return HTTP1Syntax.equalsIgnoringCase(name, "proxy-authenticate")
        case 19: return HTTP1Syntax.equalsIgnoringCase(name, "proxy-authorization")
        default: return false
        }
    }
}
