import ArgumentParser
import Foundation
import GatewayCore
import GatewayTooling
import Logging
import NIOPosix
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the gateway with a configuration file.")

    @Option(name: .long, help: "Path to the YAML (or .json) configuration file.")
    var config: String

    @Option(name: .long, help: "Event-loop threads (default: one per CPU core). Pinned to fewer cores, use as many.")
    var threads: Int?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be between 1 and 1024") }
    }

    func run() async throws {
        // Until the reload handler is installed, a SIGHUP (a logrotate racing start-up) must not kill the process.
        signal(SIGHUP, SIG_IGN)
        let logger = logging.makeLogger()
        let runtime: GatewayRuntime
        do {
            runtime = try GatewayRuntime.load(configPath: config)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
        let group: MultiThreadedEventLoopGroup = threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) } ?? .singleton
        let server = GatewayServer(runtime: runtime, group: group, logger: logger, configPath: config)
        do {
            try await server.start()
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        try await server.runUntilShutdownSignal(logger: logger)
    }
}

struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a configuration file, its certificates, keys, CA bundles and CRLs; exit non-zero on any problem."
    )

    @Option(name: .long, help: "Path to the YAML (or .json) configuration file.")
    var config: String

    func run() async throws {
        do {
            let runtime = try GatewayRuntime.load(configPath: config)
            print("configuration OK: \(config) (\(runtime.listeners.count) listener(s), \(runtime.backends.count) backend(s))")
            runtime.destroyPlugins()
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
