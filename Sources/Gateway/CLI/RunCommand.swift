import ArgumentParser
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the gateway with a configuration file.")

    @Option(name: .long, help: "Path to the YAML (or .json) configuration file.")
    var config: String

    @OptionGroup var logging: LoggingOptions

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
        let server = GatewayServer(runtime: runtime, group: MultiThreadedEventLoopGroup.singleton, logger: logger, configPath: config)
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
