import Foundation
import GatewayPluginKit

#if canImport(Glibc)
import Glibc
#endif

/// Writes one JSON object per line for every request and every refused handshake: who the client was (from
/// its certificate), what it asked, what it got, and who decided. Hooks only build the line; the file is
/// written by `AuditWriter`'s thread.
final class AuditLog: GatewayPlugin, Sendable {
    let writer: AuditWriter
    /// The instance's tag: with the connection id, the key of its cached connection fields.
    let tag: UInt64
    let events: Set<String>
    /// nil: every field.
    let fields: Set<String>?

    static let requestFields = [
        "request_id", "listener", "client_address", "client_port", "tls_version", "tls_cipher", "subject", "issuer", "serial",
        "fingerprint", "sans", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_ms", "backend_server",
        "decision", "answered_by", "reason", "client_aborted", "response_incomplete",
    ]
    static let rejectionFields = ["listener", "client_address", "client_port", "sni", "reason", "detail", "subject", "issuer", "serial", "fingerprint"]

    typealias ConfigError = PluginConfigError

    init(tag: UInt64, config json: String) throws {
        self.tag = tag
        let config = try PluginConfig(json: json, tag: tag).decode(Config.self)
        guard !config.path.isEmpty else { throw ConfigError("path: required (the audit log file)") }
        var options = AuditWriter.Options(path: config.path)
        if let size = config.queueSize {
            guard size >= 1 else { throw ConfigError("queue_size: must be a positive integer") }
            options.queueSize = size
        }
        switch config.whenFull {
        case "block": options.dropWhenFull = false
        case "drop": options.dropWhenFull = true
        case let other: throw ConfigError("when_full: '\(other)' is not one of: block | drop")
        }
        guard let fsync = AuditWriter.FsyncPolicy(rawValue: config.fsync) else {
            throw ConfigError("fsync: must be one of: never | interval | always")
        }
        options.fsync = fsync
        if let ms = config.fsyncIntervalMs {
            guard ms >= 1 else { throw ConfigError("fsync_interval_ms: must be at least 1") }
            options.fsyncInterval = Double(ms) / 1000
        }
        if let max = config.maxSize {
            guard max >= 0 else { throw ConfigError("max_size: must be 0 (no rotation) or a size in bytes") }
            options.maxSize = max
        }
        if let files = config.maxFiles {
            guard files >= 1 else { throw ConfigError("max_files: must be at least 1") }
            options.maxFiles = files
        }
        for event in config.events where event != "request" && event != "handshake_rejected" {
            throw ConfigError("events: '\(event)' is not one of: request | handshake_rejected")
        }
        events = Set(config.events)
        if let list = config.fields {
            for field in list where !Self.requestFields.contains(field) && !Self.rejectionFields.contains(field) {
                throw ConfigError("fields: unknown field '\(field)'")
            }
            fields = Set(list)
        } else {
            fields = nil
        }
        do {
            writer = try AuditWriter(options: options, tag: tag)
        } catch let error as AuditWriter.OpenError {
            throw ConfigError(error.message)
        }
    }

    func reopen() { writer.requestReopen() }

    func shutdown() { writer.close() }

    func onConnection(_ connection: GatewayRequest) {
        guard events.contains("handshake_rejected"), let verify = connection.string(GW_ATTR_CLIENT_VERIFY), verify.hasPrefix("FAILED:") else { return }
        var line = JSONLine(event: "handshake_rejected", fields: fields)
        line.add("listener", connection.string(GW_ATTR_LISTENER_NAME))
        line.add("client_address", connection.string(GW_ATTR_CLIENT_ADDRESS))
        line.add("client_port", connection.integer(GW_ATTR_CLIENT_PORT))
        line.add("sni", connection.string(GW_ATTR_SNI))
        line.add("reason", String(verify.dropFirst(7)))
        line.add("detail", connection.string(GW_ATTR_VERIFY_ERROR))
        line.add("subject", connection.string(GW_ATTR_CLIENT_SUBJECT))
        line.add("issuer", connection.string(GW_ATTR_CLIENT_ISSUER))
        line.add("serial", connection.string(GW_ATTR_CLIENT_SERIAL))
        line.add("fingerprint", connection.string(GW_ATTR_CLIENT_FINGERPRINT_SHA256))
        writer.submit(line.finish())
    }

    /// Builds the line from the host's views, without a String per attribute: this runs for every request.
    func onComplete(_ request: GatewayRequest) {
        guard events.contains("request") else { return }
        var line = JSONLine(event: "request", fields: fields)
        line.add("request_id", request.integer(GW_ATTR_REQUEST_ID))
        if let connection = request.integer(GW_ATTR_CONNECTION_ID) {
            line.appendRaw(ConnectionFragments.current.fragment(tag: tag, connection: connection) { connectionFields(request) })
        } else {
            line.appendRaw(connectionFields(request))
        }
        line.add("method", request.attribute(GW_ATTR_METHOD))
        line.add("host", request.attribute(GW_ATTR_HOST))
        line.add("path", request.attribute(GW_ATTR_PATH))
        let status = request.integer(GW_ATTR_RESPONSE_STATUS)
        line.add("status", status)
        line.add("bytes_in", request.integer(GW_ATTR_BYTES_RECEIVED))
        line.add("bytes_out", request.integer(GW_ATTR_BYTES_SENT))
        if let us = request.integer(GW_ATTR_DURATION_US) { line.addRaw("duration_ms", JSONLine.milliseconds(us)) }
        let backendServer = request.attribute(GW_ATTR_BACKEND_SERVER)
        line.add("backend_server", backendServer)
        if let by = request.attribute(GW_ATTR_ANSWERED_BY) {
            line.add("decision", "answered")
            line.add("answered_by", by)
        } else if status != nil {
            line.add("decision", backendServer == nil ? "answered_by_gateway" : "forwarded")
        }
        // Why a plugin let the request through or answered it (e.g. the authorization rule that decided).
        if line.wants("reason") { line.add("reason", request.variable("decision_reason")) }
        if request.integer(GW_ATTR_CLIENT_ABORTED) == 1 { line.addRaw("client_aborted", "true") }
        if request.integer(GW_ATTR_RESPONSE_INCOMPLETE) == 1 { line.addRaw("response_incomplete", "true") }
        writer.submit(line.finish())
    }

    /// The fields that stay the same for every request of a connection, serialized (`,"listener":...`).
    private func connectionFields(_ request: GatewayRequest) -> [UInt8] {
        var line = JSONLine(fragmentWith: fields)
        line.add("listener", request.attribute(GW_ATTR_LISTENER_NAME))
        line.add("client_address", request.attribute(GW_ATTR_CLIENT_ADDRESS))
        line.add("client_port", request.integer(GW_ATTR_CLIENT_PORT))
        line.add("tls_version", request.attribute(GW_ATTR_TLS_VERSION))
        line.add("tls_cipher", request.attribute(GW_ATTR_TLS_CIPHER))
        line.add("subject", request.attribute(GW_ATTR_CLIENT_SUBJECT))
        line.add("issuer", request.attribute(GW_ATTR_CLIENT_ISSUER))
        line.add("serial", request.attribute(GW_ATTR_CLIENT_SERIAL))
        line.add("fingerprint", request.attribute(GW_ATTR_CLIENT_FINGERPRINT_SHA256))
        if line.wants("sans") {
            var first = true
            for (attribute, prefix) in Self.sanKinds {
                var index: UInt32 = 0
                while let value = request.attribute(attribute, index: index) {
                    line.appendListItem("sans", prefix: prefix, value, first: first)
                    first = false
                    index += 1
                }
            }
            if !first { line.closeList() }
        }
        return line.fragment
    }

    static let sanKinds: [(gw_attribute, String)] = [
        (GW_ATTR_CLIENT_SAN_DNS, "DNS:"), (GW_ATTR_CLIENT_SAN_URI, "URI:"), (GW_ATTR_CLIENT_SAN_IP, "IP:"), (GW_ATTR_CLIENT_SAN_EMAIL, "email:"),
    ]
}

/// Builds one JSON object as UTF-8 bytes, fields in a fixed order, values escaped.
struct JSONLine {
    private var bytes: [UInt8] = []
    private let fields: Set<String>?

    /// A run of fields without the object's start, for `appendRaw` into a line.
    init(fragmentWith fields: Set<String>?) {
        self.fields = fields
    }

    var fragment: [UInt8] { bytes }

    mutating func appendRaw(_ fragment: [UInt8]) { bytes.append(contentsOf: fragment) }

    init(event: String, fields: Set<String>?) {
        self.fields = fields
        bytes.reserveCapacity(768)
        bytes.append(contentsOf: "{\"time\":\"".utf8)
        bytes.append(contentsOf: Self.timestamp().utf8)
        bytes.append(contentsOf: "\",\"event\":\"".utf8)
        bytes.append(contentsOf: event.utf8)
        bytes.append(UInt8(ascii: "\""))
    }

    func wants(_ key: String) -> Bool { fields?.contains(key) ?? true }

    private mutating func key(_ key: String) {
        bytes.append(contentsOf: ",\"".utf8)
        bytes.append(contentsOf: key.utf8)
        bytes.append(contentsOf: "\":".utf8)
    }

    mutating func add(_ key: String, _ value: String?) {
        guard var value, wants(key) else { return }
        self.key(key)
        value.withUTF8 { JSONText.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
    }

    /// A value the host lent for the duration of the hook.
    mutating func add(_ key: String, _ value: gw_str?) {
        guard let value, wants(key) else { return }
        self.key(key)
        JSONText.appendQuoted(value.buffer, to: &bytes)
    }

    mutating func add(_ key: String, _ value: Int64?) {
        guard let value, wants(key) else { return }
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func add(_ key: String, _ values: [String]) {
        guard wants(key) else { return }
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        for (i, value) in values.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            var value = value
            value.withUTF8 { JSONText.appendQuoted(UnsafeRawBufferPointer($0), to: &bytes) }
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// One item of a list built item by item (`closeList` ends it): `"<prefix><value>"`.
    mutating func appendListItem(_ key: String, prefix: String, _ value: gw_str, first: Bool) {
        if first {
            self.key(key)
            bytes.append(UInt8(ascii: "["))
        } else {
            bytes.append(UInt8(ascii: ","))
        }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: prefix.utf8)
        JSONText.appendEscaped(value.buffer, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func closeList() { bytes.append(UInt8(ascii: "]")) }

    mutating func addRaw(_ key: String, _ json: String) {
        guard wants(key) else { return }
        self.key(key)
        bytes.append(contentsOf: json.utf8)
    }

    consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// Local time with milliseconds and the UTC offset, e.g. 2026-11-29T02:50:01.123+00:00. The part up to
    /// the seconds is formatted once per second (per thread); each line only adds the milliseconds.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let cache = TimestampCache.current
        if cache.second != now.tv_sec {
            var seconds = now.tv_sec
            var parts = tm()
            localtime_r(&seconds, &parts)
            let offset = Int(parts.tm_gmtoff)
            let minutes = abs(offset) / 60
            cache.second = now.tv_sec
            cache.prefix = "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
                + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))."
            cache.suffix = (offset < 0 ? "-" : "+") + "\(pad(minutes / 60, 2)):\(pad(minutes % 60, 2))"
        }
        return cache.prefix + pad(Int(now.tv_nsec / 1_000_000), 3) + cache.suffix
    }

    /// `value` in decimal, zero-padded to `width` digits.
    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Microseconds as milliseconds with three decimals, e.g. 12407 -> "12.407".
    static func milliseconds(_ microseconds: Int64) -> String {
        let sign = microseconds < 0 ? "-" : ""
        let magnitude = Int(abs(microseconds))
        return sign + String(magnitude / 1000) + "." + pad(magnitude % 1000, 3)
    }
}

/// The per-thread cache of `JSONLine.timestamp()` (hooks run on several event loops at once).
final class TimestampCache {
    var second: Int = -1
    var prefix = ""
    var suffix = ""

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { pointer in
            if let pointer { Unmanaged<TimestampCache>.fromOpaque(pointer).release() }
        }
        return key
    }()

    static var current: TimestampCache {
        if let existing = pthread_getspecific(key) { return Unmanaged<TimestampCache>.fromOpaque(existing).takeUnretainedValue() }
        let cache = TimestampCache()
        pthread_setspecific(key, Unmanaged.passRetained(cache).toOpaque())
        return cache
    }
}
