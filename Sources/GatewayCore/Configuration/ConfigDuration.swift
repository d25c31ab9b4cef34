import Foundation
import NIOCore

/// A duration written in a config file as `250ms`, `5s`, `2m`, `1h` or a plain number of seconds.
public struct ConfigDuration: Codable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func seconds(_ s: Int64) -> ConfigDuration { .init(nanoseconds: s * 1_000_000_000) }
    public static func milliseconds(_ ms: Int64) -> ConfigDuration { .init(nanoseconds: ms * 1_000_000) }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Double.self) {
            guard seconds >= 0, seconds < 1e9 else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "duration out of range: \(seconds)"))
            }
            self.nanoseconds = Int64(seconds * 1e9)
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ConfigDuration(parsing: text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a duration (e.g. 500ms, 5s, 2m, 1h)")
            )
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    package init?(parsing text: String) {
        let units: [(String, Double)] = [("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            guard let value = Double(number), value >= 0, value * scale < 1e18 else { return nil }
            self.nanoseconds = Int64(value * scale)
            return
        }
        return nil
    }

    public var description: String {
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000)s" }
        return "\(nanoseconds / 1_000_000)ms"
    }
}

extension ConfigDuration {
    package var timeAmount: TimeAmount { .nanoseconds(nanoseconds) }
}
