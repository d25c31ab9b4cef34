import ArgumentParser
import Foundation
import GatewayCore
import GatewayTooling

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Work with plugin libraries.",
        subcommands: [PluginInspectCommand.self, PluginTestCommand.self, PluginBenchCommand.self]
    )
}

struct PluginInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a plugin's descriptor, or exactly why the file is not a loadable plugin."
    )

    @Argument(help: "Path to the plugin shared library (.so).")
    var file: String

    func run() async throws {
        let path = CommandLinePath.absolute(file)
        do {
            let library = try PluginLibrary.load(path: path)
            print("""
                file:     \(library.path)
                name:     \(library.name)
                version:  \(library.version)
                abi:      \(library.descriptor.pointee.abi_major).\(library.abiMinor) (this gateway: \(HostAPI.abiVersion))
                flags:    \(library.isBlocking ? "blocking" : "none")
                hooks:    \(library.hookNames.joined(separator: ", "))
                """)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Measures what the plugin chain costs per request: chains of 0, 1, 3 and 10 instances of one plugin.
struct PluginBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the per-request cost of a chain of 0, 1, 3 and 10 instances of a (no-op) plugin."
    )

    @Argument(help: "Path to the plugin shared library (.so); its hooks must not block.")
    var file: String

    @Option(help: "Requests per chain length.")
    var iterations: Int = 1_000_000

    @Option(help: "The JSON config handed to every instance.")
    var config: String = "{}"

    @Option(help: "PEM client certificate chain: requests carry this identity (e.g. to measure header injection), and the identity extraction per connection is measured too.")
    var cert: String?

    @Option(help: "PEM CA bundle: with --cert, also measure a full chain verification (as on a first handshake).")
    var ca: String?

    func run() async throws {
        let absolute = { CommandLinePath.absolute($0) }
        let bench = PluginBench(
            libraryPath: absolute(file), iterations: iterations, configJSON: config,
            chainPEM: try cert.map { try String(contentsOfFile: absolute($0), encoding: .utf8) },
            caPEM: try ca.map { try String(contentsOfFile: absolute($0), encoding: .utf8) }
        )
        do {
            try bench.run { print($0) }
        } catch let error as PluginBench.Refusal {
            throw ValidationError(error.reason)
        }
    }
}
