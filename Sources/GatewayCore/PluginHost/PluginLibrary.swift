#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import PluginAPI

/// A plugin shared library, loaded once per process and never unloaded once its code has run (a library's
/// threads, atexit handlers or static destructors could otherwise run into unmapped code).
/// Immutable after load.
package final class PluginLibrary: Sendable {
    package let path: String
    package let name: String
    package let version: String
    package let abiMinor: UInt16
    package let flags: UInt32
    /// The plugin's static descriptor, which nothing writes.
    private let descriptorPointer: ForeignPointer<UnsafePointer<gw_plugin_descriptor>>
    package var descriptor: UnsafePointer<gw_plugin_descriptor> {
        @inline(__always) get { descriptorPointer.raw }
    }

    /// The descriptor size of ABI 1.0 (the header's GW_PLUGIN_DESCRIPTOR_SIZE_1_0: up to and including
    /// `on_reopen`, 88 bytes on LP64), fixed forever: later minors only append members, and a plugin built
    /// against 1.0 must still load.
    package static let minimumDescriptorSize =
        MemoryLayout<gw_plugin_descriptor>.offset(of: \gw_plugin_descriptor.on_reopen)! + MemoryLayout<UnsafeRawPointer>.size  // a C function pointer

    package var isBlocking: Bool { flags & GW_PLUGIN_FLAG_BLOCKING != 0 }
    package var hasOnConnection: Bool { descriptor.pointee.on_connection != nil }
    package var hasOnRequestHeaders: Bool { descriptor.pointee.on_request_headers != nil }
    package var hasOnResponseHeaders: Bool { descriptor.pointee.on_response_headers != nil }
    package var hasOnComplete: Bool { descriptor.pointee.on_complete != nil }

    package var hookNames: [String] {
        var hooks = ["create", "destroy"]
        if hasOnConnection { hooks.append("on_connection") }
        if hasOnRequestHeaders { hooks.append("on_request_headers") }
        if hasOnResponseHeaders { hooks.append("on_response_headers") }
        if hasOnComplete { hooks.append("on_complete") }
        if descriptor.pointee.on_reopen != nil { hooks.append("on_reopen") }
        return hooks
    }

    private init(path: String, descriptor: UnsafePointer<gw_plugin_descriptor>, name: String, version: String) {
        self.path = path
        self.descriptorPointer = ForeignPointer(descriptor)
        self.name = name
        self.version = version
        self.abiMinor = descriptor.pointee.abi_minor
        self.flags = descriptor.pointee.flags
    }

    /// Loads and checks a library; the error names the file, the symbol or field, and both versions.
    package static func load(path: String) throws -> PluginLibrary {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw PluginError("\(path): cannot load: \(reason)")
        }
        guard let symbol = dlsym(handle, GW_PLUGIN_ENTRY_SYMBOL) else {
            // A library built for another major version exports another entry symbol: say so precisely.
            for major in 2...9 where dlsym(handle, "gw_plugin_entry_v\(major)") != nil {
                dlclose(handle)
                throw PluginError("\(path): is built for plugin ABI \(major).x (exports gw_plugin_entry_v\(major)); this gateway supports ABI \(GW_PLUGIN_ABI_MAJOR).0 to \(GW_PLUGIN_ABI_MAJOR).\(GW_PLUGIN_ABI_MINOR) (gw_plugin_entry_v\(GW_PLUGIN_ABI_MAJOR))")
            }
            dlclose(handle)
            throw PluginError("\(path): not a gateway plugin: symbol '\(GW_PLUGIN_ENTRY_SYMBOL)' not found (usual causes: built with -fvisibility=hidden without GW_PLUGIN_EXPORT on the entry point; C++ without extern \"C\" (include gateway_plugin.h, whose prototype has it); a misspelt name; in Swift, no @_cdecl(\"\(GW_PLUGIN_ENTRY_SYMBOL)\"))")
        }
        // From here on plugin code runs: the library is never closed.
        let entry = unsafeBitCast(symbol, to: gw_plugin_entry_fn.self)
        guard let descriptor = entry(HostAPI.table) else {
            throw PluginError("\(path): \(GW_PLUGIN_ENTRY_SYMBOL) returned NULL (the plugin refused to load; see its log lines)")
        }
        let d = descriptor.pointee
        guard d.magic == GW_PLUGIN_MAGIC else {
            throw PluginError("\(path): descriptor returned by \(GW_PLUGIN_ENTRY_SYMBOL) has magic 0x\(String(d.magic, radix: 16, uppercase: true)), expected 0x\(String(GW_PLUGIN_MAGIC, radix: 16, uppercase: true)): not a gateway plugin descriptor")
        }
        guard d.abi_major == GW_PLUGIN_ABI_MAJOR else {
            throw PluginError("\(path): plugin is built for ABI \(d.abi_major).\(d.abi_minor), this gateway supports ABI \(GW_PLUGIN_ABI_MAJOR).0 to \(GW_PLUGIN_ABI_MAJOR).\(GW_PLUGIN_ABI_MINOR) (abi_major mismatch)")
        }
        guard d.abi_minor <= GW_PLUGIN_ABI_MINOR else {
            throw PluginError("\(path): plugin requires ABI \(d.abi_major).\(d.abi_minor) (abi_minor in its descriptor), newer than this gateway's ABI \(GW_PLUGIN_ABI_MAJOR).\(GW_PLUGIN_ABI_MINOR): upgrade the gateway, or build the plugin to require ABI \(GW_PLUGIN_ABI_MAJOR).\(GW_PLUGIN_ABI_MINOR) (docs/plugins.md, 'Versions')")
        }
        guard Int(d.struct_size) >= minimumDescriptorSize else {
            throw PluginError("\(path): descriptor struct_size is \(d.struct_size), smaller than ABI \(GW_PLUGIN_ABI_MAJOR).0's \(minimumDescriptorSize) bytes")
        }
        guard d.create != nil else { throw PluginError("\(path): required hook 'create' is NULL in the descriptor") }
        guard d.destroy != nil else { throw PluginError("\(path): required hook 'destroy' is NULL in the descriptor") }
        guard let namePointer = d.name else { throw PluginError("\(path): descriptor field 'name' is NULL") }
        let name = String(cString: namePointer)
        guard !name.isEmpty, name.utf8.count <= 64,
            name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 95 || $0 == 46 || $0 == 45 })
        else {
            throw PluginError("\(path): descriptor field 'name' is '\(name)': must be 1 to 64 of [A-Za-z0-9_.-]")
        }
        let version = d.version.map { String(cString: $0) } ?? ""
        return PluginLibrary(path: path, descriptor: descriptor, name: name, version: version)
    }
}

/// Why a plugin could not be loaded or instantiated; the message names the file and the offending item.
package struct PluginError: Error, CustomStringConvertible, Sendable {
    package var description: String
    package init(_ description: String) { self.description = description }
}
