import Foundation
import GatewayCore
import Yams

/// `gateway plugin test` as a value: its options, read and checked (files relative to `directory`), then run
/// through `PluginTestRun`; and the two ways its outcomes are printed.
package struct PluginTestInvocation {
    package var file: String
    package var config: String?
    package var cert: String?
    package var ca: String?
    package var requests: [String]
    package var headers: [String]
    package var listener: String
    package var directory: String

    package init(file: String, config: String?, cert: String?, ca: String?, requests: [String], headers: [String], listener: String, directory: String) {
        self.file = file
        self.config = config
        self.cert = cert
        self.ca = ca
        self.requests = requests
        self.headers = headers
        self.listener = listener
        self.directory = directory
    }

    /// `--config FILE` of `plugin test` and `plugin bench`: a YAML or JSON file holding the plugin's config
    /// mapping (what goes under `config:`), as the JSON text the gateway would hand the plugin.
    package static func configJSON(file: String, directory: String) throws -> String {
        let text: String
        do { text = try String(contentsOfFile: CommandLinePath.absolute(file, in: directory), encoding: .utf8) } catch {
            throw GatewayError(.invalidArgument, "--config \(file): \(FileErrors.describe(error))")
        }
        do {
            let value = try YAMLDecoder().decode(JSONValue.self, from: text)
            guard case .object = value else { throw GatewayError(.invalidArgument, "--config \(file): expected a mapping") }
            return value.json
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError(.invalidArgument, "--config \(file): not valid YAML or JSON: \(error)")
        }
    }

    package func execute() throws -> [PluginTestRun.Outcome] {
        let cwd = directory
        func absolute(_ path: String) -> String { CommandLinePath.absolute(path, in: cwd) }
        func read(_ path: String, _ option: String) throws -> String {
            do { return try String(contentsOfFile: absolute(path), encoding: .utf8) } catch {
                throw GatewayError(.invalidArgument, "\(option) \(path): \(FileErrors.describe(error))")
            }
        }
        let library = try PluginLibrary.load(path: absolute(file))
        let configJSON = try config.map { try Self.configJSON(file: $0, directory: cwd) } ?? "{}"
        let parsedRequests = try (requests.isEmpty ? ["GET /"] : requests).map { spec -> (String, String, [(String, String)]) in
            let parts = spec.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, parts[1].hasPrefix("/") else {
                throw GatewayError(.invalidArgument, "--request '\(spec)': expected \"METHOD /path\"")
            }
            return (String(parts[0]), String(parts[1]), [])
        }
        let extraHeaders = try headers.map { line -> (String, String) in
            guard let colon = line.firstIndex(of: ":") else { throw GatewayError(.invalidArgument, "--header '\(line)': expected \"name: value\"") }
            let name = String(line[..<colon]).trimmingCharacters(in: .whitespaces)
            let value = String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            // What a client could send: a token name, a value without NUL, CR or LF.
            guard HeaderValidation.isValidName(name), HeaderValidation.isValidValue(value) else {
                throw GatewayError(.invalidArgument, "--header \(line.debugDescription): the name must be a token and the value free of NUL, CR and LF")
            }
            return (name, value)
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

    package static func text(_ outcome: PluginTestRun.Outcome) -> String {
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

    package static func json(_ outcome: PluginTestRun.Outcome) -> String {
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
