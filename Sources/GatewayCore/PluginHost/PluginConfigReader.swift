import Foundation
import PluginAPI

/// The config of the instance being created, for the ABI's config reader (`config_get`, `config_key_at`,
/// `config_check_keys`): the chain entry's config parsed once, every string and key copied once into bytes that
/// stay put until `create` returns, so that the views handed out need no per-call allocation. Immutable.
package final class PluginConfigReader: Sendable {
    package indirect enum Node: Sendable {
        case null
        case bool(Bool)
        case integer(Int64)
        case number(Double)
        case string(StableBytes)
        case array([Node])
        /// Keys sorted (the JSON text handed to `create` has them in that order too).
        case object(keys: [String], keyBytes: [StableBytes], values: [Node])
    }

    /// nil: the entry has no config (every path is missing).
    package let root: Node?

    package init(config: JSONValue?) {
        root = config.map(Self.node)
    }

    private static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .integer(let number): return .integer(number)
        case .number(let number):
            if number.rounded() == number, let exact = Int64(exactly: number) { return .integer(exact) }
            return .number(number)
        case .string(let text): return .string(StableBytes(Array(text.utf8) + [0]))
        case .array(let items): return .array(items.map(node))
        case .object(let fields):
            let sorted = fields.sorted { $0.0 < $1.0 }
            return .object(keys: sorted.map(\.0), keyBytes: sorted.map { StableBytes(Array($0.0.utf8) + [0]) }, values: sorted.map { node($0.1) })
        }
    }

    /// One step of a path.
    package enum Step: Equatable, Sendable {
        case key(String)
        case index(Int)
    }

    /// "rules[0].allow.subject_ou" as steps; nil when the text is not of that form (empty keys, unclosed or
    /// non-numeric brackets).
    package static func steps(_ path: String) -> [Step]? {
        var steps: [Step] = []
        var bytes = Substring(path).utf8[...]
        guard !bytes.isEmpty else { return [] }
        var expectKey = true
        while !bytes.isEmpty {
            if bytes.first == UInt8(ascii: "[") {
                bytes = bytes.dropFirst()
                let digits = bytes.prefix { $0 >= 48 && $0 <= 57 }
                guard !digits.isEmpty, digits.count <= 9, bytes.dropFirst(digits.count).first == UInt8(ascii: "]") else { return nil }
                steps.append(.index(Int(String(decoding: digits, as: UTF8.self))!))
                bytes = bytes.dropFirst(digits.count + 1)
                expectKey = false
            } else {
                if !expectKey {
                    guard bytes.first == UInt8(ascii: ".") else { return nil }
                    bytes = bytes.dropFirst()
                }
                let key = bytes.prefix { $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "[") }
                guard !key.isEmpty else { return nil }
                steps.append(.key(String(decoding: key, as: UTF8.self)))
                bytes = bytes.dropFirst(key.count)
                expectKey = false
            }
        }
        return steps
    }

    /// The node at `steps`, or nil when there is none.
    package func node(at steps: [Step]) -> Node? {
        var current = root
        for step in steps {
            switch (current, step) {
            case (.array(let items)?, .index(let index)) where index < items.count:
                current = items[index]
            case (.object(let keys, _, let values)?, .key(let key)):
                guard let found = Self.search(keys, key) else { return nil }
                current = values[found]
            default:
                return nil
            }
        }
        return current
    }

    private static func search(_ keys: [String], _ key: String) -> Int? {
        var low = 0, high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid] == key { return mid }
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// `config_get`.
    package func value(at path: String) -> gw_config_value? {
        guard let steps = Self.steps(path) else { return nil }
        var out = gw_config_value(type: GW_CONFIG_MISSING, count: 0, integer: 0, number: 0, string: gw_str(ptr: nil, len: 0))
        switch node(at: steps) {
        case nil: break
        case .null?: out.type = GW_CONFIG_NULL
        case .bool(let flag)?:
            out.type = GW_CONFIG_BOOL
            out.integer = flag ? 1 : 0
        case .integer(let number)?:
            out.type = GW_CONFIG_INT
            out.integer = number
            out.number = Double(number)
        case .number(let number)?:
            out.type = GW_CONFIG_NUMBER
            out.number = number
        case .string(let bytes)?:
            out.type = GW_CONFIG_STRING
            out.string = gw_str(ptr: bytes.view.ptr, len: bytes.count - 1)
        case .array(let items)?:
            out.type = GW_CONFIG_ARRAY
            out.count = UInt32(clamping: items.count)
        case .object(let keys, _, _)?:
            out.type = GW_CONFIG_OBJECT
            out.count = UInt32(clamping: keys.count)
        }
        return out
    }

    /// `config_key_at`: nil past the last key or when `path` is not an object.
    package func key(at path: String, index: Int) -> gw_str? {
        guard let steps = Self.steps(path), case .object(let keys, let keyBytes, _)? = node(at: steps), index < keys.count else { return nil }
        return gw_str(ptr: keyBytes[index].view.ptr, len: keyBytes[index].count - 1)
    }

    /// `config_check_keys`: the error message for the first key (in sorted order) of the object at `path` that
    /// `known` lacks, or nil.
    package func unknownKey(at path: String, known: [String]) -> String? {
        guard let steps = Self.steps(path), case .object(let keys, _, _)? = node(at: steps) else { return nil }
        let allowed = Set(known)
        guard let unknown = keys.first(where: { !allowed.contains($0) }) else { return nil }
        let listed = known.sorted().joined(separator: ", ")
        return "\(path.isEmpty ? "config" : path): unknown key '\(unknown)'\(listed.isEmpty ? "" : "; known: \(listed)")"
    }
}
