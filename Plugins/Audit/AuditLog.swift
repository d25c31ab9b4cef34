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
    /// The instance's tag: also the key of the connection fields the host keeps for it (ABI 1.4).
    let tag: UInt64
    /// `events` as flags: a Set<String> look-up hashed a String on every request.
    let logsRequests: Bool
    let logsRejections: Bool
    /// A WebSocket tunnel's line, written when it closes (its request completes with status 101).
    let logsTunnels: Bool
    /// What `fields` lists (every field but `ja3` without it).
    let fields: AuditFieldSet
    /// `on_write_error: deny`: requests are answered 503 while the writer cannot write.
    let denyWhileFailing: Bool


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
        for event in config.events where event != "request" && event != "handshake_rejected" && event != "tunnel" {
            throw ConfigError("events: '\(event)' is not one of: request | handshake_rejected | tunnel")
        }
        logsRequests = config.events.contains("request")
        logsRejections = config.events.contains("handshake_rejected")
        logsTunnels = config.events.contains("tunnel")
        if let list = config.fields {
            fields = AuditFieldSet(try list.map { name in
                guard let field = AuditField(name: name) else { throw ConfigError("fields: unknown field '\(name)'") }
                return field
            })
        } else {
            // `ja3` only when listed: a second fingerprint most operators do not need.
            fields = .default
        }
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
        Self.addPeer(&line, connection)
        line.add(.sni, connection.attribute(GW_ATTR_SNI))
        line.add(.ja4, connection.attribute(GW_ATTR_CLIENT_JA4))
        if line.wants(.ja3) { line.add(.ja3, connection.attribute(GW_ATTR_CLIENT_JA3)) }
        line.add(.reason, String(verify.dropFirst(7)))
        line.add(.detail, connection.attribute(GW_ATTR_VERIFY_ERROR))
        Self.addCertificate(&line, connection)
        line.submit(to: writer)
    }

    /// Builds the line from the host's views, without a String per attribute: this runs for every request.
    func onComplete(_ request: GatewayRequest) {
        guard logsRequests || logsTunnels else { return }
        // The request's attributes in one host call (ABI 1.6), into entries on the stack.
        withUnsafeTemporaryAllocation(of: gw_attribute_value.self, capacity: Completion.count) { values in
            for slot in 0..<Completion.count { values.initializeElement(at: slot, to: gw_attribute_value(Completion(rawValue: slot)!.attribute)) }
            // A stale handle (not within this hook) would leave every entry not found: the line is written anyway.
            _ = request.read(values)
            func text(_ slot: Completion) -> gw_str? { values[slot.rawValue].textValue }
            func integer(_ slot: Completion) -> Int64? { values[slot.rawValue].integerValue }
            let status = integer(.status)
            // A 101 completes when the tunnel it opened closes: its line has the bytes each way and how long it was open.
            let tunnel = status == 101
            guard tunnel ? logsTunnels : logsRequests else { return }
            var line = JSONLine(event: tunnel ? "tunnel" : "request", fields: fields)
            line.add(.requestID, integer(.requestID))
            // Kept with the connection by the host (ABI 1.4), released when it ends.
            line.appendRaw(request.connectionData(tag) { ConnectionFields(connectionFields(request)) }.bytes)
            line.add(.method, text(.method))
            line.add(.host, text(.host))
            line.add(.path, text(.path))
            line.add(.status, status)
            line.add(.bytesIn, integer(.bytesReceived))
            line.add(.bytesOut, integer(.bytesSent))
            if let us = integer(.durationMicroseconds) { line.addMilliseconds(.durationMs, microseconds: us) }
            let backendServer = text(.backendServer)
            line.add(.backendServer, backendServer)
            if let by = text(.answeredBy) {
                line.addWord(.decision, "answered")
                line.add(.answeredBy, by)
            } else if status != nil {
                line.addWord(.decision, backendServer == nil ? "answered_by_gateway" : "forwarded")
            }
            // Why a plugin let the request through or answered it (e.g. the authorization rule that decided).
            if line.wants(.reason) { line.add(.reason, request.variableView("decision_reason")) }
            if integer(.clientAborted) == 1 { line.addTrue(.clientAborted) }
            if integer(.responseIncomplete) == 1 { line.addTrue(.responseIncomplete) }
            line.submit(to: writer)
        }
    }

    /// What `onComplete` reads: each case is an entry of its `get_attributes` call, at its raw value.
    private enum Completion: Int, CaseIterable {
        case requestID, method, host, path, status, bytesReceived, bytesSent, durationMicroseconds, backendServer, answeredBy
        case clientAborted, responseIncomplete

        static let count = allCases.count

        var attribute: gw_attribute {
            switch self {
            case .requestID: GW_ATTR_REQUEST_ID
            case .method: GW_ATTR_METHOD
            case .host: GW_ATTR_HOST
            case .path: GW_ATTR_PATH
            case .status: GW_ATTR_RESPONSE_STATUS
            case .bytesReceived: GW_ATTR_BYTES_RECEIVED
            case .bytesSent: GW_ATTR_BYTES_SENT
            case .durationMicroseconds: GW_ATTR_DURATION_US
            case .backendServer: GW_ATTR_BACKEND_SERVER
            case .answeredBy: GW_ATTR_ANSWERED_BY
            case .clientAborted: GW_ATTR_CLIENT_ABORTED
            case .responseIncomplete: GW_ATTR_RESPONSE_INCOMPLETE
            }
        }
    }

    /// The fields that stay the same for every request of a connection, serialized (`,"listener":...`).
    private func connectionFields(_ request: GatewayRequest) -> [UInt8] {
        var line = JSONLine(fragmentWith: fields)
        Self.addPeer(&line, request)
        line.add(.tlsVersion, request.attribute(GW_ATTR_TLS_VERSION))
        line.add(.tlsCipher, request.attribute(GW_ATTR_TLS_CIPHER))
        line.add(.ja4, request.attribute(GW_ATTR_CLIENT_JA4))
        if line.wants(.ja3) { line.add(.ja3, request.attribute(GW_ATTR_CLIENT_JA3)) }
        Self.addCertificate(&line, request)
        if line.wants(.sans) {
            var first = true
            for (attribute, prefix) in Self.sanKinds {
                var index: UInt32 = 0
                while let value = request.attribute(attribute, index: index) {
                    line.appendListItem(.sans, prefix: prefix, value, first: first)
                    first = false
                    index += 1
                }
            }
            if !first { line.closeList() }
        }
        return line.fragment
    }

    /// Who connected: the listener, the client's address and port (a request's and a refused handshake's lines).
    private static func addPeer(_ line: inout JSONLine, _ handle: GatewayRequest) {
        line.add(.listener, handle.attribute(GW_ATTR_LISTENER_NAME))
        line.add(.clientAddress, handle.attribute(GW_ATTR_CLIENT_ADDRESS))
        line.add(.clientPort, handle.integer(GW_ATTR_CLIENT_PORT))
    }

    /// The client certificate's subject, issuer, serial and SHA-256 fingerprint.
    private static func addCertificate(_ line: inout JSONLine, _ handle: GatewayRequest) {
        line.add(.subject, handle.attribute(GW_ATTR_CLIENT_SUBJECT))
        line.add(.issuer, handle.attribute(GW_ATTR_CLIENT_ISSUER))
        line.add(.serial, handle.attribute(GW_ATTR_CLIENT_SERIAL))
        line.add(.fingerprint, handle.attribute(GW_ATTR_CLIENT_FINGERPRINT_SHA256))
    }

    static let sanKinds: [(gw_attribute, StaticString)] = [
        (GW_ATTR_CLIENT_SAN_DNS, "DNS:"), (GW_ATTR_CLIENT_SAN_URI, "URI:"), (GW_ATTR_CLIENT_SAN_IP, "IP:"), (GW_ATTR_CLIENT_SAN_EMAIL, "email:"),
    ]
}
