import GatewayPluginKit

/// One connection's identity headers as `add_headers` takes them, made on its first request: the list, and
/// the memory its views point into. The certificate's values are the identity's prepared ones (kept alive
/// here, whatever the identity cache evicts meanwhile); the connection's own (clientverify, ciphers, TLS
/// facts) are copied into one block. Three allocations (the object, the list and the block), once per
/// connection: the gateway keeps it with the connection (ABI 1.4) and releases it when the connection ends.
final class ConnectionHeaders {
    private let listMemory: UnsafeMutableBufferPointer<gw_header>
    private let count: Int
    private let values: UnsafeMutableRawBufferPointer
    private let prepared: PreparedHeaders?
    private let names: PreparedHeaders

    var list: UnsafeBufferPointer<gw_header> { UnsafeBufferPointer(start: listMemory.baseAddress, count: count) }

    /// `own(index)`: the host's view of field `index`'s value, for a field whose value comes from the
    /// connection (valid during the hook: copied here); nil when it has none.
    init(fields: [ClientCertHeaders.Field], names: PreparedHeaders, prepared: PreparedHeaders?, own: (Int) -> gw_str?) {
        self.names = names
        self.prepared = prepared
        let listMemory = UnsafeMutableBufferPointer<gw_header>.allocate(capacity: max(fields.count, 1))
        var used = 0
        let values = withUnsafeTemporaryAllocation(of: gw_str?.self, capacity: max(fields.count, 1)) { views in
            var total = 0
            for (index, field) in fields.enumerated() {
                views[index] = field.kind.fromCertificate ? nil : own(index)
                total += views[index]?.len ?? 0
            }
            let block = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 1)
            var offset = 0
            for (index, field) in fields.enumerated() {
                let value: gw_str
                if field.kind.fromCertificate {
                    guard let certificateValue = prepared?.views[index] else { continue }
                    value = certificateValue
                } else {
                    guard let view = views[index] else { continue }
                    let start = block.baseAddress! + offset
                    if let source = view.ptr, view.len > 0 { start.copyMemory(from: source, byteCount: view.len) }
                    offset += view.len
                    value = gw_str(ptr: UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self), len: view.len)
                }
                listMemory[used] = gw_header(name: names.views[index]!, value: value)
                used += 1
            }
            return block
        }
        self.listMemory = listMemory
        self.values = values
        count = used
    }

    deinit {
        listMemory.deallocate()
        values.deallocate()
    }
}
