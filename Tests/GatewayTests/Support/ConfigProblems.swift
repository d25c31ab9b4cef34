import Foundation
import GatewayCore
import XCTest

extension TestPKI {
    /// Loads `yaml` (written beside the test's certificates) and returns every problem reported, as
    /// `gateway validate` prints them; fails the test if the configuration is accepted.
    func configProblems(_ yaml: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        let path = path("broken-\(UUID().uuidString).yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try GatewayRuntime.load(configPath: path)
            XCTFail("expected the configuration to be refused", file: file, line: line)
            return []
        } catch let error as ConfigValidationError {
            return error.issues.map(\.description)
        }
    }
}

/// `issues` has one that contains `expected`.
func assertProblem(_ issues: [String], _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertTrue(issues.contains { $0.contains(expected) }, "missing '\(expected)' in:\n\(issues.joined(separator: "\n"))", file: file, line: line)
}
