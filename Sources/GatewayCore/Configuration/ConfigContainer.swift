/// A keyed decoding container that records problems instead of stopping at the first one.
///
/// Every config struct decodes through this type: a missing required key, a wrong type or an unknown key
/// becomes a `ConfigIssue` with its key path, and decoding carries on with a placeholder, so that
/// `gateway validate` can report every problem of a file at once.
package struct ConfigContainer<Key: CodingKey> {
    package let container: KeyedDecodingContainer<Key>
    package let issues: ConfigIssueCollector
    package let codingPath: [any CodingKey]

    package init(_ decoder: any Decoder, keys: Key.Type) throws {
        guard let issues = decoder.userInfo[.configIssues] as? ConfigIssueCollector else {
            preconditionFailure("configuration must be decoded through ConfigLoader")
        }
        self.issues = issues
        self.codingPath = decoder.codingPath
        do {
            self.container = try decoder.container(keyedBy: Key.self)
        } catch {
            issues.add(decoder.codingPath, "expected a mapping of keys")
            throw error
        }
        // Unknown keys are errors: a typo such as `client_aut: required` must not silently weaken security.
        if let raw = try? decoder.container(keyedBy: AnyCodingKey.self) {
            for key in raw.allKeys where Key(stringValue: key.stringValue) == nil {
                issues.add(decoder.codingPath + [key], "unknown key")
            }
        }
    }

    /// A key that must be present; records an issue and returns nil when it is missing or malformed.
    package func required<T: Decodable>(_ key: Key, _ type: T.Type = T.self) -> T? {
        guard container.contains(key) else {
            issues.add(codingPath + [key], "missing required key")
            return nil
        }
        return optional(key, type)
    }

    /// An optional key; records an issue and returns nil when it is present but malformed.
    package func optional<T: Decodable>(_ key: Key, _ type: T.Type = T.self) -> T? {
        guard container.contains(key) else { return nil }
        do {
            if try container.decodeNil(forKey: key) { return nil }
            return try container.decode(T.self, forKey: key)
        } catch let error as DecodingError {
            if !Self.isRecorded(error) {
                issues.add(codingPath + [key], Self.describe(error))
            }
            return nil
        } catch {
            issues.add(codingPath + [key], "\(error)")
            return nil
        }
    }

    package func value<T: Decodable>(_ key: Key, default defaultValue: T) -> T {
        optional(key, T.self) ?? defaultValue
    }

    private static func isRecorded(_ error: DecodingError) -> Bool {
        if case .dataCorrupted(let context) = error, context.debugDescription == ConfigContainer.recordedMarker {
            return true
        }
        return false
    }

    package static var recordedMarker: String { "already recorded" }

    package static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, _):
            return "expected \(friendlyName(type))"
        case .valueNotFound(let type, _):
            return "expected \(friendlyName(type)), found null"
        case .keyNotFound(let key, _):
            return "missing required key '\(key.stringValue)'"
        case .dataCorrupted(let context):
            return context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }

    private static func friendlyName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is UInt16.Type, is UInt32.Type: return "an integer"
        case is Bool.Type: return "true or false"
        case is [String].Type: return "a list of strings"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array<") { return "a list" }
            if name.hasPrefix("Dictionary<") { return "a mapping" }
            return "a value of type \(name)"
        }
    }
}

extension ConfigContainer {
    /// Records a problem at `key` and returns the error callers throw to stop decoding this object.
    package func fail(_ key: Key?, _ message: String) -> DecodingError {
        issues.add(codingPath + (key.map { [$0] } ?? []), message)
        return DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: Self.recordedMarker))
    }
}

/// A coding key made from any string or index, used to list a mapping's keys.
package struct AnyCodingKey: CodingKey, Hashable {
    package var stringValue: String
    package var intValue: Int?
    package init(stringValue: String) { self.stringValue = stringValue }
    package init(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension CodingUserInfoKey {
    package static let configIssues = CodingUserInfoKey(rawValue: "gateway.configIssues")!
}

/// Decodes a string enum by raw value, with an error that lists the accepted values.
package protocol ConfigEnum: RawRepresentable, CaseIterable, Codable where RawValue == String {}

extension ConfigEnum {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let raw = try container.decode(String.self)
        guard let value = Self(rawValue: raw) else {
            let allowed = Self.allCases.map(\.rawValue).joined(separator: " | ")
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "'\(raw)' is not one of: \(allowed)")
            )
        }
        self = value
    }
}
