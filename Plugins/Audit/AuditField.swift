/// A field of an audit line (`time` and `event` are always written): its key, and its bit in the `fields`
/// selection. A line writes a field as its `key` bytes then the value, with no String made of the name and,
/// with a selection, one bit test instead of a set look-up.
enum AuditField: Int, CaseIterable {
    case requestID, listener, clientAddress, clientPort, sni, tlsVersion, tlsCipher, ja4, ja3, subject
    case issuer, serial, fingerprint, sans, method, host, path, status, bytesIn, bytesOut
    case durationMs, backendServer, decision, answeredBy, reason, detail, clientAborted, responseIncomplete

    /// `,"<name>":`, what goes before the value.
    var key: StaticString {
        switch self {
        case .requestID: ",\"request_id\":"
        case .listener: ",\"listener\":"
        case .clientAddress: ",\"client_address\":"
        case .clientPort: ",\"client_port\":"
        case .sni: ",\"sni\":"
        case .tlsVersion: ",\"tls_version\":"
        case .tlsCipher: ",\"tls_cipher\":"
        case .ja4: ",\"ja4\":"
        case .ja3: ",\"ja3\":"
        case .subject: ",\"subject\":"
        case .issuer: ",\"issuer\":"
        case .serial: ",\"serial\":"
        case .fingerprint: ",\"fingerprint\":"
        case .sans: ",\"sans\":"
        case .method: ",\"method\":"
        case .host: ",\"host\":"
        case .path: ",\"path\":"
        case .status: ",\"status\":"
        case .bytesIn: ",\"bytes_in\":"
        case .bytesOut: ",\"bytes_out\":"
        case .durationMs: ",\"duration_ms\":"
        case .backendServer: ",\"backend_server\":"
        case .decision: ",\"decision\":"
        case .answeredBy: ",\"answered_by\":"
        case .reason: ",\"reason\":"
        case .detail: ",\"detail\":"
        case .clientAborted: ",\"client_aborted\":"
        case .responseIncomplete: ",\"response_incomplete\":"
        }
    }

    /// The name in the line and in the config's `fields` list.
    var name: String {
        let key = UnsafeRawBufferPointer(start: self.key.utf8Start, count: self.key.utf8CodeUnitCount)
        return String(decoding: key.dropFirst(2).dropLast(2), as: UTF8.self)
    }

    init?(name: String) {
        guard let field = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = field
    }
}

/// The fields an instance writes (`fields` in its config), one bit each.
struct AuditFieldSet: Sendable {
    private let bits: UInt64

    /// Every field but `ja3`, which is written only when listed.
    static let `default` = AuditFieldSet(bits: ~0 & ~(1 << UInt64(AuditField.ja3.rawValue)))

    private init(bits: UInt64) { self.bits = bits }

    init(_ fields: some Sequence<AuditField>) {
        bits = fields.reduce(0) { $0 | 1 << UInt64($1.rawValue) }
    }

    @inline(__always)
    func contains(_ field: AuditField) -> Bool { bits & (1 << UInt64(field.rawValue)) != 0 }
}
