/// A header set (ABI 1.5 `header_set_create`): headers a plugin puts on many requests, checked and laid out by
/// the host once, and the header names the plugin owns. `request.add(set)` removes every header of the request
/// under an owned name (any case, `_` and `-` alike), then adds the set's headers: one host call, with no check,
/// copy or layout of the values per request. Immutable, so share it between threads, requests and
/// connections; keep it with a connection (`connectionData(tag, make:)`) or per identity. Freed when the last
/// reference goes.
///
///     let set = try HeaderSet(headers: [("x-client-subject", subject)], owned: ["x-client-subject"])
///     return request.add(set) == GW_OK ? GW_CONTINUE : GW_FAILED
public final class HeaderSet: @unchecked Sendable {
    /// The host's set; released once, in `deinit`.
    private let pointer: OpaquePointer

    /// Whether the host has header sets (ABI 1.5), read once.
    public static let isSupported: Bool = PluginHost.has(\.header_set_release)

    /// Why the host refused a set.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        /// GW_ERR_INVALID_HEADER (a name that is not a token, a value with NUL, CR or LF), GW_ERR_INVALID_ARGUMENT,
        /// or GW_ERR_WRONG_PHASE for a host older than ABI 1.5.
        public let status: gw_status
        public var description: String {
            switch status {
            case GW_ERR_INVALID_HEADER: return "a header name is not a token, or a value contains NUL, CR or LF"
            case GW_ERR_WRONG_PHASE: return "the gateway is older than plugin ABI 1.5 (no header sets)"
            default: return "the gateway refused the header set (status \(status))"
            }
        }
    }

    /// A set of `headers` (views the caller keeps alive for the call; the host copies them) that owns `owned`.
    /// Throws `Refusal`.
    public init(headers: UnsafeBufferPointer<gw_header>, owned: UnsafeBufferPointer<gw_str>) throws {
        pointer = try Self.create(headers, owned)
    }

    /// A set of Swift strings (made once: the views are built here). Throws `Refusal`.
    public init(headers: [(name: String, value: String)], owned: [String] = []) throws {
        // Every name and value in one array, viewed while it is pinned.
        var storage: [UInt8] = []
        var spans: [Range<Int>] = []
        for text in headers.flatMap({ [$0.name, $0.value] }) + owned {
            let start = storage.count
            storage.append(contentsOf: text.utf8)
            spans.append(start..<storage.count)
        }
        pointer = try storage.withUnsafeBufferPointer { bytes in
            func view(_ span: Range<Int>) -> gw_str { gw_str(UnsafeBufferPointer(rebasing: bytes[span])) }
            let list = headers.indices.map { gw_header(name: view(spans[2 * $0]), value: view(spans[2 * $0 + 1])) }
            let names = owned.indices.map { view(spans[2 * headers.count + $0]) }
            return try list.withUnsafeBufferPointer { list in try names.withUnsafeBufferPointer { try Self.create(list, $0) } }
        }
    }

    private static func create(_ headers: UnsafeBufferPointer<gw_header>, _ owned: UnsafeBufferPointer<gw_str>) throws -> OpaquePointer {
        guard isSupported else { throw Refusal(status: GW_ERR_WRONG_PHASE) }
        var out: OpaquePointer?
        let status = PluginHost.api.pointee.header_set_create(headers.baseAddress, headers.count, owned.baseAddress, owned.count, &out)
        guard status == GW_OK, let out else { throw Refusal(status: status == GW_OK ? GW_ERR_INTERNAL : status) }
        return out
    }

    deinit { PluginHost.api.pointee.header_set_release(pointer) }

    /// Adds the set to `handle`'s request (on_request_headers) or response (on_response_headers).
    @inline(__always)
    func add(to handle: gw_handle) -> gw_status {
        PluginHost.api.pointee.header_set_add(handle, pointer)
    }
}

extension GatewayRequest {
    /// Applies a header set (ABI 1.5 `header_set_add`): every header under a name the set owns removed, then
    /// the set's headers added. The request's headers in on_request_headers, the response's in
    /// on_response_headers; GW_ERR_WRONG_PHASE elsewhere.
    @discardableResult
    public func add(_ set: HeaderSet) -> gw_status {
        withExtendedLifetime(set) { set.add(to: handle) }
    }
}
