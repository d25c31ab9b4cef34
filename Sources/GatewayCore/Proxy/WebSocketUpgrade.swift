import NIOCore
import NIOHTTP1

/// The HTTP/1.1 WebSocket opening handshake as the proxy sees it (RFC 6455 4.1): which requests it tunnels, and
/// the two hop-by-hop fields it puts back on the way to the backend and to the client. Upgrade and Connection
/// are hop-by-hop, removed from every request and response like the others; only a WebSocket upgrade that
/// the listener tunnels gets them again, written by the gateway (never the client's own values).
package enum WebSocketUpgrade {
    /// Whether `head` asks for a WebSocket: GET, HTTP/1.1, no body, `Upgrade: websocket` (that token alone,
    /// any case) and `upgrade` among its Connection elements (`connection`, what the parser read of them).
    /// Every other Upgrade (h2c, TLS/1.0, a list of tokens) is not one: the field is removed and the request
    /// goes on as plain HTTP.
    package static func isRequested(_ head: ClientRequestHead, connection: HTTP1ConnectionOptions, hasBody: Bool) -> Bool {
        guard head.method == .GET, head.version.minor == 1, !hasBody else { return false }
        guard connection.listed.contains(where: { $0.utf8.count == 7 && ProxyHeaders.equalsIgnoringCase(Substring($0), "upgrade") }) else {
            return false
        }
        var upgrades = 0
        var websocket = false
        head.fields.forEach { name, value in
            if name.count == 7, HTTP1Syntax.equalsIgnoringCase(name, "upgrade") {
                upgrades += 1
                websocket = HTTP1Syntax.equalsIgnoringCase(value, "websocket")
            }
            return true
        }
        return upgrades == 1 && websocket
    }

    /// The fields that go with an upgrade request to the backend, and with its 101 to the client.
    package static let fields = "connection: upgrade\r\nupgrade: websocket\r\n"

    /// `head` (the upstream head the proxy made, without hop-by-hop fields) with the upgrade's fields added.
    package static func addingFields(to head: UpstreamRequestPart) -> UpstreamRequestPart {
        switch head {
        case .serializedHead(var bytes, let chunked, let isHEAD):
            // The head ends with its blank line: the fields go before it.
            bytes.moveWriterIndex(to: bytes.writerIndex - 2)
            bytes.writeString(fields)
            bytes.writeStaticString("\r\n")
            return .serializedHead(bytes, chunked: chunked, isHEAD: isHEAD)
        case .head(var upstream):
            upstream.head.headers.add(name: "connection", value: "upgrade")
            upstream.head.headers.add(name: "upgrade", value: "websocket")
            return .head(upstream)
        case .body, .end:
            return head
        }
    }

    /// The backend's 101 (its hop-by-hop fields already removed) with the upgrade's fields added.
    package static func addingFields(to head: HTTPResponseHead) -> HTTPResponseHead {
        var head = head
        head.headers.replaceOrAdd(name: "connection", value: "upgrade")
        head.headers.replaceOrAdd(name: "upgrade", value: "websocket")
        return head
    }
}
