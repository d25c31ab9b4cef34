import Foundation
import GatewayTooling
import XCTest

/// The verifier on x509-limbo (Tests/Fixtures/x509-limbo.json: C2SP/x509-limbo's limbo.json at 8a2e6f4,
/// compiled without BetterTLS, Apache-2.0) through `gateway limbo`'s harness: every disagreement with limbo is
/// one `LimboExplanation` pins (same verdict, same reason code), no explanation is stale, and the defects the
/// suite found stay fixed, each refused for its own reason.
final class LimboHarnessTests: XCTestCase {
    private static let fixture = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/x509-limbo.json")

    private func outcomes() throws -> [String: LimboHarness.Outcome] {
        let outcomes = try LimboHarness().run(limbo: Data(contentsOf: Self.fixture))
        XCTAssertEqual(outcomes.count, 208)
        return Dictionary(uniqueKeysWithValues: outcomes.map { ($0.testcase.id, $0) })
    }

    func testEveryDisagreementIsExplainedAndNoExplanationIsStale() throws {
        let byID = try outcomes()
        let all = Array(byID.values)
        XCTAssertEqual(LimboHarness.unexplained(all).map(\.testcase.id).sorted(), [], "a new disagreement, or an explanation whose verdict changed")
        for id in LimboExplanation.known.keys.sorted() {
            let outcome = try XCTUnwrap(byID[id], "\(id) is no testcase of the suite")
            XCTAssertNotNil(outcome.explanation, "\(id): the explanation no longer matches its verdict (\(outcome.verdict), \(outcome.agreement))")
            XCTAssertTrue(outcome.agreement == .unexpectedSuccess || outcome.agreement == .unexpectedFailure, "\(id) agrees with limbo now: drop its explanation")
        }
        let result = try JSONSerialization.jsonObject(with: LimboHarness.resultJSON(all)) as? [String: Any]
        XCTAssertEqual(result?["harness"] as? String, "mtls-gateway")
        XCTAssertEqual((result?["results"] as? [[String: Any]])?.count, 208)
        print(LimboHarness.summary(all.sorted { $0.testcase.id < $1.testcase.id }).components(separatedBy: "\n\n")[0])
    }

    /// What the suite's first run found: each now agrees with limbo, and a refusal names its own reason. nil:
    /// limbo expects the chain to verify.
    func testTheDefectsTheSuiteFoundStayFixed() throws {
        let byID = try outcomes()
        let fixed: [(String, String?)] = [
            ("pathlen::self-issued-certs-pathlen", nil),  // self-issued intermediates counted against pathLen
            ("rfc5280::nc::permitted-self-issued", nil),  // self-issued intermediates' names constrained
            ("pathlen::max-chain-depth-0", nil), ("pathlen::max-chain-depth-1", nil),  // the harness's depth
            ("crl::issuer-missing-crlsign", "lacks cRLSign"),
            ("cve::cve-2025-61727", "name_constraints: DNS name '*.example.com' is excluded"),
            ("rfc5280::nc::nc-forbids-dnsname-wildcard-san", "name_constraints: DNS name '*.example.com' is excluded"),
            ("rfc5280::nc::nc-permits-invalid-email-san", "outside the permitted subtrees"),
            ("rfc5280::nc::nc-permits-invalid-dns-san", "outside the permitted subtrees"),
            ("rfc5280::nc::not-allowed-in-ee-noncritical", "is no CA and has a nameConstraints extension"),
            ("rfc5280::nc::not-allowed-in-ee-critical", "is no CA and has a nameConstraints extension"),
            ("pathological::nc-dos-2", "would take more than 65536 comparisons"),
            ("rfc5280::aki::critical-aki", "critical"),
            ("rfc5280::san::malformed", "malformed subjectAltName"),
        ]
        for (id, reason) in fixed {
            let outcome = try XCTUnwrap(byID[id], id)
            XCTAssertEqual(outcome.agreement, .pass, "\(id): \(outcome.verdict)")
            if let reason {
                guard case .failure(let why) = outcome.verdict else { continue }
                XCTAssertTrue(why.contains(reason), "\(id) is refused for another reason: \(why)")
            }
        }
    }

    func testAFileThatIsNoLimboJSONIsNamedPrecisely() {
        let cases: [(String, String)] = [
            (#"{"version":1,"testcases":[{"id":"x"}]}"#, "not a limbo.json: testcases[0].validation_kind: missing"),
            (#"{"version":2,"testcases":[]}"#, "limbo.json has schema version 2; version 1 is read"),
            ("[1]", "not a limbo.json: "),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try LimboHarness().run(limbo: Data(text.utf8)), text) { error in
                XCTAssertTrue("\(error)".hasPrefix(message), "\(error)")
            }
        }
    }
}
