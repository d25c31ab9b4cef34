import GatewayPluginKit

extension AuditLog {
    /// A chain entry's config, decoded strictly by the SDK's decoder (a misspelt key is an error naming it).
    struct Config: Decodable {
        /// The audit log file (required).
        var path: String
        var events = ["request", "handshake_rejected", "tunnel"]
        /// Fields to write; nil: every field.
        var fields: [String]?
        var queueSize: Int?
        var whenFull = "block"
        var fsync = "interval"
        var fsyncIntervalMs: Int?
        var maxSize: Int64?
        var maxFiles: Int?
        /// While lines cannot be written: `deny` answers the listener's requests 503, `allow` lets them through.
        var onWriteError = "deny"
        /// How long shutdown waits for queued lines to reach the file before it gives up on them.
        var closeTimeoutMs = 5_000

        enum CodingKeys: String, CodingKey {
            case path, events, fields, fsync
            case queueSize = "queue_size"
            case whenFull = "when_full"
            case fsyncIntervalMs = "fsync_interval_ms"
            case maxSize = "max_size"
            case maxFiles = "max_files"
            case onWriteError = "on_write_error"
            case closeTimeoutMs = "close_timeout_ms"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard container.contains(.path) else { throw PluginConfigError("path: required (the audit log file)") }
            path = try container.decode(String.self, forKey: .path)
            events = try container.decodeIfPresent([String].self, forKey: .events) ?? events
            fields = try container.decodeIfPresent([String].self, forKey: .fields)
            queueSize = try container.decodeIfPresent(Int.self, forKey: .queueSize)
            whenFull = try container.decodeIfPresent(String.self, forKey: .whenFull) ?? whenFull
            fsync = try container.decodeIfPresent(String.self, forKey: .fsync) ?? fsync
            fsyncIntervalMs = try container.decodeIfPresent(Int.self, forKey: .fsyncIntervalMs)
            maxSize = try container.decodeIfPresent(Int64.self, forKey: .maxSize)
            maxFiles = try container.decodeIfPresent(Int.self, forKey: .maxFiles)
            onWriteError = try container.decodeIfPresent(String.self, forKey: .onWriteError) ?? onWriteError
            closeTimeoutMs = try container.decodeIfPresent(Int.self, forKey: .closeTimeoutMs) ?? closeTimeoutMs
        }
    }
}
