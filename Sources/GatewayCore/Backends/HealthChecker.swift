import Logging
import NIOCore

/// Runs a backend group's active health checks on one event loop: every `interval`, one probe per server;
/// `unhealthy` failures in a row take a server out of rotation, `healthy` successes in a row put it back.
/// Servers start in rotation (the first probe runs at once). All state lives on `eventLoop`.
// @unchecked Sendable: all mutable state is read and written on `eventLoop` only.
package final class HealthChecker: @unchecked Sendable {
    private let backend: BackendGroup
    private let config: HealthCheckConfig
    private let eventLoop: any EventLoop
    private let logger: Logger
    private var task: RepeatedTask?
    private var stopped = false
    /// Per server: successes (positive) or failures (negative) in a row.
    private var streaks: [Int]

    package init(backend: BackendGroup, config: HealthCheckConfig, eventLoop: any EventLoop, logger: Logger) {
        self.backend = backend
        self.config = config
        self.eventLoop = eventLoop
        self.logger = logger
        self.streaks = Array(repeating: 0, count: backend.servers.count)
    }

    package func start() {
        eventLoop.execute { [self] in
            guard !stopped, task == nil else { return }
            task = eventLoop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: config.interval.timeAmount) { [self] _ in
                self.round()
            }
        }
    }

    package func stop() {
        eventLoop.execute { [self] in
            stopped = true
            task?.cancel()
            task = nil
        }
    }

    /// Probes every server once; the next round is scheduled `interval` after this one finished.
    private func round() -> EventLoopFuture<Void> {
        let probes = backend.servers.enumerated().map { index, server in
            HealthProbe.run(backend: backend, server: server, config: config, on: eventLoop).map { outcome in
                self.record(outcome, server: server, index: index)
            }
        }
        return EventLoopFuture.andAllComplete(probes, on: eventLoop)
    }

    private func record(_ outcome: HealthProbe.Outcome, server: BackendServer, index: Int) {
        guard !stopped else { return }
        if outcome.healthy {
            streaks[index] = max(streaks[index], 0) + 1
            if !server.checkedHealthy.load(ordering: .relaxed), streaks[index] >= config.healthy {
                server.setChecked(healthy: true)
                logger.notice("backend server healthy again", metadata: [
                    "backend": "\(backend.name)", "server": "\(server.address)", "checks_passed": "\(streaks[index])",
                ])
            }
        } else {
            streaks[index] = min(streaks[index], 0) - 1
            if server.checkedHealthy.load(ordering: .relaxed), -streaks[index] >= config.unhealthy {
                server.setChecked(healthy: false)
                logger.warning("backend server unhealthy: no traffic until it passes its health checks", metadata: [
                    "backend": "\(backend.name)", "server": "\(server.address)", "checks_failed": "\(-streaks[index])",
                    "last_error": "\(outcome.detail)",
                ])
            } else if !server.checkedHealthy.load(ordering: .relaxed) {
                logger.debug("health check failed", metadata: ["backend": "\(backend.name)", "server": "\(server.address)", "error": "\(outcome.detail)"])
            }
        }
    }
}
