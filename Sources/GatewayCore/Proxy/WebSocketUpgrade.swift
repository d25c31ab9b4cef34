import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// The HTTP/1.1 WebSocket opening handshake as the proxy sees it (RFC 6455 4.1): which requests it tunnels, and
/// the two hop-by-hop fields it puts back on the way to the backend and to the client. Upgrade and Connection
/// are hop-by-hop, removed from every request and response like the others; only a WebSocket upgrade that
/// the listener tunnels gets them again, written by the gateway (never the client's own values).
package enum WebSocketUpgrade {
    /// If `head` asks for a WebSocket, the `Sec-WebSocket-Accept` its backend must answer with; nil otherwise.
    /// A WebSocket request is GET, HTTP/1.1, without a body, with `Upgrade: websocket` (that token alone, any
    /// case), `upgrade` among its Connection elements (`connection`, what the parser read of them) and one
    /// `Sec-WebSocket-Key`. Every other Upgrade (h2c, TLS/1.0, a list of tokens) is not one: the field is removed
    /// and the request goes on as plain HTTP.
    package static func expectedAccept(_ head: ClientRequestHead, connection: HTTP1ConnectionOptions, hasBody: Bool) -> String? {
        guard head.method == .GET, head.version.minor == 1, !hasBody else { return nil }
        guard connection.listed.contains(where: { $0.utf8.count == 7 && ProxyHeaders.equalsIgnoringCase(Substring($0), "upgrade") }) else {
            return nil
        }
        var upgrades = 0
        var websocket = false
        var keys: [String] = []
        head.fields.forEach { name, value in
            if name.count == 7, HTTP1Syntax.equalsIgnoringCase(name, "upgrade") {
                upgrades += 1
                websocket = HTTP1Syntax.equalsIgnoringCase(value, "websocket")
            } else if name.count == 17, HTTP1Syntax.equalsIgnoringCase(name, "sec-websocket-key") {
                keys.append(String(decoding: value, as: UTF8.self))
            }
            return true
        }
        guard upgrades == 1, websocket, keys.count == 1, !keys[0].isEmpty else { return nil }
        return accept(forKey: keys[0])
    }

    /// RFC 6455 4.2.2: base64 of the SHA-1 of the key and the protocol's GUID.
    package static func accept(forKey key: String) -> String {
        Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }

    /// Whether the backend's 101 really switched to the WebSocket protocol: its Connection named `upgrade`
    /// (`connection`), and its one `Sec-WebSocket-Accept` is the one the request's key asks for. A 101 that a
    /// backend answers without speaking WebSocket (an endpoint that echoes a status) would otherwise open a raw
    /// tunnel to it, past routing and the plugin chain for everything the client sends next.
    package static func switched(_ head: BackendResponseHead, connection: HTTP1ConnectionOptions, expectedAccept: String) -> Bool {
        guard connection.listed.contains(where: { $0.utf8.count == 7 && ProxyHeaders.equalsIgnoringCase(Substring($0), "upgrade") }) else {
            return false
        }
        var accepts = 0
        var matches = false
        var expected = expectedAccept
        expected.withUTF8 { expected in
            head.fields.forEach { name, value in
                if name.count == 20, HTTP1Syntax.equalsIgnoringCase(name, "sec-websocket-accept") {
                    accepts += 1
                    matches = value.elementsEqual(UnsafeRawBufferPointer(expected))
                }
                return true
            }
        }
        return accepts == 1 && matches
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
