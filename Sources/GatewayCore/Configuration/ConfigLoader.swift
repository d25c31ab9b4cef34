import Foundation
import Yams

/// Reads a configuration file (YAML, or JSON by extension) into `GatewayConfig`, collecting every problem.
public enum ConfigLoader {
    /// Decodes `path`; throws `ConfigValidationError` listing every structural problem with its key path.
    public static func load(path: String) throws -> GatewayConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigValidationError(source: path, issues: [ConfigIssue(path: "", message: "cannot read '\(path)': \(FileErrors.describe(error))")])
        }
        return try decode(data, source: path, json: path.lowercased().hasSuffix(".json"))
    }

    public static func decode(_ data: Data, source: String, json: Bool = false) throws -> GatewayConfig {
        let issues = ConfigIssueCollector()
        let userInfo: [CodingUserInfoKey: any Sendable] = [.configIssues: issues]
        var config: GatewayConfig?
        do {
            if json {
                let decoder = JSONDecoder()
                decoder.userInfo = userInfo
                config = try decoder.decode(GatewayConfig.self, from: data)
            } else {
                guard let text = String(data: data, encoding: .utf8) else {
                    throw ConfigValidationError(source: source, issues: [ConfigIssue(path: "", message: "file is not UTF-8 text")])
                }
                config = try YAMLDecoder().decode(GatewayConfig.self, from: text, userInfo: userInfo)
            }
        } catch let error as ConfigValidationError {
            throw error
        } catch let error as DecodingError {
            if issues.issues.isEmpty {
                issues.add(Self.codingPath(of: error), ConfigContainer<AnyCodingKey>.describe(error))
            }
        } catch {
            issues.add("", "not valid \(json ? "JSON" : "YAML"): \(error)")
        }
        guard let config, issues.issues.isEmpty else {
            throw ConfigValidationError(source: source, issues: issues.issues)
        }
        return config
    }

    private static func codingPath(of error: DecodingError) -> [any CodingKey] {
        switch error {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
            return c.codingPath
        @unknown default:
            return []
        }
    }
}

/// Short, operator-facing descriptions of file errors ("no such file", "permission denied").
package enum FileErrors {
    package static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code))).lowercased()
        }
        switch ns.code {
        case NSFileReadNoSuchFileError, NSFileNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError: return "permission denied"
        default: return ns.localizedDescription
        }
    }
}
