import NIOHTTP1

/// A client's request head as `HTTP1RequestHeads` parsed it: the method, the version, the target, and the
/// fields as the bytes the gateway forwards (`name: value CRLF` each; a parsed value without the whitespace
/// around it, invalid UTF-8 repaired as a `String` would repair it), the request-side twin of
/// `BackendResponseHead`.
/// The proxy validates, routes, shows plugins and writes the upstream head from these bytes; no `String` is
/// made per field. `nioHead` is the same head as NIO's type, for the paths that change a head (an
/// absolute-form target, a plugin that sets or removes a header) and for tests; `init(_:)` makes one of
/// those again.
package struct ClientRequestHead: Sendable, Equatable {
    package var method: HTTPMethod
    package var version: HTTPVersion
    package var uri: String
    package var fields: HeaderBlock

    package init(method: HTTPMethod, version: HTTPVersion, uri: String, fields: HeaderBlock) {
        self.method = method
        self.version = version
        self.uri = uri
        self.fields = fields
    }

    /// The same head from NIO's type (a head the validator normalised or a plugin changed, tests, tools). Names
    /// must be tokens and values free of CR, LF and NUL, as the parser and the host functions make them: a
    /// field that is not is left out (a block's lines are found by their colon and CR).
    package init(_ head: HTTPRequestHead) {
        var fields = HeaderBlock()
        for (name, value) in head.headers where HeaderValidation.isValidName(name) && HeaderValidation.isValidValue(value) {
            fields.append(name: name, value: value)
        }
        self.init(method: head.method, version: head.version, uri: head.uri, fields: fields)
    }

    /// The fields as NIO's type (Strings): tests, and the paths that read or change a head as Strings (a request
    /// with Expect, one the one-pass upstream writer declines, a plugin's set or remove).
    package var headers: HTTPHeaders { HTTPHeaders(fields.fields) }

    /// The head as NIO's type.
    package var nioHead: HTTPRequestHead { HTTPRequestHead(version: version, method: method, uri: uri, headers: headers) }

    /// The head without its hop-by-hop fields and those its Connection fields name (what plugins see):
    /// `ProxyHeaders.removeHopByHop` on the bytes, the kept lines copied as they are.
    package func removingHopByHop() -> ClientRequestHead {
        var connection = HTTP1ConnectionOptions()
        var any = false
        fields.forEach { name, value in
            if HTTP1ConnectionOptions.isHopByHop(name) {
                any = true
                if HTTP1Syntax.equalsIgnoringCase(name, "connection") { connection.take(value) }
            }
            return true
        }
        guard any else { return self }
        let listed = connection.listed
        var kept = HeaderBlock(capacity: fields.bytes.count)
        fields.bytes.withUnsafeBytes { raw in
            HeaderBlock.forEachLine(in: raw) { name, _, line in
                if HTTP1ConnectionOptions.isHopByHop(name) { return true }
                for var other in listed where other.withUTF8({ HeaderBlock.sameIgnoringCase(name, UnsafeRawBufferPointer($0)) }) { return true }
                kept.append(lines: UnsafeRawBufferPointer(rebasing: raw[line]), count: 1)
                return true
            }
        }
        var head = self
        head.fields = kept
        return head
    }
}
