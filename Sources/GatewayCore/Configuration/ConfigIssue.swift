import NIOConcurrencyHelpers

/// One problem found in a configuration file, named by its key path (e.g. `listeners[0].tls.client_ca`).
public struct ConfigIssue: Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }

    /// Renders a Codable key path the way operators write it: `listeners[1].tls.crl[0]`.
    package static func render(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out
    }
}

/// All problems of a configuration, thrown together so that an operator fixes them in one pass.
public struct ConfigValidationError: Error, CustomStringConvertible, Sendable {
    public var source: String
    public var issues: [ConfigIssue]

    public var description: String {
        "invalid configuration \(source) (\(issues.count) problem\(issues.count == 1 ? "" : "s")):\n"
            + issues.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// Collects issues while a configuration is decoded and validated. Passed to the decoders in `userInfo`,
/// which Foundation requires to be Sendable: hence the lock, uncontended and paid only at load.
package final class ConfigIssueCollector: Sendable {
    private let collected = NIOLockedValueBox<[ConfigIssue]>([])

    var issues: [ConfigIssue] { collected.withLockedValue { $0 } }

    /// Adds an issue once (a setting that two client policies share is checked for each).
    package func add(_ path: String, _ message: String) {
        let issue = ConfigIssue(path: path, message: message)
        collected.withLockedValue { issues in
            if !issues.contains(issue) { issues.append(issue) }
        }
    }

    package func add(_ codingPath: [any CodingKey], _ message: String) {
        add(ConfigIssue.render(codingPath), message)
    }
}
