import ArgumentParser
import Foundation
import GatewayTooling

/// `gateway limbo`: runs the client-certificate verifier on x509-limbo's testcases (docs/x509-limbo.md).
struct LimboCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limbo",
        abstract: "Run the client-certificate verifier on x509-limbo's path-validation testcases.",
        discussion: """
            Example: gateway limbo limbo.json --results limbo-results.json
            limbo.json comes from C2SP/x509-limbo (`python -m limbo compile`; scripts/limbo builds it). Prints a
            Markdown table by category and every disagreement with the expected result. The exit status is 0 when
            the suite ran and every disagreement is explained (LimboExplanation), 2 when one is not, 1 when the
            file cannot be read.
            """
    )

    @Argument(help: "x509-limbo's limbo.json.")
    var file: String

    @Option(help: "Also write limbo's result file (schema limbo-result, version 1) here.")
    var results: String?

    func run() throws {
        do {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError(FileManager.default.fileExists(atPath: file) ? "cannot read it" : "no such file")
            }
            let outcomes = try LimboHarness().run(limbo: data)
            if let results {
                try LimboHarness.resultJSON(outcomes).write(to: URL(fileURLWithPath: results))
            }
            print(LimboHarness.summary(outcomes), terminator: "")
            let unexplained = LimboHarness.unexplained(outcomes)
            if !unexplained.isEmpty {
                FileHandle.standardError.write(Data("limbo: \(unexplained.count) disagreements are not explained: \(unexplained.map(\.testcase.id).joined(separator: ", "))\n".utf8))
                throw ExitCode(2)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("error: \(file): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
