import Foundation

extension PluginConfig {
    /// Decodes the config into `T`. Errors become a `PluginConfigError` naming the key path, e.g.
    /// `rules[1].allow.subject_ou: expected an array of strings`. Strict by default, as the gateway's own
    /// config is: a key that `T` never asks for is an error (`rules[0]: unknown key 'alow'; known: allow,
    /// methods, path_prefix`), so a misspelt setting cannot silently be no setting. Pass
    /// `allowingUnknownKeys: true` to ignore such keys instead.
    public func decode<T: Decodable>(_ type: T.Type = T.self, allowingUnknownKeys: Bool = false) throws -> T {
        do {
            guard let value = ConfigValue.parse(json) else { throw PluginConfigError("config is not valid JSON") }
            let usage = ConfigDecoder.Usage()
            let decoded: T
            do {
                decoded = try T(from: ConfigDecoder(value: value, codingPath: [], usage: usage))
            } catch DecodingError.keyNotFound(let key, let context) where !allowingUnknownKeys {
                // A required key is missing, perhaps misspelt: say what the mapping does have. (Which of those
                // keys are unknown cannot be told yet: the type stopped asking at the missing one.)
                var message = Self.describe(.keyNotFound(key, context))
                let path = Self.keyPath(context.codingPath)
                if let present = usage.present[path], !present.isEmpty {
                    message += " (\(path.isEmpty ? "config" : path) has: \(present.sorted().joined(separator: ", ")))"
                }
                throw PluginConfigError(message)
            }
            if !allowingUnknownKeys, let unknown = ConfigDecoder.firstUnknownKey(usage) { throw PluginConfigError(unknown) }
            return decoded
        } catch let error as PluginConfigError {
            throw error
        } catch let error as DecodingError {
            throw PluginConfigError(Self.describe(error))
        } catch {
            throw PluginConfigError("\(error)")
        }
    }

    /// `rules[1].allow` from a coding path.
    public static func keyPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return text
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String { path.isEmpty ? "config" : keyPath(path) }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(at(context.codingPath + [key])): missing required key"
        case .typeMismatch(let type, let context):
            return "\(at(context.codingPath)): expected \(Self.typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(at(context.codingPath)): expected \(Self.typeName(type)), found null"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty, context.debugDescription.contains("valid JSON") { return "config is not valid JSON" }
            return "\(at(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int8.Type, is Int16.Type, is Int32.Type, is Int64.Type,
             is UInt.Type, is UInt8.Type, is UInt16.Type, is UInt32.Type, is UInt64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        case is [String].Type: return "an array of strings"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array<") { return "an array" }
            if name.hasPrefix("Dictionary<") { return "a mapping" }
            return "a mapping"
        }
    }
}

/// Rejects keys a `Decodable` type does not know, with their key path. `PluginConfig.decode` does this for
/// every mapping already; this remains for types decoded with another decoder.
public enum StrictKeys {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    /// Call first in `init(from:)`: `try StrictKeys.check(decoder, CodingKeys.self)`.
    public static func check<K: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: K.Type) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(K.allCases.map(\.stringValue))
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !known.contains(key.stringValue) {
            let path = PluginConfig.keyPath(decoder.codingPath)
            throw PluginConfigError("\(path.isEmpty ? "config" : path): unknown key '\(key.stringValue)'; known: \(K.allCases.map(\.stringValue).joined(separator: ", "))")
        }
    }
}
