/// What a head of one kind (request or response) is made of, for `HTTP1Parser`: how to parse a complete head
/// and which framing its body has. The lines, the body and its framing are the parser's.
package protocol HTTP1HeadParsing {
    associatedtype Head

    /// Parses a complete head `raw[start..<end]` (every line ended by CRLF, the last one empty): the head, its
    /// body's framing and what its Connection fields say.
    func parse(
        _ raw: UnsafeRawBufferPointer, start: Int, end: Int, maxFields: Int
    ) -> Result<(Head, HTTP1Framing, HTTP1ConnectionOptions), HTTP1ParseError>

    /// A head was parsed with this framing and these Connection options (and delivered, unless `.skip`).
    mutating func parsed(_ framing: HTTP1Framing, connection: HTTP1ConnectionOptions)
}

/// How the body after a head is delimited (RFC 9112 6.3).
package enum HTTP1Framing: Equatable, Sendable {
    /// No body: the end follows the head.
    case none
    case length(Int64)
    case chunked
    /// A response body that ends when the connection does.
    case untilClose
    /// An interim (1xx) response: not delivered; the next head follows.
    case skip
    /// A 101 response: delivered with its end, and nothing after it is parsed.
    case upgrade
}
