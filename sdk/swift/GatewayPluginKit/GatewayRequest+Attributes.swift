/// Several attributes in one host call (ABI 1.6 `get_attributes`), for a hook that reads many per request: one
/// call instead of one per attribute. Each entry answers what `attribute` or `integer` would.
///
///     withUnsafeTemporaryAllocation(of: gw_attribute_value.self, capacity: 2) { values in
///         values.initializeElement(at: 0, to: gw_attribute_value(GW_ATTR_METHOD))
///         values.initializeElement(at: 1, to: gw_attribute_value(GW_ATTR_RESPONSE_STATUS))
///         guard request.read(values) else { return }
///         let method = values[0].textValue, status = values[1].integerValue
///     }
extension GatewayRequest {
    /// Fills every entry of `values` (its `attribute` and `index` set by the caller). On a host older than ABI
    /// 1.6, `readOneByOne`. False when the handle is not the running hook's (the entries are then not read);
    /// an empty list asks the host nothing (true).
    @discardableResult
    public func read(_ values: UnsafeMutableBufferPointer<gw_attribute_value>) -> Bool {
        guard !values.isEmpty else { return true }
        guard PluginHost.hasAttributeBatch else { return readOneByOne(values) }
        return PluginHost.api.pointee.get_attributes(handle, values.baseAddress, values.count) == GW_OK
    }

    /// What `read` does on a host older than ABI 1.6: one `get_attribute` per entry and, for one it does not
    /// find at index 0, `get_attribute_int` (two calls for an integer attribute or an absent value). False on a
    /// stale handle; an empty list asks the host nothing (true).
    @discardableResult
    public func readOneByOne(_ values: UnsafeMutableBufferPointer<gw_attribute_value>) -> Bool {
        let host = PluginHost.api.pointee
        for i in values.indices {
            var text = gw_str(ptr: nil, len: 0)
            var integer: Int64 = 0
            var status = host.get_attribute(handle, values[i].attribute, values[i].index, &text)
            if status == GW_ERR_STALE_HANDLE { return false }
            if status != GW_OK {
                text = gw_str(ptr: nil, len: 0)
                if status == GW_ERR_NOT_FOUND, values[i].index == 0, host.get_attribute_int(handle, values[i].attribute, &integer) == GW_OK {
                    status = GW_OK
                } else {
                    integer = 0
                }
            }
            values[i].status = status
            values[i].text = text
            values[i].integer = integer
        }
        return true
    }
}

extension gw_attribute_value {
    /// An entry asking for `attribute` (its `index`-th value, for an indexed one).
    public init(_ attribute: gw_attribute, index: UInt32 = 0) {
        self.init(attribute: attribute, index: index, status: GW_ERR_NOT_FOUND, reserved: 0, text: gw_str(ptr: nil, len: 0), integer: 0)
    }

    /// The value of a string or bytes attribute, if it was found: a view valid until the hook returns.
    public var textValue: gw_str? { status == GW_OK ? text : nil }

    /// The value of an integer attribute, if it was found.
    public var integerValue: Int64? { status == GW_OK ? integer : nil }
}
