extension GatewayRequest {
    /// Sets a request header (in on_request_headers) or a response header (in on_response_headers).
    @discardableResult
    public func setHeader(_ name: String, _ value: String) -> gw_status {
        withGWStr(name) { n in withGWStr(value) { v in setHeader(n, v) } }
    }

    /// Adds one more value of a request header (in on_request_headers) or response header (in
    /// on_response_headers), keeping the values it has.
    @discardableResult
    public func addHeader(_ name: String, _ value: String) -> gw_status {
        withGWStr(name) { n in withGWStr(value) { v in addHeader(n, v) } }
    }

    /// Removes every value of a request header (in on_request_headers) or response header (in
    /// on_response_headers), in any case. Removing an absent header succeeds.
    @discardableResult
    public func removeHeader(_ name: String) -> gw_status {
        withGWStr(name) { removeHeader($0) }
    }

    /// Answers the request from on_request_headers; takes effect when the hook then returns GW_STOP.
    @discardableResult
    public func respond(status: Int, headers: [(String, String)] = [], body: String = "") -> gw_status {
        // Keep every string's bytes alive for the call: the host copies them.
        let names = headers.map { Array($0.0.utf8) }, values = headers.map { Array($0.1.utf8) }
        let bodyBytes = Array(body.utf8)
        return withViews(names) { nameViews in
            withViews(values) { valueViews in
                let table = zip(nameViews, valueViews).map { gw_header(name: $0, value: $1) }
                return table.withUnsafeBufferPointer { entries in
                    withGWStr(bodyBytes) { PluginHost.api.pointee.respond(handle, UInt32(clamping: status), entries.baseAddress, entries.count, $0) }
                }
            }
        }
    }
}

/// Runs `body` with views of every byte array (kept alive for the call).
private func withViews<T>(_ arrays: [[UInt8]], _ body: ([gw_str]) -> T) -> T {
    func go(_ index: Int, _ views: [gw_str]) -> T {
        guard index < arrays.count else { return body(views) }
        return arrays[index].withUnsafeBufferPointer { go(index + 1, views + [gw_str($0)]) }
    }
    return go(0, [])
}
