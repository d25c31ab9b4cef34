#if canImport(Glibc)
import Glibc
#endif

/// What a plugin written in Swift implements. Only `init` is required; the hooks you export are chosen with
/// `PluginHooks` in `GatewayPluginExport.entry` (a hook not exported is never called, and costs nothing).
/// Hooks run on the gateway's event loops unless the plugin is flagged blocking: see gateway_plugin.h.
public protocol GatewayPlugin: AnyObject {
    /// Called once per chain entry with its config as JSON text; throw `PluginConfigError` to refuse it.
    init(tag: UInt64, config: String) throws
    func onConnection(_ connection: GatewayRequest)
    func onRequestHeaders(_ request: GatewayRequest) -> gw_action
    /// GW_OK, or a negative gw_status (logged and counted; the response goes out as it stands).
    func onResponseHeaders(_ request: GatewayRequest) -> gw_status
    func onComplete(_ request: GatewayRequest)
    func reopen()
    /// Called by `destroy`, after the instance's last request: flush and stop your threads here.
    func shutdown()
}

extension GatewayPlugin {
    public func onConnection(_ connection: GatewayRequest) {}
    public func onRequestHeaders(_ request: GatewayRequest) -> gw_action { GW_CONTINUE }
    public func onResponseHeaders(_ request: GatewayRequest) -> gw_status { GW_OK }
    public func onComplete(_ request: GatewayRequest) {}
    public func reopen() {}
    public func shutdown() {}
}

/// A config the plugin refuses; `message` reaches the operator, prefixed with the key path of the entry.
public struct PluginConfigError: Error {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// The hooks a plugin exports.
public struct PluginHooks: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let connection = PluginHooks(rawValue: 1)
    public static let requestHeaders = PluginHooks(rawValue: 2)
    public static let responseHeaders = PluginHooks(rawValue: 4)
    public static let complete = PluginHooks(rawValue: 8)
    public static let reopen = PluginHooks(rawValue: 16)
}

/// Builds the C descriptor for a `GatewayPlugin` type. A plugin's whole export is:
///
///     @_cdecl("gw_plugin_entry_v1")
///     public func entry(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
///         GatewayPluginExport.entry(host, MyPlugin.self, name: "my_plugin", version: "1.0.0", hooks: [.requestHeaders])
///     }
///
/// `abiMinor` is the ABI minor version the plugin requires: the header's by default; a lower one on purpose
/// when it uses nothing newer (an attribute of a later minor reads as not found on an older gateway).
public enum GatewayPluginExport {
    nonisolated(unsafe) private static var pluginType: (any GatewayPlugin.Type)?
    nonisolated(unsafe) private static var descriptor: UnsafeMutablePointer<gw_plugin_descriptor>?

    /// Keeps an instance behind the opaque pointer the host holds.
    private final class Box {
        let plugin: any GatewayPlugin
        init(_ plugin: any GatewayPlugin) { self.plugin = plugin }
    }

    /// Calls `body` with the instance at +0: the host holds the box (and so the plugin) for the hook's
    /// duration, so no retain and release around each hook call.
    @inline(__always)
    private static func withPlugin<T>(_ instance: UnsafeMutableRawPointer?, _ body: (any GatewayPlugin) -> T) -> T {
        Unmanaged<Box>.fromOpaque(instance!)._withUnsafeGuaranteedRef { body($0.plugin) }
    }

    public static func entry(
        _ host: UnsafePointer<gw_host_api>?, _ type: any GatewayPlugin.Type, name: String, version: String,
        hooks: PluginHooks, flags: UInt32 = 0, abiMinor: UInt16 = UInt16(GW_PLUGIN_ABI_MINOR)
    ) -> UnsafePointer<gw_plugin_descriptor>? {
        guard let host else { return nil }
        PluginHost.api = host
        pluginType = type
        if let descriptor { return UnsafePointer(descriptor) }
        let pointer = UnsafeMutablePointer<gw_plugin_descriptor>.allocate(capacity: 1)
        pointer.initialize(to: gw_plugin_descriptor(
            magic: GW_PLUGIN_MAGIC,
            struct_size: UInt32(MemoryLayout<gw_plugin_descriptor>.size),
            abi_major: UInt16(GW_PLUGIN_ABI_MAJOR),
            abi_minor: abiMinor,
            flags: flags,
            name: UnsafePointer(strdup(name)),
            version: UnsafePointer(strdup(version)),
            create: { _, args, instance, errorBuffer, capacity in
                guard let args, let instance, let type = GatewayPluginExport.pluginType else { return 1 }
                let message: String
                do {
                    let plugin = try type.init(tag: args.pointee.instance_tag, config: args.pointee.config_json.string)
                    instance.pointee = Unmanaged.passRetained(Box(plugin)).toOpaque()
                    return 0
                } catch let error as PluginConfigError {
                    message = error.message
                } catch {
                    message = "\(error)"
                }
                if let errorBuffer, capacity > 0 { _ = message.withCString { strncpy(errorBuffer, $0, capacity) } }
                return 1
            },
            destroy: { instance in
                guard let instance else { return }
                let box = Unmanaged<Box>.fromOpaque(instance).takeRetainedValue()
                box.plugin.shutdown()
            },
            on_connection: hooks.contains(.connection) ? { instance, handle in
                GatewayPluginExport.withPlugin(instance) { $0.onConnection(GatewayRequest(handle)) }
            } : nil,
            on_request_headers: hooks.contains(.requestHeaders) ? { instance, handle in
                GatewayPluginExport.withPlugin(instance) { $0.onRequestHeaders(GatewayRequest(handle)) }
            } : nil,
            on_response_headers: hooks.contains(.responseHeaders) ? { instance, handle in
                GatewayPluginExport.withPlugin(instance) { $0.onResponseHeaders(GatewayRequest(handle)) }
            } : nil,
            on_complete: hooks.contains(.complete) ? { instance, handle in
                GatewayPluginExport.withPlugin(instance) { $0.onComplete(GatewayRequest(handle)) }
            } : nil,
            on_reopen: hooks.contains(.reopen) ? { instance in
                GatewayPluginExport.withPlugin(instance) { $0.reopen() }
            } : nil
        ))
        descriptor = pointer
        return UnsafePointer(pointer)
    }
}
