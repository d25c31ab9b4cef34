import Logging
import ServiceLifecycle
import UnixSignals

/// On SIGHUP, asks every plugin instance to reopen its files (logrotate's rename-then-signal).
struct ReopenOnHangupService: Service {
    let runtime: GatewayRuntime
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.info("SIGHUP: plugins reopen their files")
            runtime.reopenPlugins()
        }
    }
}
