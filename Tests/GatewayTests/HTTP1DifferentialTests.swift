import GatewayCore
import GatewayTooling
import XCTest

/// The gateway's request parser against llhttp (NIO's decoder) on generated requests: they agree, or differ in
/// one of the documented ways (`HTTP1Differential.Deliberate`). And the parser gives the same parts whatever
/// reads the bytes arrive in.
/// `GATEWAY_DIFFERENTIAL_COUNT` and `GATEWAY_DIFFERENTIAL_SEED` run more (or other) inputs by hand.
final class HTTP1DifferentialTests: XCTestCase {
    static let count = ProcessInfo.processInfo.environment["GATEWAY_DIFFERENTIAL_COUNT"].flatMap { Int($0) } ?? 20_000
    static let seed = ProcessInfo.processInfo.environment["GATEWAY_DIFFERENTIAL_SEED"].flatMap { UInt64($0) } ?? 0x5EED_0001

    /// Verdicts counted by kind, up to three inputs shown per deliberate difference, up to eight unexplained.
    private struct Tally {
        var counts: [String: Int] = [:]
        var differences: [String] = []
        var examples: [String: [String]] = [:]

        mutating func add(_ verdict: HTTP1Differential.Verdict, _ bytes: [UInt8], label: String = "") {
            switch verdict {
            case .same: counts["same", default: 0] += 1
            case .deliberate(let reason):
                counts[reason.rawValue, default: 0] += 1
                if examples[reason.rawValue, default: []].count < 3 { examples[reason.rawValue, default: []].append(HTTP1DifferentialTests.escaped(bytes)) }
            case .differs(let what):
                counts["differs", default: 0] += 1
                if differences.count < 8 { differences.append("\(label)\(HTTP1DifferentialTests.escaped(bytes))\n    \(what)") }
            }
        }

        func report(_ title: String) {
            print(title, counts.sorted { $0.key < $1.key })
            for (reason, inputs) in examples.sorted(by: { $0.key < $1.key }) { print("  \(reason), e.g.:\n    " + inputs.joined(separator: "\n    ")) }
        }
    }

    func testGeneratedRequestsAgreeWithLlhttp() {
        var generator = HTTP1MessageGenerator(seed: Self.seed)
        var tally = Tally()
        var accepted = 0
        for _ in 0..<Self.count {
            let bytes = generator.next()
            let gateway = HTTP1Differential.gateway(bytes)
            if gateway.refusal == nil, gateway.messages.contains(where: \.ended) { accepted += 1 }
            tally.add(HTTP1Differential.compare(bytes, llhttp: HTTP1Differential.llhttp(bytes), gateway: gateway), bytes)
        }
        tally.report("HTTP1 differential, \(Self.count) generated inputs (seed \(Self.seed)) (\(accepted) accepted whole by the gateway):")
        XCTAssertEqual(tally.differences, [], "unexplained differences from llhttp")
        // The generator must exercise both sides: plenty of requests the two parsers accept, and refusals.
        XCTAssertGreaterThan(accepted, Self.count / 8)
        XCTAssertGreaterThan(tally.counts["same", default: 0], Self.count / 2)
    }

    func testGeneratedResponsesAgreeWithLlhttp() {
        var generator = HTTP1MessageGenerator(seed: Self.seed ^ 0x5E5)
        var tally = Tally()
        for index in 0..<Self.count {
            let bytes = generator.nextResponses()
            let head = index % 10 == 0
            tally.add(HTTP1Differential.compareResponses(bytes, head: head), bytes, label: head ? "(HEAD) " : "")
        }
        tally.report("HTTP1 response differential, \(Self.count) generated inputs (seed \(Self.seed ^ 0x5E5)):")
        XCTAssertEqual(tally.differences, [], "unexplained differences from llhttp")
        XCTAssertGreaterThan(tally.counts["same", default: 0], Self.count / 2)
    }

    func testReadBoundariesDoNotChangeTheParse() {
        var generator = HTTP1MessageGenerator(seed: 0x5EED_0002)
        var random = SeededRandom(seed: 7)
        for _ in 0..<5_000 {
            let bytes = generator.next()
            let whole = HTTP1Differential.gateway(bytes)
            var cuts: [Int] = []
            if bytes.count < 200, random.next() % 4 == 0 {
                cuts = Array(1..<max(1, bytes.count))
            } else if bytes.count > 1 {
                cuts = (0..<(1 + Int(random.next() % 3))).map { _ in 1 + Int(random.next() % UInt64(bytes.count - 1)) }.sorted()
            }
            let split = HTTP1Differential.gateway(bytes, cuts: cuts)
            guard whole.messages == split.messages, whole.refusal == split.refusal else {
                return XCTFail("reads at \(cuts) change the parse of \(Self.escaped(bytes)):\n  whole \(whole)\n  split \(split)")
            }
        }
    }

    static func escaped(_ bytes: [UInt8]) -> String {
        bytes.map { byte -> String in
            switch byte {
            case 13: return "\\r"
            case 10: return "\\n"
            case 9: return "\\t"
            case 32...126: return String(UnicodeScalar(byte))
            default: return String(format: "\\x%02x", byte)
            }
        }.joined()
    }
}
