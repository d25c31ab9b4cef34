import Foundation
import XCTest

/// One release build serves the tests, the demo and the benchmarks: what the tests start is what ships and
/// what bench/run measures.
final class BuildLayoutTests: XCTestCase {
    func testTheTestsStartTheBinaryThatBenchRunMeasures() throws {
        #if DEBUG
        throw XCTSkip("a debug build: scripts/test, the demo and bench/run use the release build")
        #else
        let root = PluginFixtures.packageRoot
        let harness = try String(contentsOfFile: "\(root)/bench/lib/harness.py", encoding: .utf8)
        XCTAssertTrue(harness.contains(#"os.path.join(REPO, ".build/release/gateway")"#), "bench/run's default binary is .build/release/gateway")
        let tested = URL(fileURLWithPath: GatewayProcess.executable).resolvingSymlinksInPath().path
        let measured = URL(fileURLWithPath: "\(root)/.build/release/gateway").resolvingSymlinksInPath().path
        XCTAssertEqual(tested, measured, "the tests start the binary bench/run measures")
        #endif
    }

    func testScriptsTestBuildsWithoutTestableImports() throws {
        // With testable imports, `swift test` compiles every module again with -enable-testing: the tests would
        // run a differently compiled gateway than `swift build -c release` makes (and CI would pay two builds).
        let script = try String(contentsOfFile: "\(PluginFixtures.packageRoot)/scripts/test", encoding: .utf8)
        XCTAssertTrue(script.contains("swift test -c release --disable-testable-imports"), script)
    }
}
