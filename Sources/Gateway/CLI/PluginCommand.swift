import ArgumentParser
import Foundation
import GatewayCore
import GatewayTooling

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Work with plugin libraries.",
        subcommands: [PluginNewCommand.self, PluginInspectCommand.self, PluginTestCommand.self, PluginBenchCommand.self]
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

    @Option(help: "A YAML or JSON file holding the config mapping handed to every instance (as for `plugin test`).")
    var config: String?

    @Option(help: "PEM client certificate chain: requests carry this identity (e.g. to measure header injection), and the identity extraction per connection is measured too.")
    var cert: String?

    @Option(help: "PEM CA bundle: with --cert, also measure a full chain verification (as on a first handshake).")
    var ca: String?

    func run() async throws {
        let absolute = { CommandLinePath.absolute($0) }
        let bench = PluginBench(
            libraryPath: absolute(file), iterations: iterations,
            configJSON: try config.map { try PluginTestInvocation.configJSON(file: $0, directory: FileManager.default.currentDirectoryPath) } ?? "{}",
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

/// Scaffolds a plugin project that builds and passes `gateway plugin test` as written.
struct PluginNewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new",
        abstract: "Make a new plugin project in C or Swift that builds and passes `gateway plugin test` at once.",
        discussion: """
            Example: gateway plugin new c my_authz && cd my_authz && make && gateway plugin test ./libmy_authz.so
            """
    )

    @Argument(help: "c or swift.")
    var language: String

    @Argument(help: "The plugin's name: [a-z][a-z0-9_]*, at most 64 bytes. Also the default directory.")
    var name: String

    @Option(help: "Directory to create (default: ./NAME). Must not exist or be empty.")
    var dir: String?

    @Option(help: "The plugin SDK folder (default: the sdk folder of the checkout this gateway was built from).")
    var sdk: String?

    func run() async throws {
        do {
            guard let language = PluginScaffold.Language(rawValue: language) else {
                throw GatewayError(.invalidArgument, "language '\(language)': expected c or swift")
            }
            guard let sdk = sdk.map({ CommandLinePath.absolute($0) }) ?? PluginScaffold.defaultSDK else {
                throw GatewayError(.invalidArgument, "the checkout this gateway was built from is gone: pass --sdk <checkout>/sdk")
            }
            let scaffold = try PluginScaffold(language: language, name: name, sdk: sdk)
            let directory = CommandLinePath.absolute(dir ?? name)
            try scaffold.write(to: directory)
            let build = language == .c ? "make" : "swift build -c release"
            print("""
                Made \(directory) (\(scaffold.files.map(\.path).joined(separator: ", "))).
                Next: cd \(directory) && \(build) && gateway plugin test \(scaffold.library) --request "GET /hello"
                """)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
