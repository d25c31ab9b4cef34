import Logging
import ServiceLifecycle
import UnixSignals

/// On SIGHUP, reloads the configuration (which also makes plugins reopen their files, for logrotate).
package struct ReloadService: Service {
    package let server: GatewayServer
    package let logger: Logger

    package func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            logger.info("SIGHUP: reloading the configuration")
            _ = await server.reload()
        }
    }
}

/// Serializes reloads (SIGHUP and `POST /reload` may overlap): callers wait their turn, in order.
package actor ReloadGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    package func enter() async {
        if busy {
            await withCheckedContinuation { waiters.append($0) }
        } else {
            busy = true
        }
    }

    package func leave() {
        if waiters.isEmpty { busy = false } else { waiters.removeFirst().resume() }
    }
}
