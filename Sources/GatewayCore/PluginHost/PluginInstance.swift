import Foundation
import Atomics
import NIOCore
import PluginAPI

/// One chain entry of one listener: a plugin library instantiated with that entry's config.
/// Immutable after create except `destroyed` (an atomic); its hooks run on every event loop at once.
package final class PluginInstance: Sendable {
    package enum OnError: String, ConfigEnum, Sendable {
        case deny
        case `continue`
    }

    package let library: PluginLibrary
    package let listener: String
    package let tag: UInt64
    package let onError: OnError
    package let timeout: TimeAmount
    /// The plugin's instance state, which the ABI requires the plugin to make safe for concurrent hooks.
    private let handle: ForeignPointer<UnsafeMutableRawPointer?>
    private var instance: UnsafeMutableRawPointer? {
        @inline(__always) get { handle.raw }
    }
    /// The plugin's instance pointer, for the chain's hook table (`PluginChain`), which calls hooks directly.
    package var rawInstance: UnsafeMutableRawPointer? { instance }
    private let destroyed = ManagedAtomic(false)
    /// Calls, denials, failures and time per call, for the console.
    package let stats = PluginCallStats()

    package var name: String { library.name }

    /// Calls the plugin's `create`; the error carries the plugin's own message.
    package init(library: PluginLibrary, listener: String, configJSON: String, onError: OnError, timeout: TimeAmount) throws {
        self.library = library
        self.listener = listener
        self.onError = onError
        self.timeout = timeout
        let tag = PluginRegistry.shared.register(plugin: library.name, listener: listener)
        self.tag = tag
        // Kept alive until create returns: the views the config reader hands out point into it.
        let reader = PluginConfigReader(config: try? JSONDecoder().decode(JSONValue.self, from: Data(configJSON.utf8)))
        var created: UnsafeMutableRawPointer?
        var error = [CChar](repeating: 0, count: 1024)
        let status: Int32 = listener.withGWStr { listenerView in
            configJSON.withGWStr { configView in
                var args = gw_create_args(
                    struct_size: UInt32(MemoryLayout<gw_create_args>.size), reserved: 0, instance_tag: tag,
                    listener_name: listenerView, config_json: configView
                )
                return error.withUnsafeMutableBufferPointer { buffer in
                    // metric_define is allowed for this tag while create runs (creates never overlap).
                    PluginRegistry.shared.creating(tag: tag, config: reader) {
                        library.descriptor.pointee.create(HostAPI.table, &args, &created, buffer.baseAddress, buffer.count - 1)
                    }
                }
            }
        }
        withExtendedLifetime(reader) {}
        guard status == GW_OK else {
            PluginRegistry.shared.unregister(tag: tag)
            // deinit does not run for an object whose init throws: free the counters here.
            stats.destroy()
            let message = String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw PluginError("plugin '\(library.name)' (\(library.path)) rejected its config: \(message.isEmpty ? "create returned \(status) without a message" : message)")
        }
        self.handle = ForeignPointer(created)
    }

    deinit {
        stats.destroy()
    }

    /// Destroys the instance; called once, after its last request.
    package func destroy() {
        guard destroyed.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        library.descriptor.pointee.destroy(instance)
        PluginRegistry.shared.unregister(tag: tag)
    }

    @inline(__always)
    package func onConnection(_ handle: UInt64) {
        library.descriptor.pointee.on_connection?(instance, handle)
    }

    @inline(__always)
    package func onRequestHeaders(_ handle: UInt64) -> Int32 {
        library.descriptor.pointee.on_request_headers.map { $0(instance, handle) } ?? GW_CONTINUE
    }

    @inline(__always)
    package func onResponseHeaders(_ handle: UInt64) -> Int32 {
        library.descriptor.pointee.on_response_headers.map { $0(instance, handle) } ?? GW_CONTINUE
    }

    package func onReopen() {
        library.descriptor.pointee.on_reopen?(instance)
    }

    @inline(__always)
    package func onComplete(_ handle: UInt64) {
        library.descriptor.pointee.on_complete?(instance, handle)
    }
}

extension String {
    /// Runs `body` with a view of this string's UTF-8 bytes (valid only inside `body`).
    package func withGWStr<T>(_ body: (gw_str) -> T) -> T {
        var copy = self
        return copy.withUTF8 { bytes in
            body(gw_str(ptr: bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }, len: bytes.count))
        }
    }
}
