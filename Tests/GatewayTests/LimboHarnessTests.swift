import Foundation
import GatewayTooling
import XCTest

/// The verifier on x509-limbo testcases it once disagreed with (Tests/Fixtures/limbo-regressions.json, taken
/// from C2SP/x509-limbo's limbo.json, Apache-2.0), through `gateway limbo`'s harness. Each failed before its fix:
/// self-issued intermediates counted against pathLenConstraint and name constraints; a CA without cRLSign could
/// sign a listener's CRL; a wildcard SAN slipped past an excluded host; a malformed email or DNS SAN was placed
/// inside a permitted subtree; a leaf carried name constraints; 2,048 names against 4,096 subtrees held the
/// thread for 2.7 s; a critical authority key identifier was taken; limbo's max_chain_depth was read as verify_depth.
final class LimboHarnessTests: XCTestCase {
    private static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/limbo-regressions.json")

    func testTheVerifierAgreesWithLimboOnEveryRegression() throws {
        let outcomes = try LimboHarness().run(limbo: Data(contentsOf: Self.fixtures))
        XCTAssertEqual(outcomes.count, 13)
        for outcome in outcomes {
            XCTAssertEqual(outcome.agreement, .pass, "\(outcome.testcase.id): expected \(outcome.testcase.expectedResult), got \(outcome.verdict)")
        }
        let summary = LimboHarness.summary(outcomes)
        XCTAssertTrue(summary.contains("| **all** | 13 | 13 | 0 | 0 | 0 |"), summary)
        let results = try JSONSerialization.jsonObject(with: LimboHarness.resultJSON(outcomes)) as? [String: Any]
        XCTAssertEqual(results?["harness"] as? String, "mtls-gateway")
        XCTAssertEqual((results?["results"] as? [[String: Any]])?.count, 13)
    }
}
