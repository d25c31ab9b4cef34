#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import PluginAPI

/// The table of host functions handed to every plugin (`gw_host_api`). Built once; valid for the process.
package enum HostAPI {
    // Immutable after its one (thread-safe, lazy) initialisation; plugins only read it.
    nonisolated(unsafe) package static let table: UnsafePointer<gw_host_api> = {
        let pointer = UnsafeMutablePointer<gw_host_api>.allocate(capacity: 1)
        pointer.initialize(to: gw_host_api(
            struct_size: UInt32(MemoryLayout<gw_host_api>.size),
            abi_major: UInt16(GW_PLUGIN_ABI_MAJOR),
            abi_minor: UInt16(GW_PLUGIN_ABI_MINOR),
            log: { tag, level, message in
                HostAPI.log(tag: tag, level: level, message: message)
            },
            get_attribute: { handle, attribute, index, out in
                guard let out else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTargetAndArena(handle) { $0.attribute(attribute, index: Int(index), arena: $1, into: &out.pointee) }
            },
            get_attribute_int: { handle, attribute, out in
                guard let out else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { target in
                    guard let value = target.attributeInt(attribute) else { return GW_ERR_NOT_FOUND }
                    out.pointee = value
                    return GW_OK
                }
            },
            get_header: { handle, name, index, out in
                guard let out, let name = name.string else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTargetAndArena(handle) { $0.header(name, index: Int(index), arena: $1, into: &out.pointee) }
            },
            set_header: { handle, name, value in
                HostAPI.editHeader(handle, name, value, .set)
            },
            add_header: { handle, name, value in
                HostAPI.editHeader(handle, name, value, .add)
            },
            remove_header: { handle, name in
                HostAPI.editHeader(handle, name, gw_str(ptr: nil, len: 0), .remove)
            },
            respond: { handle, status, headers, count, body in
                PluginCallContext.withTarget(handle) { target in
                    guard (200...599).contains(status), count >= 0, count == 0 || headers != nil, let bodyBytes = body.bytes else { return GW_ERR_INVALID_ARGUMENT }
                    var list: [(String, String)] = []
                    for i in 0..<count {
                        guard let name = headers![i].name.string, let value = headers![i].value.string else { return GW_ERR_INVALID_ARGUMENT }
                        guard HeaderValidation.isValidName(name), HeaderValidation.isValidValue(value) else { return GW_ERR_INVALID_HEADER }
                        list.append((name, value))
                    }
                    return target.respond(status: Int(status), headers: list, body: bodyBytes)
                }
            },
            set_var: { handle, name, value in
                guard let name = name.string, !name.isEmpty, let value = value.string else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { $0.setVar(name, value) }
            },
            get_var: { handle, name, out in
                guard let out, name.ptr != nil || name.len == 0 else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTargetAndArena(handle) { $0.getVar(name.buffer, arena: $1, into: &out.pointee) }
            },
            metric_define: { tag, kind, name, help, outID in
                guard let outID, let name = name.string else { return GW_ERR_INVALID_ARGUMENT }
                return PluginRegistry.shared.defineMetric(tag: tag, kind: kind, name: name, help: help.string ?? "", id: &outID.pointee)
            },
            metric_record: { tag, id, value in
                PluginRegistry.shared.recordMetric(tag: tag, id: id, value: value)
            },
            get_header_at: { handle, index, name, value in
                guard let name, let value else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTargetAndArena(handle) { $0.header(at: Int(index), arena: $1, name: &name.pointee, value: &value.pointee) }
            },
            get_dn_value: { handle, which, type, index, out in
                guard let out, let type = type.string, !type.isEmpty else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { $0.dnValue(which, type: type, index: Int(index), into: &out.pointee) }
            },
            config_get: { tag, path, out in
                guard let out, let path = path.string else { return GW_ERR_INVALID_ARGUMENT }
                guard let reader = PluginRegistry.shared.configReader(tag: tag) else { return GW_ERR_WRONG_PHASE }
                guard let value = reader.value(at: path) else { return GW_ERR_INVALID_ARGUMENT }
                out.pointee = value
                return GW_OK
            },
            config_key_at: { tag, path, index, out in
                guard let out, let path = path.string else { return GW_ERR_INVALID_ARGUMENT }
                guard let reader = PluginRegistry.shared.configReader(tag: tag) else { return GW_ERR_WRONG_PHASE }
                guard PluginConfigReader.steps(path) != nil else { return GW_ERR_INVALID_ARGUMENT }
                guard let key = reader.key(at: path, index: Int(index)) else { return GW_ERR_NOT_FOUND }
                out.pointee = key
                return GW_OK
            },
            config_check_keys: { tag, path, known, count, error, capacity in
                guard let path = path.string, count == 0 || known != nil else { return GW_ERR_INVALID_ARGUMENT }
                guard let reader = PluginRegistry.shared.configReader(tag: tag) else { return GW_ERR_WRONG_PHASE }
                guard PluginConfigReader.steps(path) != nil else { return GW_ERR_INVALID_ARGUMENT }
                var names: [String] = []
                for i in 0..<Int(count) {
                    guard let name = known![i] else { return GW_ERR_INVALID_ARGUMENT }
                    names.append(String(cString: name))
                }
                guard let message = reader.unknownKey(at: path, known: names) else { return GW_OK }
                HostAPI.copy(message, to: error, capacity: capacity)
                return GW_ERR_INVALID_ARGUMENT
            },
            add_headers: { handle, headers, count in
                HostAPI.addHeaders(handle, headers, count)
            },
            set_ready: { tag, ready, reason in
                PluginRegistry.shared.setReady(tag: tag, ready: ready != 0, reason: reason.string ?? "")
            },
            set_connection_data: { handle, tag, data, release in
                guard tag != 0 else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { $0.setConnectionData(tag, data, release: release) }
            },
            get_connection_data: { handle, tag, out in
                guard let out else { return GW_ERR_INVALID_ARGUMENT }
                out.pointee = nil
                guard tag != 0 else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { $0.connectionData(tag, into: &out.pointee) }
            },
            header_set_create: { headers, count, owned, ownedCount, out in
                HostAPI.createHeaderSet(headers, count, owned, ownedCount, out)
            },
            header_set_add: { handle, set in
                guard let set else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTarget(handle) { target in
                    Unmanaged<PluginHeaderSet>.fromOpaque(UnsafeRawPointer(set))._withUnsafeGuaranteedRef { target.addHeaderSet($0) }
                }
            },
            header_set_release: { set in
                guard let set else { return }
                Unmanaged<PluginHeaderSet>.fromOpaque(UnsafeRawPointer(set)).release()
            },
            get_attributes: { handle, values, count in
                // size_t arrives as Int: past Int.max (negative) is an argument error.
                guard count >= 0, count == 0 || values != nil else { return GW_ERR_INVALID_ARGUMENT }
                return PluginCallContext.withTargetAndArena(handle) { target, arena in
                    target.attributes(UnsafeMutableBufferPointer(start: values, count: count), arena: arena)
                    return GW_OK
                }
            }
        ))
        return UnsafePointer(pointer)
    }()

    /// Writes `message` NUL-terminated into a plugin's buffer, cut (at a UTF-8 boundary) to fit.
    private static func copy(_ message: String, to buffer: UnsafeMutablePointer<CChar>?, capacity: Int) {
        guard let buffer, capacity > 0 else { return }
        var bytes = Array(message.utf8.prefix(capacity - 1))
        while String(validating: bytes, as: UTF8.self) == nil { bytes.removeLast() }
        for (offset, byte) in bytes.enumerated() { buffer[offset] = CChar(bitPattern: byte) }
        buffer[bytes.count] = 0
    }

    private static func editHeader(_ handle: gw_handle, _ name: gw_str, _ value: gw_str, _ mode: HeaderEdit) -> gw_status {
        guard name.ptr != nil || name.len == 0, value.ptr != nil || value.len == 0 else { return GW_ERR_INVALID_ARGUMENT }
        return PluginCallContext.withTarget(handle) { target in
            // Checked on the bytes, before any copy: a long value (a PEM) is scanned once, by memchr.
            guard HeaderValidation.isValidName(name.buffer), mode == .remove || HeaderValidation.isValidValue(value.buffer) else {
                return GW_ERR_INVALID_HEADER
            }
            return target.setHeader(name.buffer, mode == .remove ? UnsafeRawBufferPointer(start: nil, count: 0) : value.buffer, mode: mode)
        }
    }

    /// `add_headers`: every header checked first, then all added (or none); one handle look-up for all.
    private static func addHeaders(_ handle: gw_handle, _ headers: UnsafePointer<gw_header>?, _ count: Int) -> gw_status {
        guard count >= 0, count == 0 || headers != nil else { return GW_ERR_INVALID_ARGUMENT }
        return PluginCallContext.withTarget(handle) { target in
            guard count > 0, let headers else { return target.canEditHeaders ? GW_OK : GW_ERR_WRONG_PHASE }
            let list = UnsafeBufferPointer(start: headers, count: count)
            for header in list {
                let status = HeaderValidation.check(header)
                guard status == GW_OK else { return status }
            }
            return target.addHeaders(list)
        }
    }

    /// `header_set_create`: the set retained once for the plugin (`header_set_release` drops it).
    private static func createHeaderSet(
        _ headers: UnsafePointer<gw_header>?, _ count: Int, _ owned: UnsafePointer<gw_str>?, _ ownedCount: Int,
        _ out: UnsafeMutablePointer<OpaquePointer?>?
    ) -> gw_status {
        guard let out else { return GW_ERR_INVALID_ARGUMENT }
        out.pointee = nil
        // size_t arrives as Int: a count past Int.max (a negative value) is an argument error, not a trap.
        guard count >= 0, ownedCount >= 0, count == 0 || headers != nil, ownedCount == 0 || owned != nil else { return GW_ERR_INVALID_ARGUMENT }
        do {
            let set = try PluginHeaderSet(
                headers: UnsafeBufferPointer(start: headers, count: count), owned: UnsafeBufferPointer(start: owned, count: ownedCount)
            )
            out.pointee = OpaquePointer(Unmanaged.passRetained(set).toOpaque())
            return GW_OK
        } catch .nullView {
            return GW_ERR_INVALID_ARGUMENT
        } catch {
            return GW_ERR_INVALID_HEADER
        }
    }

    /// Checks the level before anything else: a filtered debug line costs a lock and a comparison, not a
    /// string conversion and an instance lookup.
    package static func log(tag: UInt64, level: gw_log_level, message: gw_str) {
        let swiftLevel: Logger.Level
        switch level {
        case GW_LOG_TRACE: swiftLevel = .trace
        case GW_LOG_DEBUG: swiftLevel = .debug
        case GW_LOG_INFO: swiftLevel = .info
        case GW_LOG_WARNING: swiftLevel = .warning
        default: swiftLevel = .error
        }
        var logger = PluginRegistry.shared.logger
        guard swiftLevel >= logger.logLevel else { return }
        let instance = PluginRegistry.shared.instanceInfo(tag: tag)
        logger[metadataKey: "plugin"] = "\(instance?.plugin ?? "?")"
        if let listener = instance?.listener { logger[metadataKey: "listener"] = "\(listener)" }
        logger.log(level: swiftLevel, "\(message.string ?? "")")
    }
}

/// RFC 9110 header syntax, checked on everything a plugin sets.
package enum HeaderValidation {
    /// RFC 9110 tchar, by byte.
    private static let tchar: [Bool] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(byte))
        }
    }

    /// A plugin's header as `add_headers` and `header_set_create` take it: GW_ERR_INVALID_ARGUMENT for a NULL
    /// view with a length, GW_ERR_INVALID_HEADER for a name that is not a token or a value with NUL, CR or LF.
    package static func check(_ header: gw_header) -> gw_status {
        guard header.name.ptr != nil || header.name.len == 0, header.value.ptr != nil || header.value.len == 0 else {
            return GW_ERR_INVALID_ARGUMENT
        }
        guard isValidName(header.name.buffer), isValidValue(header.value.buffer) else { return GW_ERR_INVALID_HEADER }
        return GW_OK
    }

    package static func isValidName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { isValidName(UnsafeRawBufferPointer($0)) }
    }

    /// Eight bytes at a time while they are letters, digits and `-` (every name a plugin usually sets), then
    /// byte by byte through the table: ~2 instructions a byte instead of ~8.
    package static func isValidName(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !bytes.isEmpty else { return false }
        var i = 0
        while i + 8 <= bytes.count, isCommonNameWord(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
        return tchar.withUnsafeBufferPointer { table in
            while i < bytes.count {
                guard table[Int(bytes[i])] else { return false }
                i += 1
            }
            return true
        }
    }

    /// Whether each of the eight bytes of `word` is an ASCII letter, a digit or `-`. Each range test adds to
    /// every byte what carries its bit 7 from the range's start, and not from past its end; no byte carries
    /// into the next, since every byte is below 0x80 first.
    @inline(__always)
    static func isCommonNameWord(_ word: UInt64) -> Bool {
        let high: UInt64 = 0x8080_8080_8080_8080
        guard word & high == 0 else { return false }
        func inRange(_ first: UInt8, _ last: UInt8) -> UInt64 {
            let ones: UInt64 = 0x0101_0101_0101_0101
            return (word &+ ones &* UInt64(0x80 - first)) & ~(word &+ ones &* UInt64(0x7F - last)) & high
        }
        let ok = inRange(0x61, 0x7A) | inRange(0x41, 0x5A) | inRange(0x30, 0x39) | inRange(0x2D, 0x2D)
        return ok == high
    }

    package static func isValidValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { isValidValue(UnsafeRawBufferPointer($0)) }
    }

    /// No NUL, CR or LF.
    package static func isValidValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return true }
        return memchr(base, 0, bytes.count) == nil && memchr(base, 10, bytes.count) == nil && memchr(base, 13, bytes.count) == nil
    }
}

extension HostAPI {
    package static var abiVersion: String { "\(GW_PLUGIN_ABI_MAJOR).\(GW_PLUGIN_ABI_MINOR)" }
}
