import Foundation
import GatewayPluginKit

#if canImport(Glibc)
import Glibc
#endif

/// Writes one JSON object per line for every request and every refused handshake: who the client was (from
/// its certificate), what it asked, what it got, and who decided. Hooks only build the line; the file is
/// written by `AuditWriter`'s thread.
final class AuditLog: GatewayPlugin, @unchecked Sendable {
    let writer: AuditWriter
    let events: Set<String>
    /// nil: every field.
    let fields: Set<String>?

    static let requestFields = [
        "request_id", "listener", "client_address", "client_port", "tls_version", "tls_cipher", "subject", "issuer", "serial",
        "fingerprint", "sans", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_ms", "backend_server",
        "decision", "answered_by", "reason", "client_aborted",
    ]
    static let rejectionFields = ["listener", "client_address", "client_port", "sni", "reason", "detail", "subject", "issuer", "serial", "fingerprint"]

    typealias ConfigError = PluginConfigError

    init(tag: UInt64, config json: String) throws {
        let config = try ConfigError.mapping(
            json, known: ["path", "events", "fields", "queue_size", "when_full", "fsync", "fsync_interval_ms", "max_size", "max_files"])
        let types: [(String, Bool, String)] = [
            ("path", config["path"] is String, "a string"), ("events", config["events"] is [String], "a list of strings"),
            ("fields", config["fields"] is [String], "a list of strings"), ("queue_size", config["queue_size"] is Int, "an integer"),
            ("when_full", config["when_full"] is String, "a string"), ("fsync", config["fsync"] is String, "a string"),
            ("fsync_interval_ms", config["fsync_interval_ms"] is Int, "an integer"), ("max_size", config["max_size"] is Int, "an integer"),
            ("max_files", config["max_files"] is Int, "an integer"),
        ]
        for (key, ok, expected) in types where config[key] != nil && !ok { throw ConfigError("\(key): expected \(expected)") }
        guard let path = config["path"] as? String, !path.isEmpty else { throw ConfigError("path: required (the audit log file)") }
        var options = AuditWriter.Options(path: path)
        if let size = config["queue_size"] {
            guard let n = size as? Int, n >= 1 else { throw ConfigError("queue_size: must be a positive integer") }
            options.queueSize = n
        }
        switch config["when_full"] as? String ?? "block" {
        case "block": options.dropWhenFull = false
        case "drop": options.dropWhenFull = true
        case let other: throw ConfigError("when_full: '\(other)' is not one of: block | drop")
        }
        guard let fsync = AuditWriter.FsyncPolicy(rawValue: config["fsync"] as? String ?? "interval") else {
            throw ConfigError("fsync: must be one of: never | interval | always")
        }
        options.fsync = fsync
        if let ms = config["fsync_interval_ms"] as? Int { options.fsyncInterval = Double(max(ms, 1)) / 1000 }
        if let max = config["max_size"] as? Int { options.maxSize = Int64(max) }
        if let files = config["max_files"] as? Int {
            guard files >= 1 else { throw ConfigError("max_files: must be at least 1") }
            options.maxFiles = files
        }
        let eventList = config["events"] as? [String] ?? ["request", "handshake_rejected"]
        for event in eventList where event != "request" && event != "handshake_rejected" {
            throw ConfigError("events: '\(event)' is not one of: request | handshake_rejected")
        }
        events = Set(eventList)
        if let list = config["fields"] as? [String] {
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

    func onComplete(_ request: GatewayRequest) {
        guard events.contains("request") else { return }
        var line = JSONLine(event: "request", fields: fields)
        line.add("request_id", request.integer(GW_ATTR_REQUEST_ID))
        line.add("listener", request.string(GW_ATTR_LISTENER_NAME))
        line.add("client_address", request.string(GW_ATTR_CLIENT_ADDRESS))
        line.add("client_port", request.integer(GW_ATTR_CLIENT_PORT))
        line.add("tls_version", request.string(GW_ATTR_TLS_VERSION))
        line.add("tls_cipher", request.string(GW_ATTR_TLS_CIPHER))
        line.add("subject", request.string(GW_ATTR_CLIENT_SUBJECT))
        line.add("issuer", request.string(GW_ATTR_CLIENT_ISSUER))
        line.add("serial", request.string(GW_ATTR_CLIENT_SERIAL))
        line.add("fingerprint", request.string(GW_ATTR_CLIENT_FINGERPRINT_SHA256))
        var sans: [String] = []
        for (attribute, prefix) in [(GW_ATTR_CLIENT_SAN_DNS, "DNS"), (GW_ATTR_CLIENT_SAN_URI, "URI"), (GW_ATTR_CLIENT_SAN_IP, "IP"), (GW_ATTR_CLIENT_SAN_EMAIL, "email")] {
            sans += request.strings(attribute).map { "\(prefix):\($0)" }
        }
        if !sans.isEmpty { line.add("sans", sans) }
        line.add("method", request.string(GW_ATTR_METHOD))
        line.add("host", request.string(GW_ATTR_HOST))
        line.add("path", request.string(GW_ATTR_PATH))
        line.add("status", request.integer(GW_ATTR_RESPONSE_STATUS))
        line.add("bytes_in", request.integer(GW_ATTR_BYTES_RECEIVED))
        line.add("bytes_out", request.integer(GW_ATTR_BYTES_SENT))
        if let us = request.integer(GW_ATTR_DURATION_US) { line.addRaw("duration_ms", String(format: "%.3f", Double(us) / 1000)) }
        line.add("backend_server", request.string(GW_ATTR_BACKEND_SERVER))
        if let by = request.string(GW_ATTR_ANSWERED_BY) {
            line.add("decision", "answered")
            line.add("answered_by", by)
        } else {
            line.add("decision", request.integer(GW_ATTR_RESPONSE_STATUS).map { _ in request.string(GW_ATTR_BACKEND_SERVER) == nil ? "answered_by_gateway" : "forwarded" })
        }
        // Why a plugin let the request through or answered it (e.g. the authorization rule that decided).
        line.add("reason", request.variable("decision_reason"))
        if request.integer(GW_ATTR_CLIENT_ABORTED) == 1 { line.addRaw("client_aborted", "true") }
        writer.submit(line.finish())
    }
}

/// Builds one JSON object, fields in a fixed order, values escaped.
struct JSONLine {
    private var text: String
    private let fields: Set<String>?

    init(event: String, fields: Set<String>?) {
        self.fields = fields
        text = "{\"time\":\"\(Self.timestamp())\",\"event\":\"\(event)\""
    }

    mutating func add(_ key: String, _ value: String?) {
        guard let value, fields?.contains(key) ?? true else { return }
        text += ",\"\(key)\":" + Self.quote(value)
    }

    mutating func add(_ key: String, _ value: Int64?) {
        guard let value, fields?.contains(key) ?? true else { return }
        text += ",\"\(key)\":\(value)"
    }

    mutating func add(_ key: String, _ values: [String]) {
        guard fields?.contains(key) ?? true else { return }
        text += ",\"\(key)\":[" + values.map(Self.quote).joined(separator: ",") + "]"
    }

    mutating func addRaw(_ key: String, _ json: String) {
        guard fields?.contains(key) ?? true else { return }
        text += ",\"\(key)\":\(json)"
    }

    func finish() -> String { text + "}" }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029:
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Local time with milliseconds and the UTC offset, e.g. 2026-11-29T02:50:01.123+00:00.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        let offset = parts.tm_gmtoff
        let sign = offset < 0 ? "-" : "+"
        let minutes = abs(offset) / 60
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03d%@%02d:%02d",
                      parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec,
                      Int(now.tv_nsec / 1_000_000), sign, minutes / 60, minutes % 60)
    }
}
