import PluginAPI

// A plugin written in Swift against the raw C ABI (the SDK issue adds a safe wrapper): it sets the request
// header named in its config ({"header": "x-swift", "value": "hello"}) and answers 401 when the client has no
// certificate and the config says {"require_certificate": true}.

private final class Instance {
    let header: [UInt8]
    let value: [UInt8]
    let requireCertificate: Bool

    init(header: String, value: String, requireCertificate: Bool) {
        self.header = Array(header.utf8)
        self.value = Array(value.utf8)
        self.requireCertificate = requireCertificate
    }
}

nonisolated(unsafe) private var host: UnsafePointer<gw_host_api>?

private func field(_ json: String, _ key: String) -> String? {
    guard let keyRange = json.firstRange(of: "\"\(key)\"") else { return nil }
    let rest = json[keyRange.upperBound...].drop { $0 == " " || $0 == ":" }
    if rest.hasPrefix("true") { return "true" }
    guard rest.first == "\"" else { return nil }
    return String(rest.dropFirst().prefix { $0 != "\"" })
}

// Initialised once (Swift's lazy global initialisation is thread-safe) and only read after: the host reads it.
nonisolated(unsafe) private let descriptor: UnsafeMutablePointer<gw_plugin_descriptor> = {
    let pointer = UnsafeMutablePointer<gw_plugin_descriptor>.allocate(capacity: 1)
    pointer.initialize(to: gw_plugin_descriptor(
        magic: GW_PLUGIN_MAGIC,
        struct_size: UInt32(MemoryLayout<gw_plugin_descriptor>.size),
        abi_major: UInt16(GW_PLUGIN_ABI_MAJOR),
        abi_minor: UInt16(GW_PLUGIN_ABI_MINOR),
        flags: 0,
        name: UnsafePointer(strdup("swift_header")),
        version: UnsafePointer(strdup("0.1.0")),
        create: { _, args, instance, error, capacity in
            guard let args, let instance else { return 1 }
            let json = String(decoding: UnsafeRawBufferPointer(start: args.pointee.config_json.ptr, count: args.pointee.config_json.len), as: UTF8.self)
            guard let header = field(json, "header"), let value = field(json, "value") else {
                if let error { _ = "config needs 'header' and 'value' strings".withCString { strncpy(error, $0, capacity) } }
                return 1
            }
            let object = Instance(header: header, value: value, requireCertificate: field(json, "require_certificate") == "true")
            instance.pointee = Unmanaged.passRetained(object).toOpaque()
            return 0
        },
        destroy: { instance in
            guard let instance else { return }
            Unmanaged<Instance>.fromOpaque(instance).release()
        },
        on_connection: nil,
        on_request_headers: { instance, request in
            guard let instance, let host else { return GW_FAILED }
            let object = Unmanaged<Instance>.fromOpaque(instance).takeUnretainedValue()
            if object.requireCertificate {
                var present: Int64 = 0
                _ = host.pointee.get_attribute_int(request, GW_ATTR_CLIENT_CERT_PRESENT, &present)
                if present == 0 {
                    let body = "client certificate required\n"
                    _ = body.withCString { host.pointee.respond(request, 401, nil, 0, gw_str(ptr: $0, len: body.utf8.count)) }
                    return GW_STOP
                }
            }
            let status = object.header.withUnsafeBufferPointer { name in
                object.value.withUnsafeBufferPointer { value in
                    host.pointee.set_header(
                        request,
                        gw_str(ptr: UnsafeRawPointer(name.baseAddress!).assumingMemoryBound(to: CChar.self), len: name.count),
                        gw_str(ptr: UnsafeRawPointer(value.baseAddress!).assumingMemoryBound(to: CChar.self), len: value.count))
                }
            }
            return status == GW_OK ? GW_CONTINUE : GW_FAILED
        },
        on_response_headers: nil,
        on_complete: nil,
        on_reopen: nil
    ))
    return pointer
}()

@_cdecl("gw_plugin_entry_v1")
public func gw_plugin_entry_v1(_ hostAPI: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
    host = hostAPI
    return UnsafePointer(descriptor)
}

#if canImport(Glibc)
import Glibc
#endif
