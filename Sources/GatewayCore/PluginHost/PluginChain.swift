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

    /// One entry's hook, read from its descriptor when the chain is built: trivial values only, so that running
    /// the chain retains and releases nothing per hook (the chain holds its entries for as long as it runs).
    private struct Hook: @unchecked Sendable {
        typealias Function = @convention(c) (UnsafeMutableRawPointer?, gw_handle) -> Int32
        /// The entry's place in the chain.
        let index: Int
        let function: Function
        let instance: UnsafeMutableRawPointer?
        let isBlocking: Bool
        unowned(unsafe) let entry: PluginInstance
    }

    /// An entry's on_complete, likewise.
    private struct CompleteHook: @unchecked Sendable {
        let function: @convention(c) (UnsafeMutableRawPointer?, gw_handle) -> Void
        let instance: UnsafeMutableRawPointer?
    }

    package let entries: [PluginInstance]
    private let connectionEntries: [PluginInstance]
    private let requestHooks: [Hook]
    private let responseHooks: [Hook]
    private let completeHooks: [CompleteHook]
    private let pool: NIOThreadPool?
    private var logger: Logger { PluginRegistry.shared.logger }

    package init(entries: [PluginInstance], pool: NIOThreadPool?) {
        self.entries = entries
        self.connectionEntries = entries.filter { $0.library.hasOnConnection }
        self.pool = pool
        func hooks(_ function: (gw_plugin_descriptor) -> Hook.Function?) -> [Hook] {
            entries.enumerated().compactMap { index, entry in
                function(entry.library.descriptor.pointee).map {
                    Hook(index: index, function: $0, instance: entry.rawInstance, isBlocking: entry.library.isBlocking, entry: entry)
                }
            }
        }
        requestHooks = hooks { $0.on_request_headers }
        responseHooks = hooks { $0.on_response_headers }
        completeHooks = entries.compactMap { entry in
            entry.library.descriptor.pointee.on_complete.map { CompleteHook(function: $0, instance: entry.rawInstance) }
        }
    }

    package var hasConnectionHooks: Bool { !connectionEntries.isEmpty }
    /// Some entry has on_response_headers (response heads must then be `HTTPResponseHead`s it can edit).
    package var hasResponseHooks: Bool { !responseHooks.isEmpty }

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

    /// How far a run of on_request_headers on the calling thread got (`runInline`).
    package enum Progress {
        /// Every hook ran, or one decided: the outcome.
        case finished(Outcome)
        /// The hook at this position blocks: `resume` runs it on the worker pool, and the rest after it.
        case blocking(at: Int)
        /// The request is over (the client went away while a blocking hook ran): no further hook runs.
        case abandoned
    }

    /// Runs on_request_headers along the chain; `completion` is called on `eventLoop`, inline when no plugin blocks.
    package func runRequestHeaders(_ request: PluginRequest, on eventLoop: any EventLoop, completion: @escaping (Outcome) -> Void) {
        step(request, from: 0, on: eventLoop, completion: completion)
    }

    /// Runs the request hooks from `requestHooks[start]` on, on this thread, until every one ran, one decided,
    /// or a blocking one is next. One thread-slot look-up for the run, and the request stays the running
    /// hook's target from the first hook to the last (no plugin code runs between them); each hook's views end
    /// with it (the arena is reset). No closure: the proxy takes the outcome of a chain without blocking
    /// plugins straight back, and makes the continuation only when a blocking hook needs one.
    package func runInline(_ request: PluginRequest, from start: Int = 0) -> Progress {
        guard request.phase == .request else { return .abandoned }
        let context = PluginCallContext.forThisThread
        let saved = context.enter(request.handle, request)
        defer {
            context.leave(saved)
            request.currentEntry = nil
        }
        var position = start
        while position < requestHooks.count {
            let hook = requestHooks[position]
            request.reached = hook.index + 1
            if hook.isBlocking, pool != nil { return .blocking(at: position) }
            request.currentEntry = hook.entry
            let code = hook.entry.stats.call { hook.function(hook.instance, request.handle) }
            context.arena.reset()
            if code != GW_CONTINUE || request.answeredBy != nil, let outcome = judge(code, entry: hook.entry, request: request) {
                return .finished(outcome)
            }
            position += 1
        }
        request.reached = entries.count
        return .finished(.proceed)
    }

    /// Runs the blocking hook at `position` (`Progress.blocking`) on the worker pool, then the rest of the
    /// chain; `completion` gets the outcome on `eventLoop`. When the request is over by then (the client went
    /// away), the blocking hook's own result or timeout is still judged and handed on (the proxy's state
    /// machine drops an answer for a request that is gone), and no hook after it runs.
    package func resume(_ request: PluginRequest, at position: Int, on eventLoop: any EventLoop, completion: @escaping (Outcome) -> Void) {
        guard let pool else { return step(request, from: position, on: eventLoop, completion: completion) }
        let entry = requestHooks[position].entry
        runBlocking(entry, request, pool: pool, on: eventLoop) { [self] code in
            switch self.judge(code, entry: entry, request: request) {
            case .some(let outcome): completion(outcome)
            case .none: self.step(request, from: position + 1, on: eventLoop, completion: completion)
            }
        }
    }

    private func step(_ request: PluginRequest, from start: Int, on eventLoop: any EventLoop, completion: @escaping (Outcome) -> Void) {
        switch runInline(request, from: start) {
        case .finished(let outcome): completion(outcome)
        case .blocking(let position): resume(request, at: position, on: eventLoop, completion: completion)
        case .abandoned: break
        }
    }

    /// nil: go on with the next entry.
    private func judge(_ code: Int32, entry: PluginInstance, request: PluginRequest) -> Outcome? {
        switch code {
        case GW_CONTINUE:
            // `respond` counts only with GW_STOP.
            if request.answeredBy != nil, request.answeredBy == entry.name {
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
        copy.currentEntry = entry
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
        guard !responseHooks.isEmpty else { return }
        let context = PluginCallContext.forThisThread
        let saved = context.enter(request.handle, request)
        defer {
            context.leave(saved)
            request.currentEntry = nil
        }
        for hook in responseHooks where hook.index < request.reached {
            request.currentEntry = hook.entry
            let code = hook.function(hook.instance, request.handle)
            context.arena.reset()
            if code < 0 {
                logger.error("plugin failed", metadata: [
                    "plugin": "\(hook.entry.name)", "listener": "\(hook.entry.listener)", "reason": "on_response_headers returned \(code)\(Self.statusName(code))",
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
        guard !completeHooks.isEmpty else { return }
        let context = PluginCallContext.forThisThread
        let saved = context.enter(request.handle, request)
        defer { context.leave(saved) }
        for hook in completeHooks {
            hook.function(hook.instance, request.handle)
            context.arena.reset()
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
