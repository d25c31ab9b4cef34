import NIOHTTP1

/// A backend's response head as `HTTP1ResponseHeads` parsed it: the status, the version, and the fields as the
/// bytes the gateway forwards (`name: value CRLF` each, values without the whitespace around them, invalid
/// UTF-8 repaired as a `String` would repair it). The proxy writes a client's response head from these bytes
/// when nothing needs to read or change it (`DownstreamResponseEncoder.writeForwarded`); `nioHead` is the same
/// head as NIO's type, for plugins and the other paths.
package struct BackendResponseHead: Sendable, Equatable {
    package var version: HTTPVersion
    package var status: HTTPResponseStatus
    package var fields: HeaderBlock
    /// A Content-Length field is among the fields (the parser allows one at most).
    package var hasContentLength: Bool
    /// The parser left the hop-by-hop fields out (`HTTP1ResponseHeads.dropsHopByHop`) and Connection named no
    /// other field (which would have to go too): the fields may go to a client as they are.
    package var withoutHopByHop: Bool

    package init(version: HTTPVersion, status: HTTPResponseStatus, fields: HeaderBlock, hasContentLength: Bool, withoutHopByHop: Bool) {
        self.version = version
        self.status = status
        self.fields = fields
        self.hasContentLength = hasContentLength
        self.withoutHopByHop = withoutHopByHop
    }

    /// The fields as NIO's type (Strings).
    package var headers: HTTPHeaders { HTTPHeaders(fields.fields) }

    /// The head as NIO's type.
    package var nioHead: HTTPResponseHead { HTTPResponseHead(version: version, status: status, headers: headers) }
}
