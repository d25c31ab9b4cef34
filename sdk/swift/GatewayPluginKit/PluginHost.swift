@_exported import PluginAPI

/// The host's function table, stored by a plugin's entry point. Set once, before any other call.
public enum PluginHost {
    /// Written once by the entry point before any hook runs, then only read, from any thread: no dynamic
    /// exclusivity check (one per host call otherwise, ~80 instructions each in `bench/run profile`).
    @exclusivity(unchecked) nonisolated(unsafe) public static var api: UnsafePointer<gw_host_api>!

    /// Whether the host's table has `member` (a host function added after the minor version the plugin
    /// requires): `GW_HOST_HAS` in Swift.
    public static func has<T>(_ member: KeyPath<gw_host_api, T>) -> Bool {
        guard let offset = MemoryLayout<gw_host_api>.offset(of: member) else { return false }
        return Int(api.pointee.struct_size) >= offset + MemoryLayout<T>.size
    }

    /// Whether the host keeps per-connection data (ABI 1.4 `set_connection_data`), read once.
    public static let hasConnectionData: Bool = has(\.get_connection_data)

    /// Whether the host reads several attributes in one call (ABI 1.6 `get_attributes`), read once.
    public static let hasAttributeBatch: Bool = has(\.get_attributes)

    /// Tells the host whether the instance `tag` can do its work (ABI 1.3 `set_ready`): not ready, with a
    /// reason, takes the gateway out through the admin listener's `/readyz` until it is ready again. Any
    /// thread. False when the host is older than 1.3 (nothing is reported) or does not know the tag.
    @discardableResult
    public static func setReady(_ tag: UInt64, _ ready: Bool, reason: String = "") -> Bool {
        guard has(\.set_ready) else { return false }
        return withGWStr(reason) { api.pointee.set_ready(tag, ready ? 1 : 0, $0) } == GW_OK
    }

    /// Logs through the gateway's logger, tagged with the plugin and listener of `tag` (0: process-wide).
    public static func log(_ tag: UInt64, _ level: gw_log_level, _ message: String) {
        var message = message
        message.withUTF8 { api.pointee.log(tag, level, gw_str($0)) }
    }
}

extension gw_str {
    /// A view of bytes the caller keeps alive for as long as the view is used.
    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.init(ptr: bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, len: bytes.count)
    }

    /// The viewed bytes (empty for a NULL view).
    public var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: ptr, count: ptr == nil ? 0 : len)
    }

    /// A copy as a Swift string (invalid UTF-8 is repaired).
    public var string: String { String(decoding: buffer, as: UTF8.self) }
}

/// Runs `body` with a view of the string's UTF-8 bytes.
@inlinable
public func withGWStr<T>(_ string: String, _ body: (gw_str) -> T) -> T {
    var string = string
    return string.withUTF8 { body(gw_str($0)) }
}

/// Runs `body` with a view of `bytes`.
@inlinable
public func withGWStr<T>(_ bytes: [UInt8], _ body: (gw_str) -> T) -> T {
    bytes.withUnsafeBufferPointer { body(gw_str($0)) }
}

/// A request (or connection) handle with typed access to the host functions. Valid only inside the hook.
public struct GatewayRequest {
    public let handle: gw_handle

    public init(_ handle: gw_handle) { self.handle = handle }

    /// A view of a string or bytes attribute, valid until the hook returns.
    public func attribute(_ attribute: gw_attribute, index: UInt32 = 0) -> gw_str? {
        var out = gw_str(ptr: nil, len: 0)
        return PluginHost.api.pointee.get_attribute(handle, attribute, index, &out) == GW_OK ? out : nil
    }

    public func string(_ attribute: gw_attribute, index: UInt32 = 0) -> String? {
        self.attribute(attribute, index: index)?.string
    }

    /// Every value of an indexed attribute (SANs, chain certificates).
    public func strings(_ attribute: gw_attribute) -> [String] {
        var values: [String] = []
        var index: UInt32 = 0
        while let value = self.attribute(attribute, index: index) {
            values.append(value.string)
            index += 1
        }
        return values
    }

    /// Every value of one attribute of the client certificate's subject (`GW_DN_SUBJECT`) or issuer, decoded
    /// from the certificate by the gateway (`get_dn_value`): `dnValues(GW_DN_SUBJECT, "OU")`. `type` is a short
    /// name ("CN", "OU", "O", ...; any case) or a dotted OID. Prefer it to parsing `clientCertificate.subject`
    /// text for authorization decisions.
    public func dnValues(_ which: gw_dn, _ type: String) -> [String] {
        var values: [String] = []
        var index: UInt32 = 0
        var out = gw_str(ptr: nil, len: 0)
        while withGWStr(type, { PluginHost.api.pointee.get_dn_value(handle, which, $0, index, &out) }) == GW_OK {
            values.append(out.string)
            index += 1
        }
        return values
    }

    public func integer(_ attribute: gw_attribute) -> Int64? {
        var out: Int64 = 0
        return PluginHost.api.pointee.get_attribute_int(handle, attribute, &out) == GW_OK ? out : nil
    }

    public func header(_ name: String, index: UInt32 = 0) -> String? {
        var out = gw_str(ptr: nil, len: 0)
        let status = withGWStr(name) { PluginHost.api.pointee.get_header(handle, $0, index, &out) }
        return status == GW_OK ? out.string : nil
    }

    /// Calls `body` with the name and value views of every header, in order.
    public func forEachHeader(_ body: (gw_str, gw_str) -> Void) {
        var index: UInt32 = 0
        var name = gw_str(ptr: nil, len: 0), value = gw_str(ptr: nil, len: 0)
        while PluginHost.api.pointee.get_header_at(handle, index, &name, &value) == GW_OK {
            body(name, value)
            index += 1
        }
    }

    @discardableResult
    public func setHeader(_ name: gw_str, _ value: gw_str) -> gw_status {
        PluginHost.api.pointee.set_header(handle, name, value)
    }

    /// Adds one more value of a header, keeping any the request already has (cheaper than `setHeader` when the
    /// plugin removed the header itself first).
    @discardableResult
    public func addHeader(_ name: gw_str, _ value: gw_str) -> gw_status {
        PluginHost.api.pointee.add_header(handle, name, value)
    }

    /// Adds several headers with one host call (ABI 1.2 `add_headers`): all of them, in order, or none if one
    /// breaks the header rules. On a 1.0 or 1.1 host, one `add_header` each (then those before a bad one stay).
    /// Probed once (the table does not change for the life of the process).
    private static let hostHasAddHeaders = PluginHost.has(\.add_headers)

    @discardableResult
    public func addHeaders(_ headers: UnsafeBufferPointer<gw_header>) -> gw_status {
        // Each member read on its own: a 1.0 or 1.1 host's table ends before `add_headers`, so copying the
        // whole (1.2-sized) struct would read past it.
        if Self.hostHasAddHeaders { return PluginHost.api.pointee.add_headers(handle, headers.baseAddress, headers.count) }
        for header in headers {
            let status = PluginHost.api.pointee.add_header(handle, header.name, header.value)
            guard status == GW_OK else { return status }
        }
        return GW_OK
    }

    @discardableResult
    public func removeHeader(_ name: gw_str) -> gw_status {
        PluginHost.api.pointee.remove_header(handle, name)
    }

    @discardableResult
    public func setVar(_ name: String, _ value: String) -> gw_status {
        withGWStr(name) { n in withGWStr(value) { v in PluginHost.api.pointee.set_var(handle, n, v) } }
    }

    public func variable(_ name: String) -> String? {
        var out = gw_str(ptr: nil, len: 0)
        let status = withGWStr(name) { PluginHost.api.pointee.get_var(handle, $0, &out) }
        return status == GW_OK ? out.string : nil
    }

    /// A view of variable `name`'s value, valid until the hook returns: no String made of the name or the value
    /// (for a hook that reads one on every request).
    public func variableView(_ name: StaticString) -> gw_str? {
        var out = gw_str(ptr: nil, len: 0)
        let status = name.withUTF8Buffer { PluginHost.api.pointee.get_var(handle, gw_str($0), &out) }
        return status == GW_OK ? out : nil
    }
}
