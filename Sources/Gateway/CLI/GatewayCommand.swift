import ArgumentParser
import GatewayCore
import GatewayTooling
import Logging

/// `gateway`: run, validate, or demo the mutual-TLS gateway.
@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "An HTTPS gateway that terminates mutual TLS and tells backends who the client is.",
        version: GatewayVersion.text,
        subcommands: [RunCommand.self, ValidateCommand.self, DemoCommand.self, PluginCommand.self, LimboCommand.self]
    )
}

struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "trace | debug | info | notice | warning | error | critical")
    var logLevel: String = "info"

    func makeLogger() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            // Client- and backend-supplied text never splits or forges a line.
            return LineSafeLogHandler(wrapping: handler)
        }
        var logger = Logger(label: "gateway")
        logger.logLevel = level
        return logger
    }
}
