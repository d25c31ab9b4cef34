import Foundation

extension PluginConfigError {
    /// Parses a chain entry's config (JSON text) as a mapping and refuses keys not in `known`.
    public static func mapping(_ json: String, known: Set<String>) throws -> [String: Any] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])
        } catch {
            throw PluginConfigError("config is not valid JSON: \(error)")
        }
        guard let config = parsed as? [String: Any] else { throw PluginConfigError("config must be a mapping") }
        for key in config.keys.sorted() where !known.contains(key) {
            throw PluginConfigError("unknown key '\(key)'")
        }
        return config
    }
}
