import ArgumentParser
import Foundation
import Logging
import Yams

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
        do {
            let outcomes = try execute()
            for outcome in outcomes { print(json ? Self.json(outcome) : Self.text(outcome)) }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func execute() throws -> [PluginTestRun.Outcome] {
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path.hasPrefix("/") ? path : cwd + "/" + path).standardized.path }
        func read(_ path: String, _ option: String) throws -> String {
            do { return try String(contentsOfFile: absolute(path), encoding: .utf8) } catch {
                throw GatewayError(.invalidArgument, "\(option) \(path): \(FileErrors.describe(error))")
            }
        }
        let library = try PluginLibrary.load(path: absolute(file))
        var configJSON = "{}"
        if let config {
            let text = try read(config, "--config")
            do {
                let value = try YAMLDecoder().decode(JSONValue.self, from: text)
                guard case .object = value else { throw GatewayError(.invalidArgument, "--config \(config): expected a mapping") }
                configJSON = value.json
            } catch let error as GatewayError {
                throw error
            } catch {
                throw GatewayError(.invalidArgument, "--config \(config): not valid YAML or JSON: \(error)")
            }
        }
        let parsedRequests = try (requests.isEmpty ? ["GET /"] : requests).map { spec -> (String, String, [(String, String)]) in
            let parts = spec.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[1].hasPrefix("/") else {
                throw GatewayError(.invalidArgument, "--request '\(spec)': expected \"METHOD /path\"")
            }
            return (String(parts[0]), String(parts[1]), [])
        }
        let extraHeaders = try headers.map { line -> (String, String) in
            guard let colon = line.firstIndex(of: ":") else { throw GatewayError(.invalidArgument, "--header '\(line)': expected \"name: value\"") }
            return (String(line[..<colon]).trimmingCharacters(in: .whitespaces), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let connection = try PluginTestRun.connection(
            chainPEM: try cert.map { try read($0, "--cert") }, caPEM: try ca.map { try read($0, "--ca") }, listener: listener
        )
        if case .failed(let rejection) = connection.verification {
            FileHandle.standardError.write(Data("note: the gateway would refuse this certificate at the handshake: \(rejection)\n".utf8))
        }
        let run = PluginTestRun(library: library, configJSON: configJSON, listener: listener)
        return try run.run(requests: parsedRequests.map { ($0.0, $0.1, $0.2 + extraHeaders) }, connection: connection)
    }

    static func text(_ outcome: PluginTestRun.Outcome) -> String {
        var lines = ["\(outcome.request)"]
        switch outcome.decision {
        case .proceed: lines.append("  decision: continue (the request goes on to the backend)")
        case .respond(let status): lines.append("  decision: respond \(status)")
        case .failed(let reason): lines.append("  decision: plugin failed (500 under on_error: deny): \(reason)")
        }
        for (name, value) in outcome.added { lines.append("  + \(name): \(value)") }
        for (name, value) in outcome.removed { lines.append("  - \(name): \(value)") }
        if let response = outcome.response {
            for (name, value) in response.headers { lines.append("  response \(name): \(value)") }
            if !response.body.isEmpty { lines.append("  response body: \(response.body)") }
        }
        for (name, value) in outcome.vars.sorted(by: { $0.key < $1.key }) { lines.append("  var \(name) = \(value)") }
        return lines.joined(separator: "\n")
    }

    static func json(_ outcome: PluginTestRun.Outcome) -> String {
        var object: [String: Any] = ["request": outcome.request, "vars": outcome.vars]
        switch outcome.decision {
        case .proceed: object["decision"] = "continue"
        case .respond(let status):
            object["decision"] = "respond"
            object["status"] = status
        case .failed(let reason):
            object["decision"] = "failed"
            object["reason"] = reason
        }
        object["added_headers"] = outcome.added.map { [$0.0, $0.1] }
        object["removed_headers"] = outcome.removed.map { [$0.0, $0.1] }
        if let response = outcome.response {
            object["response_headers"] = response.headers.map { [$0.0, $0.1] }
            object["response_body"] = response.body
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
