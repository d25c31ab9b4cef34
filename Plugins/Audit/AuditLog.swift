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
    /// `events` as flags: a Set<String> look-up hashed a String on every request.
    let logsRequests: Bool
    let logsRejections: Bool
    /// nil: every field.
    let fields: Set<String>?
    /// `on_write_error: deny`: requests are answered 503 while the writer cannot write.
    let denyWhileFailing: Bool

    static let requestFields = [
        "request_id", "listener", "client_address", "client_port", "tls_version", "tls_cipher", "ja4", "subject", "issuer", "serial",
        "fingerprint", "sans", "method", "host", "path", "status", "bytes_in", "bytes_out", "duration_ms", "backend_server",
        "decision", "answered_by", "reason", "client_aborted", "response_incomplete", "ja3",
    ]
    static let rejectionFields = ["listener", "client_address", "client_port", "sni", "ja4", "ja3", "reason", "detail", "subject", "issuer", "serial", "fingerprint"]
    /// `ja3` is written only when `fields` lists it (a second fingerprint most operators do not need); decided
    /// once here, not by a set look-up per request.
    let logsJA3: Bool

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
        switch config.onWriteError {
        case "deny": denyWhileFailing = true
        case "allow": denyWhileFailing = false
        case let other: throw ConfigError("on_write_error: '\(other)' is not one of: deny | allow")
        }
        options.reportsReadiness = denyWhileFailing
        guard (0...600_000).contains(config.closeTimeoutMs) else { throw ConfigError("close_timeout_ms: must be between 0 and 600000") }
        options.closeTimeout = Double(config.closeTimeoutMs) / 1000
        for event in config.events where event != "request" && event != "handshake_rejected" {
            throw ConfigError("events: '\(event)' is not one of: request | handshake_rejected")
        }
        logsRequests = config.events.contains("request")
        logsRejections = config.events.contains("handshake_rejected")
        if let list = config.fields {
            for field in list where !Self.requestFields.contains(field) && !Self.rejectionFields.contains(field) {
                throw ConfigError("fields: unknown field '\(field)'")
            }
            fields = Set(list)
        } else {
            fields = nil
        }
        logsJA3 = fields?.contains("ja3") ?? false
        do {
            writer = try AuditWriter(options: options, tag: tag)
        } catch let error as AuditWriter.OpenError {
            throw ConfigError(error.message)
        }
    }

    func reopen() { writer.requestReopen() }

    /// Fails closed: while the last write to the file failed (a full disk, a file made read-only), the
    /// listener's requests are answered 503 with `on_write_error: deny`, so nothing is served that cannot be
    /// audited. One atomic load per request otherwise.
    func onRequestHeaders(_ request: GatewayRequest) -> gw_action {
        guard denyWhileFailing, writer.isFailing else { return GW_CONTINUE }
        _ = request.setVar("decision_reason", "audit log unavailable")
        guard request.respond(status: 503, headers: [("content-type", "text/plain; charset=utf-8"), ("retry-after", "5")], body: "audit log unavailable\n") == GW_OK else {
            return GW_FAILED
        }
        return GW_STOP
    }

    func shutdown() { writer.close() }

    func onConnection(_ connection: GatewayRequest) {
        guard logsRejections, let verify = connection.string(GW_ATTR_CLIENT_VERIFY), verify.hasPrefix("FAILED:") else { return }
        var line = JSONLine(event: "handshake_rejected", fields: fields)
        line.add("listener", connection.string(GW_ATTR_LISTENER_NAME))
        line.add("client_address", connection.string(GW_ATTR_CLIENT_ADDRESS))
        line.add("client_port", connection.integer(GW_ATTR_CLIENT_PORT))
        line.add("sni", connection.string(GW_ATTR_SNI))
        line.add("ja4", connection.string(GW_ATTR_CLIENT_JA4))
        if logsJA3 { line.add("ja3", connection.string(GW_ATTR_CLIENT_JA3)) }
        line.add("reason", String(verify.dropFirst(7)))
        line.add("detail", connection.string(GW_ATTR_VERIFY_ERROR))
        line.add("subject", connection.string(GW_ATTR_CLIENT_SUBJECT))
        line.add("issuer", connection.string(GW_ATTR_CLIENT_ISSUER))
        line.add("serial", connection.string(GW_ATTR_CLIENT_SERIAL))
        line.add("fingerprint", connection.string(GW_ATTR_CLIENT_FINGERPRINT_SHA256))
        line.submit(to: writer)
    }

    /// Builds the line from the host's views, without a String per attribute: this runs for every request.
    func onComplete(_ request: GatewayRequest) {
        guard logsRequests else { return }
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
        if let us = request.integer(GW_ATTR_DURATION_US) { line.addMilliseconds("duration_ms", microseconds: us) }
        let backendServer = request.attribute(GW_ATTR_BACKEND_SERVER)
        line.add("backend_server", backendServer)
        if let by = request.attribute(GW_ATTR_ANSWERED_BY) {
            line.addWord("decision", "answered")
            line.add("answered_by", by)
        } else if status != nil {
            line.addWord("decision", backendServer == nil ? "answered_by_gateway" : "forwarded")
        }
        // Why a plugin let the request through or answered it (e.g. the authorization rule that decided).
        if line.wants("reason") { line.add("reason", request.variable("decision_reason")) }
        if request.integer(GW_ATTR_CLIENT_ABORTED) == 1 { line.addTrue("client_aborted") }
        if request.integer(GW_ATTR_RESPONSE_INCOMPLETE) == 1 { line.addTrue("response_incomplete") }
        line.submit(to: writer)
    }

    /// The fields that stay the same for every request of a connection, serialized (`,"listener":...`).
    private func connectionFields(_ request: GatewayRequest) -> [UInt8] {
        var line = JSONLine(fragmentWith: fields)
        line.add("listener", request.attribute(GW_ATTR_LISTENER_NAME))
        line.add("client_address", request.attribute(GW_ATTR_CLIENT_ADDRESS))
        line.add("client_port", request.integer(GW_ATTR_CLIENT_PORT))
        line.add("tls_version", request.attribute(GW_ATTR_TLS_VERSION))
        line.add("tls_cipher", request.attribute(GW_ATTR_TLS_CIPHER))
        line.add("ja4", request.attribute(GW_ATTR_CLIENT_JA4))
        if logsJA3 { line.add("ja3", request.attribute(GW_ATTR_CLIENT_JA3)) }
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

    static let sanKinds: [(gw_attribute, StaticString)] = [
        (GW_ATTR_CLIENT_SAN_DNS, "DNS:"), (GW_ATTR_CLIENT_SAN_URI, "URI:"), (GW_ATTR_CLIENT_SAN_IP, "IP:"), (GW_ATTR_CLIENT_SAN_EMAIL, "email:"),
    ]
}

/// Builds one JSON object as UTF-8 bytes, fields in a fixed order, values escaped. A request line is built
/// in its thread's reused buffer (`ThreadScratch`) and copied once, into the writer's batch: no allocation
/// and no intermediate String per line in the steady state.
struct JSONLine {
    private var bytes: [UInt8] = []
    private let fields: Set<String>?
    /// The buffer is the thread's scratch line (given back by `submit`).
    private let borrowed: Bool

    /// A run of fields without the object's start, for `appendRaw` into a line.
    init(fragmentWith fields: Set<String>?) {
        self.fields = fields
        borrowed = false
    }

    var fragment: [UInt8] { bytes }

    mutating func appendRaw(_ fragment: [UInt8]) { bytes.append(contentsOf: fragment) }

    init(event: StaticString, fields: Set<String>?) {
        self.fields = fields
        let scratch = ThreadScratch.current
        swap(&bytes, &scratch.line)
        borrowed = true
        bytes.removeAll(keepingCapacity: true)
        if bytes.capacity < 1024 { bytes.reserveCapacity(1024) }
        append("{\"time\":\"")
        Self.appendTimestamp(to: &bytes, scratch: scratch)
        append("\",\"event\":\"")
        append(event)
        bytes.append(UInt8(ascii: "\""))
    }

    func wants(_ key: StaticString) -> Bool {
        guard let fields else { return true }
        return fields.contains(key.description)
    }

    private mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `,"key":` (and the opening quote of a string value) with one append: three or four appends cost ~120
    /// instructions more per field, ~20 fields a line.
    private mutating func key(_ key: StaticString, quote: Bool = false) {
        key.withUTF8Buffer { name in
            let count = name.count + (quote ? 5 : 4)
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { piece in
                piece[0] = UInt8(ascii: ",")
                piece[1] = UInt8(ascii: "\"")
                _ = UnsafeMutableBufferPointer(rebasing: piece[2..<(2 + name.count)]).initialize(from: name)
                piece[name.count + 2] = UInt8(ascii: "\"")
                piece[name.count + 3] = UInt8(ascii: ":")
                if quote { piece[name.count + 4] = UInt8(ascii: "\"") }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: piece[0..<count]))
            }
        }
    }

    mutating func add(_ key: StaticString, _ value: String?) {
        guard var value, wants(key) else { return }
        self.key(key, quote: true)
        value.withUTF8 { JSONText.appendEscaped(UnsafeRawBufferPointer($0), to: &bytes) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A value the host lent for the duration of the hook.
    mutating func add(_ key: StaticString, _ value: gw_str?) {
        guard let value, wants(key) else { return }
        self.key(key, quote: true)
        JSONText.appendEscaped(value.buffer, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func add(_ key: StaticString, _ value: Int64?) {
        guard let value, wants(key) else { return }
        self.key(key)
        Self.appendDecimal(value, to: &bytes)
    }

    /// A string known to need no escaping (a fixed word of the log's vocabulary).
    mutating func addWord(_ key: StaticString, _ word: StaticString) {
        guard wants(key) else { return }
        self.key(key, quote: true)
        append(word)
        bytes.append(UInt8(ascii: "\""))
    }

    /// One item of a list built item by item (`closeList` ends it): `"<prefix><value>"`.
    mutating func appendListItem(_ key: StaticString, prefix: StaticString, _ value: gw_str, first: Bool) {
        if first {
            self.key(key)
            bytes.append(UInt8(ascii: "["))
        } else {
            bytes.append(UInt8(ascii: ","))
        }
        bytes.append(UInt8(ascii: "\""))
        append(prefix)
        JSONText.appendEscaped(value.buffer, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func closeList() { bytes.append(UInt8(ascii: "]")) }

    mutating func addTrue(_ key: StaticString) {
        guard wants(key) else { return }
        self.key(key)
        append("true")
    }

    /// Microseconds as milliseconds with three decimals, e.g. 12407 -> 12.407.
    mutating func addMilliseconds(_ key: StaticString, microseconds: Int64) {
        guard wants(key) else { return }
        self.key(key)
        if microseconds < 0 { bytes.append(UInt8(ascii: "-")) }
        let magnitude = microseconds.magnitude
        Self.appendDecimal(Int64(magnitude / 1000), to: &bytes)
        bytes.append(UInt8(ascii: "."))
        Self.appendPadded(Int(magnitude % 1000), width: 3, to: &bytes)
    }

    /// Ends the object, hands the line to `writer` (one copy) and gives the buffer back to the thread.
    mutating func submit(to writer: AuditWriter) {
        bytes.append(UInt8(ascii: "}"))
        writer.submit(bytes)
        if borrowed { swap(&bytes, &ThreadScratch.current.line) }
    }

    /// The finished object (tests).
    consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// `value` in decimal.
    static func appendDecimal(_ value: Int64, to bytes: inout [UInt8]) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for the 20 digits of UInt64.max
        withUnsafeMutableBytes(of: &digits) { buffer in
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude != 0
            UnsafeRawBufferPointer(rebasing: buffer[at...]).withMemoryRebound(to: UInt8.self) { bytes.append(contentsOf: $0) }
        }
    }

    /// `value` (>= 0) in decimal, zero-padded to `width` digits.
    static func appendPadded(_ value: Int, width: Int, to bytes: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        while divisor > value && divisor > 1 {
            bytes.append(UInt8(ascii: "0"))
            divisor /= 10
        }
        appendDecimal(Int64(value), to: &bytes)
    }

    /// Local time with milliseconds and the UTC offset, e.g. 2026-11-29T02:50:01.123+00:00. The part up to
    /// the seconds is formatted once per second (per thread); each line only adds the milliseconds.
    static func appendTimestamp(to bytes: inout [UInt8], scratch: ThreadScratch) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        if scratch.second != now.tv_sec {
            var seconds = now.tv_sec
            var parts = tm()
            localtime_r(&seconds, &parts)
            let offset = Int(parts.tm_gmtoff)
            let minutes = abs(offset) / 60
            var prefix: [UInt8] = []
            appendPadded(Int(parts.tm_year) + 1900, width: 4, to: &prefix)
            prefix.append(UInt8(ascii: "-"))
            appendPadded(Int(parts.tm_mon) + 1, width: 2, to: &prefix)
            prefix.append(UInt8(ascii: "-"))
            appendPadded(Int(parts.tm_mday), width: 2, to: &prefix)
            prefix.append(UInt8(ascii: "T"))
            appendPadded(Int(parts.tm_hour), width: 2, to: &prefix)
            prefix.append(UInt8(ascii: ":"))
            appendPadded(Int(parts.tm_min), width: 2, to: &prefix)
            prefix.append(UInt8(ascii: ":"))
            appendPadded(Int(parts.tm_sec), width: 2, to: &prefix)
            prefix.append(UInt8(ascii: "."))
            var suffix: [UInt8] = [offset < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+")]
            appendPadded(minutes / 60, width: 2, to: &suffix)
            suffix.append(UInt8(ascii: ":"))
            appendPadded(minutes % 60, width: 2, to: &suffix)
            scratch.second = now.tv_sec
            scratch.prefix = prefix
            scratch.suffix = suffix
        }
        bytes.append(contentsOf: scratch.prefix)
        appendPadded(Int(now.tv_nsec / 1_000_000), width: 3, to: &bytes)
        bytes.append(contentsOf: scratch.suffix)
    }
}
