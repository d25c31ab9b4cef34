import Foundation
import GatewayPluginKit
import Synchronization

/// Puts the client certificate's identity into request headers whose names the operator chooses, in the
/// formats of the load balancer and proxies backends already understand (dialects), and strips every
/// client-sent header it owns first, including underscore spellings, so a backend never sees a forged one.
/// Sendable: hooks run on every event loop at once; the per-identity cache is behind a mutex.
final class ClientCertHeaders: GatewayPlugin, Sendable {
    enum Kind {
        // From the certificate: computed once per identity and cached.
        case subject, issuer, fingerprint, serial, notAfter, notBefore, leafEscaped, chainEscaped, sans, spiffeID
        case awsValidity, xfcc, rfcCert, rfcChain
        // From the connection: passed through as views each request.
        case verify, ciphers, tlsProtocol, tlsCipher, sni, alpn, ja4, ja3

        var fromCertificate: Bool {
            switch self {
            case .verify, .ciphers, .tlsProtocol, .tlsCipher, .sni, .alpn, .ja4, .ja3: return false
            default: return true
            }
        }
    }

    struct FieldSpec {
        var key: String
        var header: String
        var kind: Kind
        var enabled: Bool
    }

    struct Field {
        var key: String
        var header: [UInt8]
        var kind: Kind
    }

    static let extras: [FieldSpec] = [
        .init(key: "start", header: "x-forwarded-clientcert-start", kind: .notBefore, enabled: false),
        .init(key: "sans", header: "x-forwarded-clientcert-sans", kind: .sans, enabled: false),
        .init(key: "spiffe_id", header: "x-forwarded-clientcert-spiffe-id", kind: .spiffeID, enabled: false),
        .init(key: "chain", header: "x-forwarded-clientcert-chain", kind: .chainEscaped, enabled: false),
        .init(key: "tls_protocol", header: "x-forwarded-clientcert-tls-protocol", kind: .tlsProtocol, enabled: false),
        .init(key: "tls_cipher", header: "x-forwarded-clientcert-tls-cipher", kind: .tlsCipher, enabled: false),
        .init(key: "sni", header: "x-forwarded-clientcert-sni", kind: .sni, enabled: false),
        .init(key: "alpn", header: "x-forwarded-clientcert-alpn", kind: .alpn, enabled: false),
        .init(key: "ja4", header: "x-forwarded-clientcert-ja4", kind: .ja4, enabled: false),
        .init(key: "ja3", header: "x-forwarded-clientcert-ja3", kind: .ja3, enabled: false),
    ]

    static let dialects: [String: [FieldSpec]] = [
        "elb": [
            .init(key: "subjectdn", header: "x-forwarded-clientcert-subjectdn", kind: .subject, enabled: true),
            .init(key: "issuerdn", header: "x-forwarded-clientcert-issuerdn", kind: .issuer, enabled: true),
            .init(key: "fingerprint", header: "x-forwarded-clientcert-fingerprint", kind: .fingerprint, enabled: true),
            .init(key: "clientverify", header: "x-forwarded-clientcert-clientverify", kind: .verify, enabled: true),
            .init(key: "serialnumber", header: "x-forwarded-clientcert-serialnumber", kind: .serial, enabled: true),
            .init(key: "ciphers", header: "x-forwarded-clientcert-ciphers", kind: .ciphers, enabled: true),
            .init(key: "end", header: "x-forwarded-clientcert-end", kind: .notAfter, enabled: true),
            .init(key: "clientcert", header: "x-forwarded-clientcert", kind: .leafEscaped, enabled: true),
        ],
        "aws": [
            .init(key: "serial", header: "x-amzn-mtls-clientcert-serial-number", kind: .serial, enabled: true),
            .init(key: "issuer", header: "x-amzn-mtls-clientcert-issuer", kind: .issuer, enabled: true),
            .init(key: "subject", header: "x-amzn-mtls-clientcert-subject", kind: .subject, enabled: true),
            .init(key: "validity", header: "x-amzn-mtls-clientcert-validity", kind: .awsValidity, enabled: true),
            .init(key: "leaf", header: "x-amzn-mtls-clientcert-leaf", kind: .leafEscaped, enabled: true),
        ],
        "xfcc": [
            .init(key: "xfcc", header: "x-forwarded-client-cert", kind: .xfcc, enabled: true),
        ],
        "rfc9440": [
            .init(key: "client_cert", header: "client-cert", kind: .rfcCert, enabled: true),
            .init(key: "client_cert_chain", header: "client-cert-chain", kind: .rfcChain, enabled: true),
        ],
    ]

    static let xfccElements = ["Hash", "Cert", "Chain", "Subject", "URI", "DNS"]
    /// Names that would break HTTP or other security if the plugin owned (stripped and set) them.
    static let reserved: Set<String> = [
        "host", "authorization", "proxy-authorization", "cookie", "content-length", "content-type", "transfer-encoding", "connection",
        "te", "trailer", "upgrade", "keep-alive", "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    ]

    let tag: UInt64
    let fields: [Field]
    let useSHA256: Bool
    let maxValueBytes: Int
    let xfccParts: Set<String>
    /// Some value depends on the intermediates as well as the leaf: the cache key covers the whole chain.
    let chainDependent: Bool
    /// Every header name this instance owns (lowercase; the host takes `_` and `-` alike), in memory that stays
    /// put, for `header_set_create`.
    private let ownedNames: PreparedHeaders
    /// The header name of each field, in memory that stays put for `header_set_create`.
    private let names: PreparedHeaders
    /// The certificate's values (one per field; nil for the connection's fields and what is left out) by
    /// certificate, and by chain when a value depends on it: computed once. At most `maxEntries`, then made anew.
    private let identities = Mutex<[CacheKey: [[UInt8]?]]>([:])
    /// The connections' header sets, by certificate and the connection's own values (clientverify, ciphers,
    /// TLS facts): every connection of a certificate from the same client software shares one. Bounded by
    /// count and by bytes: the own values come from the client (a ClientHello can offer thousands of suites).
    /// The dictionary's key has a hash of them, made before the lock (so a long list is not hashed while every
    /// event loop waits); the values themselves are compared after it, and a set whose hash is taken by other
    /// values is not kept.
    private let sets = Mutex<SetCache>(SetCache())
    static let maxEntries = 10_000
    static let maxSetBytes = 16 << 20

    struct SetCache {
        var sets: [SetKey: CachedSet] = [:]
        /// What the kept sets hold, roughly: their own values' and certificate values' bytes.
        var bytes = 0
    }

    struct CachedSet {
        let own: [UInt8]
        let set: HeaderSet
    }
    /// Owns every name of the dialect and adds none: what a connection gets whose set the gateway refused (a
    /// client's spellings go whatever happens).
    private let stripOnly: HeaderSet

    /// All four words are hashed: with `chainDependent`, `d` mixes in an unkeyed hash of the chain the client
    /// presented, which a client could steer to collide on any one word.
    struct CacheKey: Hashable {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64
    }

    /// A connection's header set: its certificate (nil: none) and a hash of its own values (`connectionHeaderSet`
    /// compares the values themselves).
    struct SetKey: Hashable {
        var certificate: CacheKey?
        var ownHash: Int
        var ownCount: Int
    }

    typealias ConfigError = PluginConfigError

    init(tag: UInt64, config json: String) throws {
        self.tag = tag
        let config = try PluginConfig(json: json, tag: tag).decode(Config.self)
        let dialect = config.dialect
        guard let specs = Self.dialects[dialect] else {
            throw ConfigError("dialect: '\(dialect)' is not one of: elb | aws | xfcc | rfc9440")
        }
        switch config.fingerprintAlgorithm {
        case "sha1": useSHA256 = false
        case "sha256": useSHA256 = true
        case let other: throw ConfigError("fingerprint_algorithm: '\(other)' is not one of: sha1 | sha256")
        }
        maxValueBytes = config.maxValueBytes
        guard maxValueBytes >= 256 else { throw ConfigError("max_value_bytes: must be at least 256") }
        let elements = config.xfccElements ?? Self.xfccElements
        for element in elements where !Self.xfccElements.contains(element) {
            throw ConfigError("xfcc_elements: '\(element)' is not one of: \(Self.xfccElements.joined(separator: ", "))")
        }
        xfccParts = Set(elements)

        var all = specs + Self.extras
        for (key, value) in config.fields.sorted(by: { $0.key < $1.key }) {
            guard let index = all.firstIndex(where: { $0.key == key }) else {
                throw ConfigError("fields.\(key): unknown field for dialect \(dialect); known: \(all.map(\.key).joined(separator: ", "))")
            }
            switch value {
            case .enabled(let enabled):
                all[index].enabled = enabled
            case .header(let name):
                guard Self.isValidHeaderName(name) else {
                    throw ConfigError("fields.\(key): header name '\(name)' must be 1 to 40 of lowercase letters, digits, '_' and '-'")
                }
                all[index].header = name
                all[index].enabled = true
            }
        }
        fields = all.filter(\.enabled).map { Field(key: $0.key, header: Array($0.header.utf8), kind: $0.kind) }
        var seen: [String: String] = [:]
        for spec in all where spec.enabled {
            if let other = seen[spec.header] { throw ConfigError("fields.\(spec.key): header name '\(spec.header)' is already used by \(other)") }
            seen[spec.header] = spec.key
            if Self.reserved.contains(spec.header) { throw ConfigError("fields.\(spec.key): header name '\(spec.header)' is reserved") }
        }
        chainDependent = fields.contains { $0.kind == .chainEscaped || $0.kind == .rfcChain || ($0.kind == .xfcc && elements.contains("Chain")) }
        // Own every name of the dialect (enabled or not, renamed or default): none may come from a client.
        var owned = Set(all.map { Self.normalise(Array($0.header.utf8)) })
        for spec in specs + Self.extras { owned.insert(Self.normalise(Array(spec.header.utf8))) }
        ownedNames = PreparedHeaders(owned.sorted { $0.lexicographicallyPrecedes($1) })
        names = PreparedHeaders(fields.map(\.header))
        do {
            stripOnly = try ownedNames.views.compactMap { $0 }.withUnsafeBufferPointer { owned in
                try HeaderSet(headers: UnsafeBufferPointer(start: nil, count: 0), owned: owned)
            }
        } catch {
            throw ConfigError("the gateway cannot keep the plugin's header set: \(error)")
        }
    }

    static func isValidHeaderName(_ name: String) -> Bool {
        (1...40).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }

    static func normalise(_ bytes: [UInt8]) -> [UInt8] {
        bytes.map { byte in
            if byte >= 65 && byte <= 90 { return byte + 32 }
            return byte == 95 ? 45 : byte
        }
    }

    func onRequestHeaders(_ request: GatewayRequest) -> gw_action {
        // Every value stays the same while the connection lives (the certificate's and the connection's TLS
        // facts), so the connection's header set is found once and kept with the connection by the host
        // (ABI 1.4). Each request takes it in one host call (ABI 1.5): it strips every client-sent spelling of
        // every owned name, underscores included, and adds the values.
        let set = request.connectionData(tag) { connectionHeaderSet(request) }
        let status = request.add(set)
        return status == GW_OK ? GW_CONTINUE : status  // a negative gw_status is also a failing gw_action
    }

    /// The header set of the request's connection, from the cache or made once.
    private func connectionHeaderSet(_ request: GatewayRequest) -> HeaderSet {
        var values = [[UInt8]?](repeating: nil, count: fields.count)
        // The own values, each as its length (UInt32.max: none) and bytes, in field order.
        var own: [UInt8] = []
        for (index, field) in fields.enumerated() where !field.kind.fromCertificate {
            // A value the header rules refuse (a NUL, CR or LF: none of these attributes has one) is left out.
            let value = request.attribute(Self.connectionAttribute(field.kind)).map { Array($0.buffer) }.flatMap { Self.isValidValue($0) ? $0 : nil }
            values[index] = value
            withUnsafeBytes(of: (value.map { UInt32(truncatingIfNeeded: $0.count) } ?? UInt32.max).littleEndian) { own.append(contentsOf: $0) }
            if let value { own.append(contentsOf: value) }
        }
        let key = SetKey(certificate: certificateKey(request), ownHash: own.hashValue, ownCount: own.count)
        if let hit = sets.withLock({ $0.sets[key] }), hit.own == own { return hit.set }
        if let certificate = key.certificate {
            var certificateValues = identities.withLock { $0[certificate] }
            if certificateValues == nil {
                certificateValues = Self.insert(
                    fields.map { field in field.kind.fromCertificate ? compute(field, request) : nil }, for: certificate, into: identities,
                    limit: Self.maxEntries
                )
            }
            for (index, field) in fields.enumerated() where field.kind.fromCertificate { values[index] = certificateValues![index] }
        }
        let made: HeaderSet
        do {
            made = try makeSet(values)
        } catch {
            // Not expected (`compute` leaves out what the header rules refuse); kept, so it is not tried again.
            PluginHost.log(tag, GW_LOG_ERROR, "the identity headers are not added: \(error); the client's spellings of them are still removed")
            made = stripOnly
        }
        let size = own.count + values.reduce(64) { $0 + ($1?.count ?? 0) }
        guard size <= Self.maxSetBytes / 16 else { return made }  // kept by its connection only
        var dropped = SetCache()
        let existing: CachedSet? = sets.withLock { cache in
            // Another event loop made it meanwhile (or other values have this hash): that one is kept.
            if let existing = cache.sets[key] { return existing }
            if cache.sets.count >= Self.maxEntries || cache.bytes + size > Self.maxSetBytes { swap(&dropped, &cache) }
            cache.sets[key] = CachedSet(own: own, set: made)
            cache.bytes += size
            return nil
        }
        withExtendedLifetime(dropped) {}  // what a full cache held goes after the lock
        if let existing, existing.own == own { return existing.set }
        return made
    }

    /// The cache key of the connection's certificate (and chain, when a value depends on it); nil without one.
    private func certificateKey(_ request: GatewayRequest) -> CacheKey? {
        guard request.integer(GW_ATTR_CLIENT_CERT_PRESENT) == 1,
            let sha256 = request.attribute(GW_ATTR_CLIENT_FINGERPRINT_SHA256), sha256.len == 64
        else { return nil }
        var key = Self.key(sha256.buffer)
        if chainDependent {
            // The same leaf may come with other intermediates: mix them into the key (FNV-1a over their DER).
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            var index: UInt32 = 1
            while let der = request.attribute(GW_ATTR_CLIENT_CHAIN_DER, index: index) {
                for byte in der.buffer { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
                hash = (hash ^ 0xFF) &* 0x0000_0100_0000_01B3
                index += 1
            }
            key.d ^= hash
        }
        return key
    }

    /// A header set of the fields' `values` (nil: the field is left out) that owns every name of the dialect.
    private func makeSet(_ values: [[UInt8]?]) throws -> HeaderSet {
        let prepared = PreparedHeaders(values)
        var list: [gw_header] = []
        for (index, value) in prepared.views.enumerated() {
            if let value { list.append(gw_header(name: names.views[index]!, value: value)) }
        }
        let owned = ownedNames.views.compactMap { $0 }
        return try withExtendedLifetime(prepared) {
            try list.withUnsafeBufferPointer { list in try owned.withUnsafeBufferPointer { try HeaderSet(headers: list, owned: $0) } }
        }
    }

    /// Keeps `value` for `key` and answers it, or the value another thread kept meanwhile; a full cache is
    /// emptied first, and what it held is let go after the lock.
    private static func insert<Key: Hashable & Sendable, Value: Sendable>(
        _ value: Value, for key: Key, into cache: borrowing Mutex<[Key: Value]>, limit: Int
    ) -> Value {
        var dropped: [Key: Value] = [:]
        let kept: Value = cache.withLock { cache in
            if let existing = cache[key] { return existing }
            if cache.count >= limit { swap(&dropped, &cache) }
            cache[key] = value
            return value
        }
        withExtendedLifetime(dropped) {}
        return kept
    }

    /// No NUL, CR or LF (what the gateway refuses in a header value).
    static func isValidValue(_ bytes: [UInt8]) -> Bool { !bytes.contains { $0 == 0 || $0 == 10 || $0 == 13 } }

    static func connectionAttribute(_ kind: Kind) -> gw_attribute {
        switch kind {
        case .verify: return GW_ATTR_CLIENT_VERIFY
        case .ciphers: return GW_ATTR_TLS_CIPHERS_OFFERED
        case .tlsProtocol: return GW_ATTR_TLS_VERSION
        case .tlsCipher: return GW_ATTR_TLS_CIPHER
        case .sni: return GW_ATTR_SNI
        case .ja4: return GW_ATTR_CLIENT_JA4
        case .ja3: return GW_ATTR_CLIENT_JA3
        default: return GW_ATTR_ALPN
        }
    }

    private static func key(_ hex: UnsafeRawBufferPointer) -> CacheKey {
        func word(_ offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in offset..<offset + 16 {
                // A hex digit without a branch: '0'-'9' are 0x30-0x39, 'a'-'f' 0x61-0x66, 'A'-'F' 0x41-0x46.
                let c = UInt64(hex[i])
                value = value << 4 | ((c & 0xF) &+ 9 &* (c >> 6)) & 0xF
            }
            return value
        }
        return CacheKey(a: word(0), b: word(16), c: word(32), d: word(48))
    }

    private func compute(_ field: Field, _ request: GatewayRequest) -> [UInt8]? {
        let text: [UInt8]?
        switch field.kind {
        case .subject: text = request.attribute(GW_ATTR_CLIENT_SUBJECT).map { Array($0.buffer) }
        case .issuer: text = request.attribute(GW_ATTR_CLIENT_ISSUER).map { Array($0.buffer) }
        case .fingerprint:
            text = request.attribute(useSHA256 ? GW_ATTR_CLIENT_FINGERPRINT_SHA256 : GW_ATTR_CLIENT_FINGERPRINT_SHA1).map { Array($0.buffer) }
        case .serial: text = request.attribute(GW_ATTR_CLIENT_SERIAL).map { Array($0.buffer) }
        case .notAfter: text = request.attribute(GW_ATTR_CLIENT_NOT_AFTER).map { Array($0.buffer) }
        case .notBefore: text = request.attribute(GW_ATTR_CLIENT_NOT_BEFORE).map { Array($0.buffer) }
        case .leafEscaped: text = request.string(GW_ATTR_CLIENT_CERT_PEM).map(HeaderValueFormats.urlEncode)
        case .chainEscaped: text = request.string(GW_ATTR_CLIENT_CHAIN_PEM).map(HeaderValueFormats.urlEncode)
        case .sans:
            var parts: [String] = []
            for (attribute, prefix) in [(GW_ATTR_CLIENT_SAN_DNS, "DNS"), (GW_ATTR_CLIENT_SAN_URI, "URI"), (GW_ATTR_CLIENT_SAN_IP, "IP"), (GW_ATTR_CLIENT_SAN_EMAIL, "email")] {
                parts += request.strings(attribute).map { "\(prefix):\(HeaderValueFormats.listItem($0))" }
            }
            text = parts.isEmpty ? nil : Array(parts.joined(separator: ", ").utf8)
        case .spiffeID:
            text = request.strings(GW_ATTR_CLIENT_SAN_URI).first { $0.hasPrefix("spiffe://") }.map { Array($0.utf8) }
        case .awsValidity:
            guard let start = request.integer(GW_ATTR_CLIENT_NOT_BEFORE_UNIX), let end = request.integer(GW_ATTR_CLIENT_NOT_AFTER_UNIX) else { return nil }
            text = Array("NotBefore=\(HeaderValueFormats.iso8601(start));NotAfter=\(HeaderValueFormats.iso8601(end))".utf8)
        case .xfcc:
            var parts: [String] = []
            if xfccParts.contains("Hash"), let hash = request.string(GW_ATTR_CLIENT_FINGERPRINT_SHA256) { parts.append("Hash=\(hash)") }
            if xfccParts.contains("Cert"), let pem = request.string(GW_ATTR_CLIENT_CERT_PEM) {
                parts.append("Cert=\"\(String(decoding: HeaderValueFormats.urlEncode(pem), as: UTF8.self))\"")
            }
            if xfccParts.contains("Chain"), let pem = request.string(GW_ATTR_CLIENT_CHAIN_PEM) {
                parts.append("Chain=\"\(String(decoding: HeaderValueFormats.urlEncode(pem), as: UTF8.self))\"")
            }
            if xfccParts.contains("Subject"), let subject = request.string(GW_ATTR_CLIENT_SUBJECT) {
                parts.append("Subject=\(HeaderValueFormats.xfccValue(subject, alwaysQuote: true))")
            }
            if xfccParts.contains("URI") { parts += request.strings(GW_ATTR_CLIENT_SAN_URI).map { "URI=\(HeaderValueFormats.xfccValue($0))" } }
            if xfccParts.contains("DNS") { parts += request.strings(GW_ATTR_CLIENT_SAN_DNS).map { "DNS=\(HeaderValueFormats.xfccValue($0))" } }
            text = parts.isEmpty ? nil : Array(parts.joined(separator: ";").utf8)
        case .rfcCert:
            text = request.attribute(GW_ATTR_CLIENT_CHAIN_DER, index: 0).map { Array(HeaderValueFormats.structuredBytes($0.buffer).utf8) }
        case .rfcChain:
            var items: [String] = []
            var index: UInt32 = 1
            while let der = request.attribute(GW_ATTR_CLIENT_CHAIN_DER, index: index) {
                items.append(HeaderValueFormats.structuredBytes(der.buffer))
                index += 1
            }
            text = items.isEmpty ? nil : Array(items.joined(separator: ", ").utf8)
        default:
            text = nil
        }
        guard let text else { return nil }
        if !Self.isValidValue(text) {
            // A raw SAN (spiffe_id, the xfcc URI and DNS parts) can carry any byte the CA signed.
            PluginHost.log(tag, GW_LOG_WARNING, "header \(String(decoding: field.header, as: UTF8.self)) omitted: its value has a NUL, CR or LF")
            return nil
        }
        if text.count > maxValueBytes {
            PluginHost.log(tag, GW_LOG_WARNING, "header \(String(decoding: field.header, as: UTF8.self)) omitted: its value has \(text.count) bytes, more than max_value_bytes \(maxValueBytes)")
            return nil
        }
        return text
    }
}
