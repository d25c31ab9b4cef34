import Foundation

/// Decodes a plugin's config and notes, for every mapping, which keys the type asked for: a key nobody asked
/// for is then an error (`rules[0]: unknown key 'alow'; known: allow, methods, path_prefix`), as in the
/// gateway's own config. Foundation's JSONDecoder ignores such keys, so a misspelt `deny` would silently be
/// no rule at all.
struct ConfigDecoder: Decoder {
    /// Keys present in, and keys asked of, each mapping, by key path.
    final class Usage {
        var present: [String: Set<String>] = [:]
        var asked: [String: Set<String>] = [:]
    }

    let value: ConfigValue
    let codingPath: [any CodingKey]
    let usage: Usage
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch([String: Any].self) }
        let path = PluginConfig.keyPath(codingPath)
        usage.present[path, default: []].formUnion(members.keys)
        return KeyedDecodingContainer(Keyed<Key>(members: members, codingPath: codingPath, usage: usage, path: path))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch([Any].self) }
        return Unkeyed(items: items, codingPath: codingPath, usage: usage)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(value: value, codingPath: codingPath, usage: usage) }

    private func mismatch(_ type: Any.Type) -> DecodingError {
        .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "found \(value.kind)"))
    }

    /// Decodes one value: URL, Decimal and Data the way JSONDecoder does (a string, a number, base64 text),
    /// everything else through its own `init(from:)`.
    static func decode<T: Decodable>(_ type: T.Type, from value: ConfigValue, codingPath: [any CodingKey], usage: Usage) throws -> T {
        func corrupted(_ what: String) -> DecodingError { .dataCorrupted(.init(codingPath: codingPath, debugDescription: what)) }
        if T.self == URL.self {
            guard case .string(let text) = value else { throw DecodingError.typeMismatch(String.self, .init(codingPath: codingPath, debugDescription: "found \(value.kind)")) }
            guard let url = URL(string: text) else { throw corrupted("'\(text)' is not a URL") }
            return url as! T
        }
        if T.self == Decimal.self {
            guard case .number(let text) = value, let decimal = Decimal(string: text) else { throw DecodingError.typeMismatch(Double.self, .init(codingPath: codingPath, debugDescription: "found \(value.kind)")) }
            return decimal as! T
        }
        if T.self == Data.self {
            guard case .string(let text) = value else { throw DecodingError.typeMismatch(String.self, .init(codingPath: codingPath, debugDescription: "found \(value.kind)")) }
            guard let data = Data(base64Encoded: text) else { throw corrupted("not base64") }
            return data as! T
        }
        return try T(from: ConfigDecoder(value: value, codingPath: codingPath, usage: usage))
    }

    /// The unknown keys after a decode, the first (by path, then key) as an error message.
    static func firstUnknownKey(_ usage: Usage) -> String? {
        for path in usage.present.keys.sorted() {
            let asked = usage.asked[path] ?? []
            guard let unknown = usage.present[path]!.subtracting(asked).sorted().first else { continue }
            let known = asked.sorted().joined(separator: ", ")
            return "\(path.isEmpty ? "config" : path): unknown key '\(unknown)'\(known.isEmpty ? "" : "; known: \(known)")"
        }
        return nil
    }

    struct Index: CodingKey {
        var intValue: Int?
        var stringValue: String { "\(intValue ?? 0)" }
        init(_ index: Int) { intValue = index }
        init?(intValue: Int) { self.intValue = intValue }
        init?(stringValue: String) { nil }
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let members: [String: ConfigValue]
        let codingPath: [any CodingKey]
        let usage: Usage
        let path: String

        var allKeys: [Key] { members.keys.sorted().compactMap { Key(stringValue: $0) } }

        private func ask(_ key: Key) -> ConfigValue? {
            usage.asked[path, default: []].insert(key.stringValue)
            return members[key.stringValue]
        }

        func contains(_ key: Key) -> Bool { ask(key) != nil }

        func decodeNil(forKey key: Key) throws -> Bool {
            guard let value = ask(key) else { return true }
            if case .null = value { return true }
            return false
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let value = ask(key) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
            }
            return try ConfigDecoder.decode(T.self, from: value, codingPath: codingPath + [key], usage: usage)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try decoder(for: key).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try decoder(for: key).unkeyedContainer() }
        func superDecoder() throws -> any Decoder { ConfigDecoder(value: .object(members), codingPath: codingPath, usage: usage) }
        func superDecoder(forKey key: Key) throws -> any Decoder { try decoder(for: key) }

        private func decoder(for key: Key) throws -> ConfigDecoder {
            guard let value = ask(key) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing"))
            }
            return ConfigDecoder(value: value, codingPath: codingPath + [key], usage: usage)
        }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let items: [ConfigValue]
        let codingPath: [any CodingKey]
        let usage: Usage
        var currentIndex = 0

        init(items: [ConfigValue], codingPath: [any CodingKey], usage: Usage) {
            self.items = items
            self.codingPath = codingPath
            self.usage = usage
        }

        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }

        private mutating func next() throws -> ConfigDecoder {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [Index(currentIndex)], debugDescription: "past the end"))
            }
            defer { currentIndex += 1 }
            return ConfigDecoder(value: items[currentIndex], codingPath: codingPath + [Index(currentIndex)], usage: usage)
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, case .null = items[currentIndex] else { return false }
            currentIndex += 1
            return true
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
            let decoder = try next()
            return try ConfigDecoder.decode(T.self, from: decoder.value, codingPath: decoder.codingPath, usage: usage)
        }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try next().container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
        mutating func superDecoder() throws -> any Decoder { try next() }
    }

    struct Single: SingleValueDecodingContainer {
        let value: ConfigValue
        let codingPath: [any CodingKey]
        let usage: Usage

        func decodeNil() -> Bool {
            if case .null = value { return true }
            return false
        }

        private func mismatch(_ type: Any.Type) -> DecodingError {
            .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "found \(value.kind)"))
        }

        func decode(_ type: Bool.Type) throws -> Bool {
            guard case .bool(let flag) = value else { throw mismatch(type) }
            return flag
        }

        func decode(_ type: String.Type) throws -> String {
            guard case .string(let text) = value else { throw mismatch(type) }
            return text
        }

        func decode(_ type: Double.Type) throws -> Double {
            guard case .number(let text) = value, let number = Double(text) else { throw mismatch(type) }
            return number
        }

        func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

        private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
            guard case .number(let text) = value else { throw mismatch(type) }
            if let exact = T(text) { return exact }
            // 1e3 or 2.0 are integers too; 2.5 and out-of-range values are not.
            guard let number = Double(text), number.rounded() == number, let exact = T(exactly: number) else {
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(text) is not \(type == Int.self ? "an integer" : "a \(type)") in range"))
            }
            return exact
        }

        func decode(_ type: Int.Type) throws -> Int { try integer(type) }
        func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
        func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
        func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
        func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
        func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
        func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
        func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
        func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
        func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

        func decode<T: Decodable>(_ type: T.Type) throws -> T { try ConfigDecoder.decode(T.self, from: value, codingPath: codingPath, usage: usage) }
    }
}
