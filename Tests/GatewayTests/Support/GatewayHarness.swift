import Foundation
import GatewayCore
import GatewayTooling
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// Collects log records so that tests can assert what the gateway logged (e.g. a rejection's reason).
final class LogCapture: @unchecked Sendable {
    struct Record {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = NIOLockedValueBox<[Record]>([])

    var all: [Record] { records.withLockedValue { $0 } }

    func append(_ record: Record) { records.withLockedValue { $0.append(record) } }

    func makeLogger() -> Logger {
        var logger = Logger(label: "gateway-test") { _ in Handler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    /// Waits a little for a record to appear (logging happens on event loops).
    func waitFor(timeout: TimeInterval = 5, _ predicate: (Record) -> Bool) async -> Record? {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if let match = all.first(where: predicate) { return match }
            try? await Task.sleep(nanoseconds: 10_000_000)
        } while Date() < deadline
        return nil
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var flat: [String: String] = [:]
            for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { flat[k] = "\(v)" }
            capture.append(Record(level: event.level, message: "\(event.message)", metadata: flat))
        }
    }
}

/// Starts the real gateway in-process from a YAML config written next to the test PKI, on 127.0.0.1:0.
final class GatewayHarness: Sendable {
    let server: GatewayServer
    /// The generation the gateway started with (a reload replaces `server.runtime`).
    let runtime: GatewayRuntime
    let logs: LogCapture
    let configPath: String

    init(yaml: String, in directory: String) async throws {
        configPath = "\(directory)/gateway-\(UUID().uuidString).yaml"
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        logs = LogCapture()
        runtime = try GatewayRuntime.load(configPath: configPath)
        server = GatewayServer(runtime: runtime, group: MultiThreadedEventLoopGroup.singleton, logger: logs.makeLogger(), configPath: configPath)
        try await server.start()
    }

    func port(_ listener: String) -> Int {
        server.boundAddresses[listener]?.port ?? 0
    }

    func stop() async {
        await server.shutdown()
    }

    func reopenPlugins() {
        server.runtime.reopenPlugins()
    }

    /// Rewrites the configuration file and reloads it, as SIGHUP would.
    func reload(yaml: String? = nil) async -> GatewayServer.ReloadOutcome {
        if let yaml { try? yaml.write(toFile: configPath, atomically: true, encoding: .utf8) }
        return await server.reload()
    }

    /// The admin listener's port (0 when none is configured).
    var adminPort: Int { server.adminAddress?.port ?? 0 }
}

/// A port on 127.0.0.1 that nothing listens on (connections are refused).
func unusedPort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress!.port!
    try channel.close().wait()
    return port
}
