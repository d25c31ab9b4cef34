#if canImport(Glibc)
import Glibc
#endif
import PluginAPI

/// What a host function needs from the object a handle refers to (a request or a connection). A class, not a
/// protocol, so that the running hook's target is held unretained (`Unmanaged`) and host functions call it at +0:
/// a protocol existential was a retain and a release per host call (~90 instructions, ~25 calls per request
/// with the bundled plugins). Every function answers GW_ERR_WRONG_PHASE unless a subclass says otherwise.
package class PluginCallTarget {
    package init() {}
    /// `arena`: this thread's (the running hook's), where a value made for the call is copied.
    package func attribute(_ attribute: gw_attribute, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status { GW_ERR_WRONG_PHASE }
    package func attributeInt(_ attribute: gw_attribute) -> Int64? { nil }
    /// ABI 1.6 `get_attributes`: every entry as the single reads answer it (no attribute answers both): the
    /// text read, and for one it does not find at index 0 the integer read. `likelyInteger` only picks which
    /// to try first; an attribute it does not know still gets both reads, so the answer never depends on it.
    package final func attributes(_ values: UnsafeMutableBufferPointer<gw_attribute_value>, arena: PluginArena) {
        for i in values.indices {
            let attribute = values[i].attribute
            let atZero = values[i].index == 0
            let hinted = atZero && Self.likelyInteger(attribute)
            var text = gw_str(ptr: nil, len: 0)
            var integer: Int64 = 0
            var status = GW_ERR_NOT_FOUND
            if hinted, let value = attributeInt(attribute) {
                integer = value
                status = GW_OK
            } else {
                status = self.attribute(attribute, index: Int(values[i].index), arena: arena, into: &text)
                if status != GW_OK {
                    text = gw_str(ptr: nil, len: 0)
                    if status == GW_ERR_NOT_FOUND, atZero, !hinted, let value = attributeInt(attribute) {
                        integer = value
                        status = GW_OK
                    }
                }
            }
            values[i].status = status
            values[i].text = text
            values[i].integer = integer
        }
    }

    /// The attributes the ABI header marks int, one bit each (attribute numbers 0-63, then 64-127), as
    /// constants: which read `attributes` tries first. CLIENT_PORT 3, LOCAL_PORT 5, CONNECTION_ID 6,
    /// CLIENT_CERT_PRESENT 12, CLIENT_NOT_BEFORE_UNIX 22, CLIENT_NOT_AFTER_UNIX 23, REQUEST_ID 40,
    /// RESPONSE_STATUS 60, BYTES_RECEIVED 61, BYTES_SENT 62, DURATION_US 63; CLIENT_ABORTED 66,
    /// RESPONSE_INCOMPLETE 67 (`PluginRequestAttributeTests` checks them against the single reads).
    private static var integerBitsLow: UInt64 { 0xF000_0100_00C0_1068 }
    private static var integerBitsHigh: UInt64 { 0xC }

    @inline(__always)
    package static func likelyInteger(_ attribute: gw_attribute) -> Bool {
        attribute < 64 ? (integerBitsLow >> UInt64(attribute)) & 1 == 1 : attribute < 128 && (integerBitsHigh >> UInt64(attribute - 64)) & 1 == 1
    }
    package func dnValue(_ which: gw_dn, type: String, index: Int, into out: inout gw_str) -> gw_status { GW_ERR_WRONG_PHASE }
    package func header(_ name: String, index: Int, arena: PluginArena, into out: inout gw_str) -> gw_status { GW_ERR_WRONG_PHASE }
    package func header(at index: Int, arena: PluginArena, name: inout gw_str, value: inout gw_str) -> gw_status { GW_ERR_WRONG_PHASE }
    /// `name` and `value` are the plugin's bytes, already checked (`HeaderValidation`), valid for the call.
    package func setHeader(_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, mode: HeaderEdit) -> gw_status { GW_ERR_WRONG_PHASE }
    /// `add_headers`' edit: every header of `list` added, in order. The host checked them all first. A target
    /// that keeps added headers as bytes overrides this to append them in one go.
    package func addHeaders(_ list: UnsafeBufferPointer<gw_header>) -> gw_status {
        for header in list {
            // Only the phase can refuse, and it refuses the first as it would every other.
            let status = setHeader(header.name.buffer, header.value.buffer, mode: .add)
            guard status == GW_OK else { return status }
        }
        return GW_OK
    }
    /// ABI 1.5 `header_set_add`: every field under a name the set owns removed, then the set's headers added.
    package func addHeaderSet(_ set: PluginHeaderSet) -> gw_status { GW_ERR_WRONG_PHASE }
    /// Whether `setHeader` would take an edit now (the phase allows it).
    package var canEditHeaders: Bool { false }
    package func respond(status: Int, headers: [(String, String)], body: [UInt8]) -> gw_status { GW_ERR_WRONG_PHASE }
    package func setVar(_ name: String, _ value: String) -> gw_status { GW_ERR_WRONG_PHASE }
    /// `name` is the plugin's bytes, valid for the call.
    package func getVar(_ name: UnsafeRawBufferPointer, arena: PluginArena, into out: inout gw_str) -> gw_status { GW_ERR_WRONG_PHASE }
    /// ABI 1.4: the connection's data kept for instance `tag` (a connection's or request's target on the event loop).
    package func connectionData(_ tag: UInt64, into out: inout UnsafeMutableRawPointer?) -> gw_status { GW_ERR_WRONG_PHASE }
    package func setConnectionData(_ tag: UInt64, _ data: UnsafeMutableRawPointer?, release: PluginConnectionData.Release?) -> gw_status {
        GW_ERR_WRONG_PHASE
    }
}

package enum HeaderEdit {
    case set, add, remove
}

/// The hook now running on this thread, so that host functions can tell a live handle from a stale one,
/// and the thread's arena for the views they hand out. Set around every hook call; a handle is valid only
/// while its hook runs, and only on that thread.
///
/// Every host function starts here, so the look-up is one `pthread_getspecific` and an unretained
/// reference: NIO's `ThreadSpecificVariable` boxes the value and casts it back (`as!`, a generic metadata
/// look-up) on every read, which cost ~200 instructions per host call on the request path.
package final class PluginCallContext {
    package var handle: UInt64 = 0
    /// Unretained: `with` runs while its caller holds the target.
    package var target: Unmanaged<PluginCallTarget>?
    /// Memory for the views host functions hand out during this thread's hook calls.
    package let arena = PluginArena()
    /// Header names and values plugins pass again and again, kept as Strings.
    package let strings = PluginStringCache()

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<PluginCallContext>.fromOpaque(pointer).release() }
        }
        precondition(created == 0, "pthread_key_create failed: \(created)")
        return key
    }()

    package static var forThisThread: PluginCallContext {
        @inline(__always) get {
            if let pointer = pthread_getspecific(key) { return Unmanaged<PluginCallContext>.fromOpaque(pointer).takeUnretainedValue() }
            return makeForThisThread()
        }
    }

    @inline(never)
    private static func makeForThisThread() -> PluginCallContext {
        let context = PluginCallContext()
        pthread_setspecific(key, Unmanaged.passRetained(context).toOpaque())
        return context
    }

    /// Calls `body` with the target of `handle` if it is the one of the running hook (at +0: no retain), else
    /// answers GW_ERR_STALE_HANDLE.
    @inline(__always)
    package static func withTarget(_ handle: UInt64, _ body: (PluginCallTarget) -> gw_status) -> gw_status {
        withTargetAndArena(handle) { target, _ in body(target) }
    }

    /// `withTarget`, with the thread's arena too: every host function that hands out views copies them there,
    /// with one thread-context look-up per call, not a second for the arena.
    @inline(__always)
    package static func withTargetAndArena(_ handle: UInt64, _ body: (PluginCallTarget, PluginArena) -> gw_status) -> gw_status {
        // No context on this thread: no hook ever ran here, so no handle is live on it.
        guard handle != 0, let pointer = pthread_getspecific(key) else { return GW_ERR_STALE_HANDLE }
        return Unmanaged<PluginCallContext>.fromOpaque(pointer)._withUnsafeGuaranteedRef { context in
            guard context.handle == handle, let target = context.target else { return GW_ERR_STALE_HANDLE }
            return target._withUnsafeGuaranteedRef { body($0, context.arena) }
        }
    }

    /// Makes `handle` (with `target`) the running hook's on this thread, for a run of hook calls on one target;
    /// answers what `leave` puts back. The caller holds `target` until `leave`.
    @inline(__always)
    package func enter(_ handle: UInt64, _ target: PluginCallTarget) -> (handle: UInt64, target: Unmanaged<PluginCallTarget>?) {
        let saved = (self.handle, self.target)
        self.handle = handle
        self.target = Unmanaged.passUnretained(target)
        return saved
    }

    /// Ends a run begun with `enter`: its handle is no longer valid on this thread.
    @inline(__always)
    package func leave(_ saved: (handle: UInt64, target: Unmanaged<PluginCallTarget>?)) {
        handle = saved.handle
        target = saved.target
    }

    /// Runs `body` with `handle` active on this thread, then invalidates it. The caller keeps `target` alive
    /// for the call (it is held here unretained).
    @inline(__always)
    package static func with<T>(_ handle: UInt64, _ target: PluginCallTarget, _ body: () -> T) -> T {
        let context = forThisThread
        let (savedHandle, savedTarget) = (context.handle, context.target)
        context.handle = handle
        context.target = Unmanaged.passUnretained(target)
        defer {
            context.handle = savedHandle
            context.target = savedTarget
        }
        return withExtendedLifetime(target) { body() }
    }
}

extension gw_str {
    /// The viewed bytes, without a copy (empty for a NULL view); valid as long as the view is.
    package var buffer: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: ptr, count: ptr == nil ? 0 : len)
    }

    /// Copies the viewed bytes into a Swift string (invalid UTF-8 is repaired, never trusted).
    package var string: String? {
        guard len > 0 else { return "" }
        guard let ptr else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: ptr, count: len), as: UTF8.self)
    }

    package var bytes: [UInt8]? {
        guard len > 0 else { return [] }
        guard let ptr else { return nil }
        return Array(UnsafeRawBufferPointer(start: ptr, count: len))
    }
}
