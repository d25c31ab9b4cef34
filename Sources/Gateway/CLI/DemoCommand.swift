import ArgumentParser
import Foundation
import GatewayCore
import GatewayTooling
import Logging
import NIOPosix
import ServiceLifecycle

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Make a throw-away CA and certificates, start an echo backend and a mutual-TLS gateway, and print a curl command."
    )

    @Option(name: .long, help: "Gateway port on 127.0.0.1 (0 picks a free one).")
    var port: Int = 8443

    @Option(name: .long, help: "Directory for the generated certificates and config (default: a new temporary directory).")
    var dir: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        signal(SIGHUP, SIG_IGN)  // until the reload handler is installed
        let logger = logging.makeLogger()
        let directory = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("gateway-demo-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let files = try DemoFiles.write(to: directory)

        let backend = EchoBackend(group: MultiThreadedEventLoopGroup.singleton)
        let backendAddress = try await backend.start()
        let configPath = "\(directory)/gateway.yaml"
        try DemoFiles.config(port: port, backendPort: backendAddress.port ?? 0, directory: directory).write(toFile: configPath, atomically: true, encoding: .utf8)

        let runtime: GatewayRuntime
        do {
            runtime = try GatewayRuntime.load(configPath: configPath)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
        let server = GatewayServer(runtime: runtime, group: MultiThreadedEventLoopGroup.singleton, logger: logger, configPath: configPath)
        try await server.start()
        let bound = server.boundAddresses["demo"]?.port ?? port
        print("""
            Demo gateway is running (mutual TLS required) on https://localhost:\(bound)/ -> echo backend on 127.0.0.1:\(backendAddress.port ?? 0)
            Files: \(directory) (config: gateway.yaml, audit log: audit.log)
            Try it (the backend answers with the headers it received, the client's identity among them):

            curl --cert \(files.clientCert) --key \(files.clientKey) --cacert \(files.ca) https://localhost:\(bound)/hello

            Without a client certificate the handshake is refused:
            curl --cacert \(files.ca) https://localhost:\(bound)/hello

            The operator's console (clients, refusals, expiry, plugins): http://127.0.0.1:\(server.adminAddress?.port ?? 0)/
            Metrics and health (admin listener): curl http://127.0.0.1:\(server.adminAddress?.port ?? 0)/metrics
            Reload after editing gateway.yaml: kill -HUP \(getpid())

            Press Ctrl-C to stop.
            """)
        fflush(nil)  // every output stream: the printed lines reach a pipe before the gateway runs
        try await server.runUntilShutdownSignal(logger: logger)
        await backend.stop()
    }
}
