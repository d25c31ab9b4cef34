import GatewayPluginKit

/// Decides who may call which path from the client certificate. The same rules and answers as the C example
/// (sdk/examples/authz-c): a non-canonical path is denied first (rule `path`); then the first rule whose
/// path_prefix (and methods) match decides, allowing when any of its conditions matches a verified client
/// certificate; when no rule matches, `default` decides.
final class AuthzPlugin: GatewayRequestPlugin {
    let config: AuthzConfig
    let tag: UInt64

    init(config: PluginConfig) throws {
        self.config = try config.decode(AuthzConfig.self)
        self.tag = config.tag
        try self.config.validate()
    }

    func onRequest(_ request: GatewayRequest) -> Decision {
        let path = request.string(GW_ATTR_PATH) ?? "/"
        let method = request.string(GW_ATTR_METHOD) ?? ""
        let certificate = request.clientCertificate
        var ruleName = "default"
        var allowed = config.default == .allow
        var prefix: String?
        if !Self.isCanonical(path) {
            request.setVar("authz.decision", "deny")
            request.setVar("authz.rule", "path")
            request.setVar("decision_reason", "path: non-canonical: deny")
            return .json(status: config.denyStatus, #"{"error":"forbidden","rule":"path","reason":"non-canonical path"}"#)
        } else if let index = config.rules.firstIndex(where: { path.hasPrefix($0.pathPrefix) && ($0.methods?.contains(method) ?? true) }) {
            let rule = config.rules[index]
            ruleName = "rules[\(index)]"
            prefix = rule.pathPrefix
            allowed = certificate.map(rule.allow.matches) ?? false
        }
        let decision = allowed ? "allow" : "deny"
        request.setVar("authz.decision", decision)
        request.setVar("authz.rule", ruleName)
        request.setVar("decision_reason", prefix.map { "\(ruleName) (\($0)): \(decision)" } ?? "\(ruleName): \(decision)")
        PluginHost.log(tag, GW_LOG_DEBUG, "\(method) \(path): \(decision) by \(ruleName)")
        if allowed { return .proceed }
        var body = #"{"error":"forbidden","rule":\#(JSONText.quoted(ruleName))"#
        if let prefix { body += #","path_prefix":\#(JSONText.quoted(prefix))"# }
        return .json(status: config.denyStatus, body + "}")
    }

    /// The gateway matches the path as received, while a backend may normalise it: `/x/../admin/` or
    /// `/%61dmin/` would slip past an `/admin/` rule. Refused: `.` and `..` segments (also as `%2e`), `//`,
    /// backslashes, broken escapes, and escapes of `/`, `\` or unreserved characters.
    static func isCanonical(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        var segmentStart = 0, dots = 0, other = 0
        var i = 0
        func hex(_ b: UInt8) -> Int? {
            switch b {
            case 48...57: return Int(b) - 48
            case 65...70: return Int(b) - 55
            case 97...102: return Int(b) - 87
            default: return nil
            }
        }
        while i <= bytes.count {
            let c = i < bytes.count ? bytes[i] : UInt8(ascii: "/")
            if c == UInt8(ascii: "/") {
                if i > 0 && other == 0 && (dots == 1 || dots == 2) { return false }
                if i > 0 && i < bytes.count && segmentStart == i { return false }
                segmentStart = i + 1
                dots = 0
                other = 0
            } else if c == UInt8(ascii: "\\") {
                return false
            } else if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let high = hex(bytes[i + 1]), let low = hex(bytes[i + 2]) else { return false }
                let decoded = UInt8(high << 4 | low)
                let unreserved = (decoded >= 48 && decoded <= 57) || (decoded >= 65 && decoded <= 90) || (decoded >= 97 && decoded <= 122)
                    || "-._~/\\".utf8.contains(decoded)
                if unreserved { return false }
                i += 2
                other += 1
            } else if c == UInt8(ascii: ".") {
                dots += 1
            } else {
                other += 1
            }
            i += 1
        }
        return true
    }
}

@_cdecl("gw_plugin_entry_v1")
public func gw_plugin_entry_v1(_ host: UnsafePointer<gw_host_api>?) -> UnsafePointer<gw_plugin_descriptor>? {
    // Uses nothing newer than ABI 1.0: loads on every 1.x gateway.
    GatewayPluginExport.entry(host, AuthzPlugin.self, name: "authz_swift", version: "1.0.0", abiMinor: 0)
}
