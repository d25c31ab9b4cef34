import GatewayPluginKit
import Synchronization

/// Header values (or names) in one block of memory that never moves, with a view of each: one identity's
/// certificate values, computed once and handed to `header_set_create` without copying or re-encoding them.
/// Immutable once made (the views point into memory nobody writes after `init`), so it is shared between
/// event loops; the header sets made of it are kept with it, behind a mutex.
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

    /// The header sets of this identity's connections, by the connection's own values (`ClientCertHeaders`
    /// makes the key). Usually one: the same client software offers the same ciphers and gets the same TLS
    /// version and cipher each time. At most `maxSets`, then made anew.
    private let sets = Mutex<[[UInt8]: HeaderSet]>([:])
    private static let maxSets = 16

    /// The set kept for `key`, or the one `make` makes (then kept).
    func headerSet(key: [UInt8], make: () throws -> HeaderSet) throws -> HeaderSet {
        if let kept = sets.withLock({ $0[key] }) { return kept }
        let made = try make()
        sets.withLock { sets in
            if sets.count >= Self.maxSets { sets.removeAll(keepingCapacity: true) }
            sets[key] = made
        }
        return made
    }

    deinit { storage.deallocate() }
}
