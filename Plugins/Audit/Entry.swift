import GatewayPluginKit

#if canImport(Glibc)
import Glibc
#endif

private let descriptor: UnsafeMutablePointer<gw_plugin_descriptor> = {
    let pointer = UnsafeMutablePointer<gw_plugin_descriptor>.allocate(capacity: 1)
    pointer.initialize(to: gw_plugin_descriptor(
        magic: GW_PLUGIN_MAGIC,
        struct_size: UInt32(MemoryLayout<gw_plugin_descriptor>.size),
        abi_major: UInt16(GW_PLUGIN_ABI_MAJOR),
        abi_minor: UInt16(GW_PLUGIN_ABI_MINOR),
        flags: 0,
        name: UnsafePointer(strdup("audit")),
        version: UnsafePointer(strdup("1.0.0")),
        create: { _, args, instance, errorBuffer, capacity in
            guard let args, let instance else { return 1 }
            do {
                let object = try AuditLog(tag: args.pointee.instance_tag, json: args.pointee.config_json.string)
                instance.pointee = Unmanaged.passRetained(object).toOpaque()
                return 0
            } catch let failure as AuditLog.ConfigError {
                if let errorBuffer { _ = failure.message.withCString { strncpy(errorBuffer, $0, capacity) } }
                return 1
            } catch {
                if let errorBuffer { _ = "config is not valid JSON: \(error)".withCString { strncpy(errorBuffer, $0, capacity) } }
                return 1
            }
        },
        destroy: { instance in
            guard let instance else { return }
            let object = Unmanaged<AuditLog>.fromOpaque(instance).takeRetainedValue()
            object.writer.close()
        },
        on_connection: { instance, connection in
            guard let instance else { return }
            Unmanaged<AuditLog>.fromOpaque(instance).takeUnretainedValue().onConnection(GatewayRequest(connection))
        },
        on_request_headers: nil,
        on_response_headers: nil,
        on_complete: { instance, request in
            guard let instance else { return }
            Unmanaged<AuditLog>.fromOpaque(instance).takeUnretainedValue().onComplete(GatewayRequest(request))
        },
        on_reopen: { instance in
            guard let instance else { return }
            Unmanaged<AuditLog>.fromOpaque(instance).takeUnretainedValue().writer.requestReopen()
        }
    ))
    return pointer
}()

@_cdecl("gw_plugin_entry_v1")
public func gw_plugin_entry_v1(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
    PluginHost.api = host
    return UnsafePointer(descriptor)
}
