import NIOHTTP1

/// Why `HTTP1RequestParser` refused what a client sent, and the status it is answered with. Nothing of a
/// request the parser refuses reaches a plugin or a backend.
package struct HTTP1ParseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The reasons, named as in the `reason` label of `gateway_request_parse_errors_total`.
    package enum Reason: String, CaseIterable, Sendable {
        case requestLine = "request_line"
        case method
        case target
        case version
        case unsupportedVersion = "unsupported_version"
        case lineEnding = "line_ending"
        case fieldName = "field_name"
        case fieldValue = "field_value"
        case obsFold = "obs_fold"
        case tooManyFields = "too_many_fields"
        case headTooLarge = "head_too_large"
        case contentLength = "content_length"
        case transferEncoding = "transfer_encoding"
        case lengthAndEncoding = "length_and_encoding"
        case chunkSize = "chunk_size"
        case chunkEnd = "chunk_end"
        case trailers
        /// Responses only: a status line that is not `HTTP/1.x NNN reason`.
        case statusLine = "status_line"
        /// Responses only: the connection closed in the middle of a message.
        case truncated
        /// Responses only: a response when no request waits for one.
        case unsolicited

        /// The reasons a request can be refused for (the `reason` label values of the metric).
        package static let requestReasons = allCases.filter { $0 != .statusLine && $0 != .truncated && $0 != .unsolicited }

        package var message: String {
            switch self {
            case .requestLine: return "invalid request line"
            case .method: return "unknown method"
            case .target: return "invalid byte in the request target"
            case .version: return "invalid HTTP version"
            case .unsupportedVersion: return "HTTP version not supported"
            case .lineEnding: return "line not ended by CRLF"
            case .fieldName: return "invalid header name"
            case .fieldValue: return "invalid byte in a header value"
            case .obsFold: return "folded header line"
            case .tooManyFields: return "too many header fields"
            case .headTooLarge: return "request head or trailer section too large"
            case .contentLength: return "invalid or repeated Content-Length"
            case .transferEncoding: return "Transfer-Encoding whose last coding is not chunked"
            case .lengthAndEncoding: return "both Content-Length and Transfer-Encoding"
            case .chunkSize: return "invalid chunk size line"
            case .chunkEnd: return "chunk data not followed by CRLF"
            case .trailers: return "invalid trailer field"
            case .statusLine: return "invalid status line"
            case .truncated: return "connection closed in the middle of a message"
            case .unsolicited: return "a response no request asked for"
            }
        }
    }

    package var reason: Reason

    package init(_ reason: Reason) { self.reason = reason }

    /// 431 for a head with too many fields or bytes, 505 for a well-formed version other than 1.0 and 1.1, 400
    /// for everything else.
    package var status: HTTPResponseStatus {
        switch reason {
        case .tooManyFields, .headTooLarge: return .requestHeaderFieldsTooLarge
        case .unsupportedVersion: return .httpVersionNotSupported
        default: return .badRequest
        }
    }

    package var description: String { reason.message }
}
