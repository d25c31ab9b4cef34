import GatewayPluginKit

/// Header values (or names) in one block of memory that never moves, with a view of each, for
/// `header_set_create`: the plugin's header names and owned names, kept for its life, and the values of a set
/// while it is made. Immutable once made (the views point into memory nobody writes after `init`), so it is
/// shared between event loops.
final class PreparedHeaders: @unchecked Sendable {
    private let storage: UnsafeMutableRawBufferPointer
    /// One view per input, nil where the input was nil.
    let views: [gw_str?]

    init(_ values: [[UInt8]?]) {
        let total = values.reduce(0) { $0 + ($1?.count ?? 0) }
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 1)
        var offset = 0
        var views: [gw_str?] = []
        views.reserveCapacity(values.count)
        for value in values {
            guard let value else {
                views.append(nil)
                continue
            }
            let start = storage.baseAddress! + offset
            value.withUnsafeBytes { start.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(start), byteCount: $0.count) }
            views.append(gw_str(ptr: UnsafeRawPointer(start).assumingMemoryBound(to: CChar.self), len: value.count))
            offset += value.count
        }
        self.views = views
    }

    deinit { storage.deallocate() }
}
