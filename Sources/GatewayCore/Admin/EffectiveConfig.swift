import Foundation

/// The configuration as the gateway runs it: every default filled in, as JSON, for `GET /config`.
///
/// The file holds no key material (only paths to key files, which are shown). Plugin `config` mappings are
/// free-form and may carry credentials, so any value under a key whose name suggests a secret (password,
/// secret, token, private key, credential, api key) is replaced by "<redacted>", at any depth.
package enum EffectiveConfig {
    package static let secretMarkers = ["password", "passwd", "secret", "token", "private_key", "privatekey", "credential", "api_key", "apikey"]

    package static func json(_ config: GatewayConfig) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(config), var tree = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return Array("{}\n".utf8)
        }
        if var listeners = tree["listeners"] as? [[String: Any]] {
            for i in listeners.indices {
                guard var plugins = listeners[i]["plugins"] as? [[String: Any]] else { continue }
                for j in plugins.indices {
                    if let config = plugins[j]["config"] { plugins[j]["config"] = redact(config) }
                }
                listeners[i]["plugins"] = plugins
            }
            tree["listeners"] = listeners
        }
        let out = (try? JSONSerialization.data(withJSONObject: tree, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(out) + [10]
    }

    package static func redact(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            var copy: [String: Any] = [:]
            for (key, inner) in object {
                let lower = key.lowercased().replacingOccurrences(of: "-", with: "_")
                copy[key] = secretMarkers.contains(where: { lower.contains($0) }) ? "<redacted>" : redact(inner)
            }
            return copy
        }
        if let array = value as? [Any] { return array.map(redact) }
        return value
    }
}
