import ArgumentParser
import Foundation
import GatewayCore
import GatewayTooling

/// `gateway plugin test`: loads a plugin, creates one instance with a config, and runs requests through it
/// with a given client certificate; prints the decision, the headers it set and its variables. No backend.
struct PluginTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run requests through one plugin with a given client certificate, without a backend.",
        discussion: """
            Example: gateway plugin test ./libauthz.so --config authz.yaml --cert client.pem --ca ca.pem \\
                       --request "GET /admin/x" --request "POST /admin/y"
            The exit status is 0 when every request ran (whatever the decision), 1 when the plugin does not load,
            refuses its config, or an input file is unusable.
            """
    )

    @Argument(help: "Path to the plugin shared library (.so).")
    var file: String

    @Option(help: "A YAML or JSON file holding the plugin's config mapping (what goes under `config:`).")
    var config: String?

    @Option(help: "PEM file with the client certificate (leaf first, then any intermediates).")
    var cert: String?

    @Option(help: "PEM CA bundle to verify --cert against (otherwise the certificate is taken as verified).")
    var ca: String?

    @Option(name: .customLong("request"), help: "\"METHOD /path?query\"; repeat for several requests (default: GET /).")
    var requests: [String] = []

    @Option(name: .customLong("header"), help: "\"name: value\" added to every request; repeatable.")
    var headers: [String] = []

    @Option(help: "The listener name the instance is created for.")
    var listener: String = "test"

    @Flag(help: "Print one JSON object per request instead of text.")
    var json = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        PluginRegistry.shared.logger = logging.makeLogger()
        let invocation = PluginTestInvocation(
            file: file, config: config, cert: cert, ca: ca, requests: requests, headers: headers, listener: listener,
            directory: FileManager.default.currentDirectoryPath
        )
        do {
            let outcomes = try invocation.execute()
            for outcome in outcomes { print(json ? PluginTestInvocation.json(outcome) : PluginTestInvocation.text(outcome)) }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

}
