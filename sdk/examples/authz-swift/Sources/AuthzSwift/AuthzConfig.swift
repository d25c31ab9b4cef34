import GatewayPluginKit

/// The plugin's config. `PluginConfig.decode` is strict: unknown keys and wrong types are errors that name
/// their key path, so the custom `init(from:)`s below only supply defaults.
struct AuthzConfig: Decodable {
    enum Verdict: String, Decodable {
        case allow, deny

        init(from decoder: any Decoder) throws {
            guard let value = try? decoder.singleValueContainer().decode(String.self), let verdict = Verdict(rawValue: value) else {
                throw PluginConfigError("\(PluginConfig.keyPath(decoder.codingPath)): must be \"allow\" or \"deny\"")
            }
            self = verdict
        }
    }

    var `default`: Verdict
    var rules: [Rule]
    var denyStatus: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case `default`, rules
        case denyStatus = "deny_status"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        `default` = try c.decodeIfPresent(Verdict.self, forKey: .default) ?? .deny
        rules = try c.decode([Rule].self, forKey: .rules)
        denyStatus = try c.decodeIfPresent(Int.self, forKey: .denyStatus) ?? 403
    }

    func validate() throws {
        guard (400...599).contains(denyStatus) else { throw PluginConfigError("deny_status: must be an integer 400..599") }
        for (i, rule) in rules.enumerated() {
            if !rule.pathPrefix.hasPrefix("/") { throw PluginConfigError("rules[\(i)].path_prefix: must be a string starting with '/'") }
            if rule.methods?.isEmpty == true { throw PluginConfigError("rules[\(i)].methods: must not be empty") }
            if rule.allow.isEmpty { throw PluginConfigError("rules[\(i)].allow: needs at least one condition") }
        }
    }

    struct Rule: Decodable {
        var pathPrefix: String
        var methods: [String]?
        var allow: Allow

        enum CodingKeys: String, CodingKey {
            case pathPrefix = "path_prefix"
            case methods, allow
        }
    }

    /// Conditions, OR-ed: a verified client matching any one of them is allowed.
    struct Allow: Decodable {
        var subjectCN: [String] = []
        var subjectOU: [String] = []
        var subjectO: [String] = []
        var issuerCN: [String] = []
        var issuerO: [String] = []
        var spiffeID: [String] = []
        var dnsSAN: [String] = []
        var serial: [String] = []
        var fingerprintSHA256: [String] = []
        var anyVerifiedClient = false

        enum CodingKeys: String, CodingKey, CaseIterable {
            case subjectCN = "subject_cn", subjectOU = "subject_ou", subjectO = "subject_o"
            case issuerCN = "issuer_cn", issuerO = "issuer_o"
            case spiffeID = "spiffe_id", dnsSAN = "dns_san"
            case serial
            case fingerprintSHA256 = "fingerprint_sha256"
            case anyVerifiedClient = "any_verified_client"
        }

        var isEmpty: Bool {
            !anyVerifiedClient && [subjectCN, subjectOU, subjectO, issuerCN, issuerO, spiffeID, dnsSAN, serial, fingerprintSHA256].allSatisfy(\.isEmpty)
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func list(_ key: CodingKeys) throws -> [String] { try c.decodeIfPresent([String].self, forKey: key) ?? [] }
            subjectCN = try list(.subjectCN)
            subjectOU = try list(.subjectOU)
            subjectO = try list(.subjectO)
            issuerCN = try list(.issuerCN)
            issuerO = try list(.issuerO)
            spiffeID = try list(.spiffeID)
            dnsSAN = try list(.dnsSAN)
            serial = try list(.serial)
            fingerprintSHA256 = try list(.fingerprintSHA256)
            anyVerifiedClient = try c.decodeIfPresent(Bool.self, forKey: .anyVerifiedClient) ?? false
        }

        func matches(_ certificate: ClientCertificate) -> Bool {
            guard certificate.verified else { return false }
            func any(_ wanted: [String], _ have: [String]) -> Bool { wanted.contains { have.contains($0) } }
            func glob(_ patterns: [String], _ values: [String]) -> Bool {
                patterns.contains { pattern in
                    values.contains { pattern.hasSuffix("*") ? $0.hasPrefix(pattern.dropLast()) : $0 == pattern }
                }
            }
            return anyVerifiedClient
                || any(subjectCN, certificate.subject.values("CN")) || any(subjectOU, certificate.subject.values("OU"))
                || any(subjectO, certificate.subject.values("O")) || any(issuerCN, certificate.issuer.values("CN"))
                || any(issuerO, certificate.issuer.values("O")) || glob(spiffeID, certificate.uris) || glob(dnsSAN, certificate.dnsNames)
                || serial.contains { $0.uppercased() == certificate.serial }
                || fingerprintSHA256.contains { $0.lowercased() == certificate.fingerprintSHA256 }
        }
    }
}
