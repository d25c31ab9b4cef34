/// Per-connection data (ABI 1.4 `set_connection_data` / `get_connection_data`): an object an instance keeps with
/// a connection and reuses for each of its requests, for what it derives once per connection (a prepared header
/// list, a log line's connection fields). Everything a connection handle shows (listener, client address, TLS
/// parameters, the client certificate) stays the same while the connection lives, with one exception: its
/// verification result, when an open connection is found revoked after a reload (`on_connection` runs again,
/// and its next request is refused before any hook).
///
/// The host retains nothing: `setConnectionData` retains the object for the host and the host's release call
/// drops it, when the value is replaced, when the connection ends (before the instance's `destroy`), or when a
/// reload moves the connection on to new instances. Treat it as a cache: `connectionData` is nil on a
/// connection's first request, after a release, on a host older than 1.4, and in a blocking
/// `on_request_headers` (worker thread), where the host refuses both calls.
///
///     let headers = request.connectionData(tag) { ConnectionHeaders(request) }
extension GatewayRequest {
    /// The object instance `tag` keeps for this handle's connection, if any. `Value` must be the type that was
    /// set for `tag` (an instance keeps one type per tag).
    @inlinable
    public func connectionData<Value: AnyObject>(_ tag: UInt64, as type: Value.Type = Value.self) -> Value? {
        guard PluginHost.hasConnectionData else { return nil }
        var out: UnsafeMutableRawPointer?
        guard PluginHost.api.pointee.get_connection_data(handle, tag, &out) == GW_OK, let out else { return nil }
        return Unmanaged<Value>.fromOpaque(out).takeUnretainedValue()
    }

    /// Keeps `value` with the connection for instance `tag` (nil drops what is kept). False when the host
    /// cannot keep it: older than ABI 1.4, a blocking hook, a stale handle, a tag of 0.
    @discardableResult
    public func setConnectionData<Value: AnyObject>(_ tag: UInt64, _ value: Value?) -> Bool {
        guard PluginHost.hasConnectionData else { return false }
        let host = PluginHost.api.pointee
        guard let value else { return host.set_connection_data(handle, tag, nil, nil) == GW_OK }
        // The same object again: the host keeps it already (and holds its one retain).
        var kept: UnsafeMutableRawPointer?
        if host.get_connection_data(handle, tag, &kept) == GW_OK, kept == Unmanaged.passUnretained(value).toOpaque() { return true }
        let pointer = Unmanaged.passRetained(value).toOpaque()
        guard host.set_connection_data(handle, tag, pointer, releaseConnectionData) == GW_OK else {
            Unmanaged<Value>.fromOpaque(pointer).release()
            return false
        }
        return true
    }

    /// The object instance `tag` keeps for this connection, made by `make` (and kept, where the host can) if
    /// there is none.
    @inlinable
    public func connectionData<Value: AnyObject>(_ tag: UInt64, make: () -> Value) -> Value {
        if let kept = connectionData(tag, as: Value.self) { return kept }
        let value = make()
        setConnectionData(tag, value)
        return value
    }
}

/// The release function `setConnectionData` hands the host: drops the retain it took.
private let releaseConnectionData: @convention(c) (UnsafeMutableRawPointer?) -> Void = { pointer in
    if let pointer { Unmanaged<AnyObject>.fromOpaque(pointer).release() }
}
