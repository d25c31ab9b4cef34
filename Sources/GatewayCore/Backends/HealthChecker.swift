import Logging
import NIOCore

/// Runs a backend group's active health checks on one event loop: every `interval`, one probe per server;
/// `unhealthy` failures in a row take a server out of rotation, `healthy` successes in a row put it back.
/// Servers start in rotation (the first probe runs at once). All state lives on `eventLoop`, in a box bound
/// to it.
package final class HealthChecker: Sendable {
    private struct State {
        var task: RepeatedTask?
        var stopped = false
        /// Per server: successes (positive) or failures (negative) in a row. The server is held, so that its
        /// identifier cannot be reused by a new server while the entry exists.
        var streaks: [ObjectIdentifier: (server: BackendServer, streak: Int)] = [:]
    }

    private let backend: BackendGroup
    private let config: HealthCheckConfig
    private let eventLoop: any EventLoop
    private let logger: Logger
    private let state: NIOLoopBoundBox<State>

    package init(backend: BackendGroup, config: HealthCheckConfig, eventLoop: any EventLoop, logger: Logger) {
        self.backend = backend
        self.config = config
        self.eventLoop = eventLoop
        self.logger = logger
        self.state = .makeBoxSendingValue(State(), eventLoop: eventLoop)
    }

    package func start() {
        eventLoop.execute { [self] in
            guard !state.value.stopped, state.value.task == nil else { return }
            state.value.task = eventLoop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: config.interval.timeAmount) { [self] _ in
                self.round()
            }
        }
    }

    package func stop() {
        eventLoop.execute { [self] in
            state.value.stopped = true
            state.value.task?.cancel()
            state.value.task = nil
        }
    }

    /// Probes every server once (the servers of the moment: DNS may change them); the next round is scheduled
    /// `interval` after this one finished.
    private func round() -> EventLoopFuture<Void> {
        let servers = backend.servers
        state.withValue { state in
            state.streaks = state.streaks.filter { key, _ in servers.contains { ObjectIdentifier($0) == key } }
        }
        let probes = servers.map { server in
            HealthProbe.run(backend: backend, server: server, config: config, on: eventLoop).map { outcome in
                self.record(outcome, server: server)
            }
        }
        return EventLoopFuture.andAllComplete(probes, on: eventLoop)
    }

    private func record(_ outcome: HealthProbe.Outcome, server: BackendServer) {
        guard !state.value.stopped else { return }
        let streak = state.withValue { state in
            let previous = state.streaks[ObjectIdentifier(server)]?.streak ?? 0
            let streak = outcome.healthy ? max(previous, 0) + 1 : min(previous, 0) - 1
            state.streaks[ObjectIdentifier(server)] = (server, streak)
            return streak
        }
        if outcome.healthy {
            if !server.checkedHealthy.load(ordering: .relaxed), streak >= config.healthy {
                server.setChecked(healthy: true)
                logger.notice("backend server healthy again", metadata: [
                    "backend": "\(backend.name)", "server": "\(server.address)", "checks_passed": "\(streak)",
                ])
            }
        } else {
            if server.checkedHealthy.load(ordering: .relaxed), -streak >= config.unhealthy {
                server.setChecked(healthy: false)
                logger.warning("backend server unhealthy: no traffic until it passes its health checks", metadata: [
                    "backend": "\(backend.name)", "server": "\(server.address)", "checks_failed": "\(-streak)",
                    "last_error": "\(outcome.detail)",
                ])
            } else if !server.checkedHealthy.load(ordering: .relaxed) {
                logger.debug("health check failed", metadata: ["backend": "\(backend.name)", "server": "\(server.address)", "error": "\(outcome.detail)"])
            }
        }
    }
}
