import NIOPosix
import PluginAPI

/// What a host function needs from the object a handle refers to (a request or a connection).
package protocol PluginCallTarget: AnyObject {
    func attribute(_ attribute: gw_attribute, index: Int, into out: inout gw_str) -> gw_status
    func attributeInt(_ attribute: gw_attribute) -> Int64?
    func dnValue(_ which: gw_dn, type: String, index: Int, into out: inout gw_str) -> gw_status
    func header(_ name: String, index: Int, into out: inout gw_str) -> gw_status
    func header(at index: Int, name: inout gw_str, value: inout gw_str) -> gw_status
    func setHeader(_ name: String, _ value: String, mode: HeaderEdit) -> gw_status
    func respond(status: Int, headers: [(String, String)], body: [UInt8]) -> gw_status
    func setVar(_ name: String, _ value: String) -> gw_status
    func getVar(_ name: String, into out: inout gw_str) -> gw_status
}

package enum HeaderEdit {
    case set, add, remove
}

/// The hook now running on this thread, so that host functions can tell a live handle from a stale one.
/// Set around every hook call; a handle is valid only while its hook runs, and only on that thread.
package final class PluginCallContext {
    package var handle: UInt64 = 0
    package var target: PluginCallTarget?

    // Each thread reads and writes only its own value.
    nonisolated(unsafe) private static let current = ThreadSpecificVariable<PluginCallContext>()

    package static var forThisThread: PluginCallContext {
        if let context = current.currentValue { return context }
        let context = PluginCallContext()
        current.currentValue = context
        return context
    }

    /// The target of `handle` if it is the one of the running hook.
    package static func target(for handle: UInt64) -> PluginCallTarget? {
        guard handle != 0, let context = current.currentValue, context.handle == handle else { return nil }
        return context.target
    }

    /// Runs `body` with `handle` active on this thread, then invalidates it.
    @inline(__always)
    package static func with<T>(_ handle: UInt64, _ target: PluginCallTarget, _ body: () -> T) -> T {
        let context = forThisThread
        let (savedHandle, savedTarget) = (context.handle, context.target)
        context.handle = handle
        context.target = target
        defer {
            context.handle = savedHandle
            context.target = savedTarget
        }
        return body()
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
