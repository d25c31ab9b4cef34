import Logging
import NIOCore
import NIOPosix
import PluginAPI

/// The plugins of one listener, run in order. Plain hooks run inline on the event loop; hooks of plugins
/// flagged GW_PLUGIN_FLAG_BLOCKING run on a bounded worker pool against a copy of the request, with the
/// entry's timeout, and their changes are applied back on the event loop only if they finish in time.
package final class PluginChain: Sendable {
    package enum Outcome: Sendable {
        /// Go on to the backend (with whatever the plugins changed).
        case proceed
        /// A plugin answered; `request.answer` holds the response.
        case answered
        /// A plugin failed under on_error: deny.
        case failed(plugin: String, reason: String)
    }

    package let entries: [PluginInstance]
    private let connectionEntries: [PluginInstance]
    private let pool: NIOThreadPool?
    private var logger: Logger { PluginRegistry.shared.logger }

    package init(entries: [PluginInstance], pool: NIOThreadPool?) {
        self.entries = entries
        self.connectionEntries = entries.filter { $0.library.hasOnConnection }
        self.pool = pool
    }

    package var hasConnectionHooks: Bool { !connectionEntries.isEmpty }

    /// After the handshake (also a failed one). Read-only.
    package func onConnection(_ connection: ConnectionContext) {
        guard !connectionEntries.isEmpty else { return }
        let target = PluginConnectionTarget(connection: connection)
        let handle = connection.id | (1 << 63)
        for entry in connectionEntries {
            PluginCallContext.with(handle, target) { entry.onConnection(handle) }
            target.endCall()
        }
    }

    /// Runs on_request_headers along the chain; `completion` is called on `eventLoop`, inline when no plugin blocks.
    package func runRequestHeaders(_ request: PluginRequest, on eventLoop: any EventLoop, completion: @escaping (Outcome) -> Void) {
        step(request, from: 0, on: eventLoop, completion: completion)
    }

    private func step(_ request: PluginRequest, from start: Int, on eventLoop: any EventLoop, completion: @escaping (Outcome) -> Void) {
        var index = start
        // The client may have gone away while a blocking hook ran: the request is complete, run nothing more.
        guard request.phase == .request else { return }
        while index < entries.count {
            let entry = entries[index]
            request.reached = index + 1
            guard entry.library.hasOnRequestHeaders else {
                index += 1
                continue
            }
            if entry.library.isBlocking, let pool {
                runBlocking(entry, request, pool: pool, on: eventLoop) { [self] code in
                    switch self.judge(code, entry: entry, request: request) {
                    case .some(let outcome): completion(outcome)
                    case .none: self.step(request, from: index + 1, on: eventLoop, completion: completion)
                    }
                }
                return
            }
            request.currentPlugin = entry.name
            let code = entry.stats.call { PluginCallContext.with(request.handle, request) { entry.onRequestHeaders(request.handle) } }
            request.endCall()
            if let outcome = judge(code, entry: entry, request: request) { return completion(outcome) }
            index += 1
        }
        completion(.proceed)
    }

    /// nil: go on with the next entry.
    private func judge(_ code: Int32, entry: PluginInstance, request: PluginRequest) -> Outcome? {
        switch code {
        case GW_CONTINUE:
            // `respond` counts only with GW_STOP.
            if request.answer != nil, request.answeredBy == entry.name {
                request.answer = nil
                request.answeredBy = nil
            }
            return nil
        case GW_STOP where request.answer != nil:
            if let answer = request.answer, answer.status >= 400 { entry.stats.denied() }
            return .answered
        default:
            let reason = code == GW_STOP ? "returned GW_STOP without calling respond" : "on_request_headers returned \(code)\(Self.statusName(code))"
            logger.error("plugin failed", metadata: [
                "plugin": "\(entry.name)", "listener": "\(entry.listener)", "reason": "\(reason)", "on_error": "\(entry.onError.rawValue)",
            ])
            request.answer = nil
            request.answeredBy = nil
            entry.stats.failed()
            if entry.onError == .continue { return nil }
            return .failed(plugin: entry.name, reason: reason)
        }
    }

    private func runBlocking(_ entry: PluginInstance, _ request: PluginRequest, pool: NIOThreadPool, on eventLoop: any EventLoop, done: @escaping (Int32) -> Void) {
        let copy = request.copyForBlockingCall()
        copy.currentPlugin = entry.name
        // The copy belongs to this blocking call alone: the event loop reads it back only once the call has
        // finished (adopt), and after a timeout never again.
        let transfer = Handoff(copy)  // the worker owns it while the call runs, then the event loop
        let result = pool.runIfActive(eventLoop: eventLoop) {
            let copy = transfer.value
            let code = entry.stats.call { PluginCallContext.with(copy.handle, copy) { entry.onRequestHeaders(copy.handle) } }
            copy.endCall()
            return code
        }
        // From here on, everything runs on `eventLoop` (runBlocking is called there).
        let loop = eventLoop.assumeIsolatedUnsafeUnchecked()
        var finished = false
        let timer = loop.scheduleTask(in: entry.timeout) {
            guard !finished else { return }
            finished = true
            self.logger.error("plugin timed out", metadata: ["plugin": "\(entry.name)", "listener": "\(entry.listener)", "timeout": "\(entry.timeout)"])
            done(GW_FAILED)
        }
        result.assumeIsolatedUnsafeUnchecked().whenComplete { outcome in
            guard !finished else { return }
            finished = true
            timer.cancel()
            switch outcome {
            case .success(let code):
                request.adopt(copy)
                done(code)
            case .failure:
                done(GW_FAILED)
            }
        }
    }

    /// Runs on_response_headers of the entries the request reached, inline. Errors are logged; the response
    /// goes on (it is already decided).
    package func runResponseHeaders(_ request: PluginRequest) {
        request.phase = .response
        for entry in entries.prefix(request.reached) where entry.library.hasOnResponseHeaders {
            request.currentPlugin = entry.name
            let code = PluginCallContext.with(request.handle, request) { entry.onResponseHeaders(request.handle) }
            request.endCall()
            if code < 0 {
                logger.error("plugin failed", metadata: [
                    "plugin": "\(entry.name)", "listener": "\(entry.listener)", "reason": "on_response_headers returned \(code)\(Self.statusName(code))",
                ])
            }
        }
    }

    /// Runs on_complete of every entry, also those the request did not reach because an earlier one answered
    /// or failed: the log phase, so that where an observer (Audit) stands in the chain never decides what it
    /// sees.
    package func runComplete(_ request: PluginRequest) {
        request.phase = .complete
        request.finished = request.finished ?? .now()
        for entry in entries where entry.library.hasOnComplete {
            PluginCallContext.with(request.handle, request) { entry.onComplete(request.handle) }
            request.endCall()
        }
    }

    /// Asks every instance to reopen its files (SIGHUP).
    package func reopen() {
        for entry in entries { entry.onReopen() }
    }

    /// Waits for running blocking hooks, then destroys the instances.
    package func destroy() {
        try? pool?.syncShutdownGracefully()
        for entry in entries { entry.destroy() }
    }

    package static func statusName(_ code: Int32) -> String {
        switch code {
        case GW_FAILED: return " (GW_FAILED)"
        case GW_ERR_NOT_FOUND: return " (GW_ERR_NOT_FOUND)"
        case GW_ERR_STALE_HANDLE: return " (GW_ERR_STALE_HANDLE)"
        case GW_ERR_INVALID_HEADER: return " (GW_ERR_INVALID_HEADER)"
        case GW_ERR_WRONG_PHASE: return " (GW_ERR_WRONG_PHASE)"
        case GW_ERR_INTERNAL: return " (GW_ERR_INTERNAL)"
        default: return ""
        }
    }
}
