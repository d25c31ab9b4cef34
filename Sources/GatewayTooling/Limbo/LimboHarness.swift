import Foundation
import GatewayCore
import SwiftASN1
import X509

/// Runs the gateway's client-certificate verifier (`ClientCertificateVerifier`, as a listener builds it) on
/// x509-limbo's path-validation testcases (`gateway limbo limbo.json`, docs/x509-limbo.md).
///
/// Each testcase becomes what a listener would be given: `trusted_certs` as `client_ca` (a certificate that is no
/// CA is refused there, as at config load), `crls` as `crl` files (sorted and checked as at load, against the
/// validation time), `max_chain_depth` + 1 as `verify_depth` (which counts the anchor; 16 when absent), and the peer certificate
/// followed by `untrusted_intermediates` as the chain a client presents. CLIENT testcases need clientAuth in an
/// extended key usage; SERVER ones are run with serverAuth in its place, so that their path rules (CA
/// constraints, path length, name constraints, validity, critical extensions, CRLs) are checked too. The
/// verifier never matches a server name: a SERVER testcase whose path verifies but whose leaf cannot name the
/// expected peer is skipped with that reason (`leaf(_:mayName:)`).
package struct LimboHarness: Sendable {
    package enum Verdict: Equatable, Sendable {
        case success
        case failure(String)
        case skipped(String)
    }

    /// One testcase's outcome against its expectation.
    package struct Outcome: Sendable {
        package var testcase: LimboTestcase
        package var verdict: Verdict
        /// Why a disagreement is not a defect of client authentication: `LimboExplanation.known`'s entry for
        /// the testcase, when it pins this very verdict (and reason code); nil otherwise.
        package var explanation: String?

        package enum Agreement: String, Sendable {
            case pass, unexpectedSuccess = "unexpected success", unexpectedFailure = "unexpected failure", skipped
        }

        package var agreement: Agreement {
            switch (verdict, testcase.expectedResult) {
            case (.skipped, _): return .skipped
            case (.success, .success), (.failure, .failure): return .pass
            case (.success, .failure): return .unexpectedSuccess
            case (.failure, .success): return .unexpectedFailure
            }
        }
    }

    /// The largest `verify_depth` a listener accepts.
    static let maxDepth = 16

    package init() {}

    /// Every testcase of `limbo` (the bytes of limbo.json), in file order.
    package func run(limbo: Data) throws -> [Outcome] {
        struct Limbo: Decodable {
            var version: Int
            var testcases: [LimboTestcase]
        }
        let decoded: Limbo
        do {
            decoded = try JSONDecoder().decode(Limbo.self, from: limbo)
        } catch let error as DecodingError {
            throw LimboError("not a limbo.json: \(Self.describe(error))")
        }
        guard decoded.version == 1 else { throw LimboError("limbo.json has schema version \(decoded.version); version 1 is read") }
        return decoded.testcases.map { testcase in
            let verdict = evaluate(testcase)
            return Outcome(testcase: testcase, verdict: verdict, explanation: LimboExplanation.known[testcase.id]?.explains(verdict))
        }
    }

    /// "testcases[3].validation_kind: missing", as the config loader names key paths.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.reduce("") { text, key in
                if let index = key.intValue { return "\(text)[\(index)]" }
                return text.isEmpty ? key.stringValue : "\(text).\(key.stringValue)"
            }
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])): missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let at = path(context.codingPath)
            return at.isEmpty ? context.debugDescription : "\(at): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    package struct LimboError: Error, CustomStringConvertible {
        package var description: String
        init(_ description: String) { self.description = description }
    }

    /// The verifier's verdict on one testcase.
    package func evaluate(_ testcase: LimboTestcase) -> Verdict {
        if !testcase.signatureAlgorithms.isEmpty {
            return .skipped("signature_algorithms: the verifier takes every algorithm swift-crypto verifies; it has no configured list")
        }
        if !testcase.keyUsage.isEmpty && testcase.keyUsage != ["digitalSignature"] {
            return .skipped("key_usage \(testcase.keyUsage): a leaf's key usage is checked for digitalSignature only")
        }
        // limbo's max_chain_depth counts intermediates; verify_depth counts the CAs above the leaf, the anchor too.
        let depth = testcase.maxChainDepth.map { $0 + 1 } ?? Self.maxDepth
        guard (1...Self.maxDepth).contains(depth) else {
            return .skipped("max_chain_depth \(testcase.maxChainDepth ?? 0): verify_depth is 1 to \(Self.maxDepth), max_chain_depth + 1 here")
        }
        let usage: ExtendedKeyUsage.Usage
        switch (testcase.extendedKeyUsage, testcase.validationKind) {
        case ([], .client), (["clientAuth"], _): usage = .clientAuth
        case ([], .server), (["serverAuth"], _): usage = .serverAuth
        default: return .skipped("extended_key_usage \(testcase.extendedKeyUsage): one of clientAuth or serverAuth is checked")
        }
        let now: Date
        if let text = testcase.validationTime {
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let parsed = ISO8601DateFormatter().date(from: text) ?? fractional.date(from: text) else {
                return .skipped("validation_time '\(text)' is not RFC 3339")
            }
            now = parsed
        } else {
            now = Date()
        }

        // client_ca, as the config loader takes it.
        var anchors: [Certificate] = []
        for (index, pem) in testcase.trustedCerts.enumerated() {
            guard let certificate = try? Certificate(pemEncoded: pem) else {
                return .failure("config: client_ca[\(index)] does not parse")
            }
            if let problem = ClientCertificateVerifier.anchorProblem(certificate) {
                return .failure("config: client_ca[\(index)] '\(certificate.subject)' \(problem)")
            }
            anchors.append(certificate)
        }
        // crl, as the config loader takes it, with the validation time as the time of loading.
        var crls: [CertificateRevocationList] = []
        var pathCRLs: [CertificateRevocationList] = []
        for (index, pem) in testcase.crls.enumerated() {
            guard let parsed = try? CertificateRevocationList.parseFile(Data(pem.utf8)) else {
                return .failure("config: crl[\(index)] does not parse")
            }
            for crl in parsed {
                if let next = crl.nextUpdate, next < now { return .failure("config: crl[\(index)] expired at \(next)") }
                switch ClientCertificateVerifier.place(crl, anchors: anchors) {
                case .anchor: crls.append(crl)
                case .path: pathCRLs.append(crl)
                case .refused(let reason): return .failure("config: crl[\(index)] \(reason)")
                }
            }
        }
        // The chain as a client presents it: the leaf, then the intermediates.
        var presented: [[UInt8]] = []
        for pem in [testcase.peerCertificate] + testcase.untrustedIntermediates {
            guard let document = try? PEMDocument(pemString: pem) else { return .failure("a presented certificate is not PEM") }
            presented.append(document.derBytes)
        }
        let verifier = ClientCertificateVerifier(anchors: anchors, crls: crls, pathCRLs: pathCRLs, maxDepth: depth, leafUsage: usage)
        switch verifier.verify(der: presented, now: now) {
        case .verified:
            if testcase.validationKind == .server, let peer = testcase.expectedPeerName,
                let leaf = try? Certificate(derEncoded: presented[0]), Self.leaf(leaf, namesOtherThan: peer)
            {
                return .skipped("the path verifies, and the leaf's SANs name others than \(peer.kind) '\(peer.value)': a client-certificate verifier matches no server name")
            }
            return .success
        case .rejected(let rejection, _):
            return .failure(rejection.description)
        }
    }

    /// Whether `leaf` has a subjectAltName extension that parses, holds names, and none of them could name
    /// `peer`, read generously (DNS names equal but for case, or a `*.` wildcard for one label; IP addresses
    /// and email addresses equal). Only such a SERVER testcase is about its name, which the verifier never
    /// matches, and is skipped. Every other one counts (no SAN, a SAN that does not parse, a SAN that could
    /// name the peer), so a path the verifier wrongly admits is not hidden behind a name.
    static func leaf(_ leaf: Certificate, namesOtherThan peer: LimboTestcase.PeerName) -> Bool {
        guard let names = (try? leaf.extensions.subjectAlternativeNames) ?? nil, !names.isEmpty else { return false }
        return !Self.leaf(names, mayName: peer)
    }

    private static func leaf(_ names: SubjectAlternativeNames, mayName peer: LimboTestcase.PeerName) -> Bool {
        let wanted = peer.value.lowercased()
        for name in names {
            switch (peer.kind, name) {
            case ("DNS", .dnsName(let dns)):
                let dns = dns.lowercased()
                if dns == wanted { return true }
                if dns.hasPrefix("*."), let dot = wanted.firstIndex(of: "."), wanted[wanted.index(after: dot)...] == dns.dropFirst(2) { return true }
            case ("IP", .ipAddress(let bytes)):
                if AddressRange.bytes(of: wanted) == Array(bytes.bytes) { return true }
            case ("RFC822", .rfc822Name(let email)):
                if email.lowercased() == wanted { return true }
            default:
                continue
            }
        }
        return false
    }

    /// limbo's result file (`limbo-result` schema version 1), for its tooling and site.
    package static func resultJSON(_ outcomes: [Outcome]) throws -> Data {
        struct Result: Encodable {
            var id: String
            var actual_result: String
            var context: String?
        }
        struct File: Encodable {
            var version = 1
            var harness = "mtls-gateway"
            var results: [Result]
        }
        let results = outcomes.map { outcome -> Result in
            switch outcome.verdict {
            case .success: return Result(id: outcome.testcase.id, actual_result: "SUCCESS", context: nil)
            case .failure(let why): return Result(id: outcome.testcase.id, actual_result: "FAILURE", context: why)
            case .skipped(let why): return Result(id: outcome.testcase.id, actual_result: "SKIPPED", context: why)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(File(results: results))
    }

    /// The disagreements `LimboExplanation.known` does not explain (or no longer explains: the verdict or its
    /// reason changed). `gateway limbo` exits 2 when there are any.
    package static func unexplained(_ outcomes: [Outcome]) -> [Outcome] {
        outcomes.filter { ($0.agreement == .unexpectedSuccess || $0.agreement == .unexpectedFailure) && $0.explanation == nil }
    }

    /// A Markdown summary: per category, how many testcases agree, disagree either way, or were skipped; then
    /// every disagreement with the verifier's reason and its explanation, when there is one.
    package static func summary(_ outcomes: [Outcome]) -> String {
        var categories: [String] = []
        var counts: [String: [Outcome.Agreement: Int]] = [:]
        for outcome in outcomes {
            let category = outcome.testcase.category
            if counts[category] == nil { categories.append(category) }
            counts[category, default: [:]][outcome.agreement, default: 0] += 1
        }
        var out = "| category | testcases | pass | unexpected success | unexpected failure | skipped |\n|---|---:|---:|---:|---:|---:|\n"
        var total: [Outcome.Agreement: Int] = [:]
        for category in categories.sorted() {
            let row = counts[category] ?? [:]
            for (key, value) in row { total[key, default: 0] += value }
            out += "| \(category) | \(row.values.reduce(0, +)) | \(row[.pass] ?? 0) | \(row[.unexpectedSuccess] ?? 0) | \(row[.unexpectedFailure] ?? 0) | \(row[.skipped] ?? 0) |\n"
        }
        out += "| **all** | \(outcomes.count) | \(total[.pass] ?? 0) | \(total[.unexpectedSuccess] ?? 0) | \(total[.unexpectedFailure] ?? 0) | \(total[.skipped] ?? 0) |\n"
        let disagreements = outcomes.filter { $0.agreement == .unexpectedSuccess || $0.agreement == .unexpectedFailure }
        if !disagreements.isEmpty {
            out += "\n| testcase | expected | verifier | explanation |\n|---|---|---|---|\n"
            for outcome in disagreements {
                let verdict: String
                switch outcome.verdict {
                case .success: verdict = "SUCCESS"
                case .failure(let why): verdict = "FAILURE: \(why)"
                case .skipped(let why): verdict = "SKIPPED: \(why)"
                }
                let cell = { (text: String) in text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
                out += "| `\(outcome.testcase.id)` | \(outcome.testcase.expectedResult.rawValue) | \(cell(verdict)) | \(cell(outcome.explanation ?? "**not explained**")) |\n"
            }
        }
        return out
    }
}
