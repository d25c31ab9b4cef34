import Atomics
import NIOCore

/// Idle keep-alive connections to one backend server, kept per event loop so that a request always reuses a
/// connection on its own client's loop. Each loop's list is bound to that loop and touched only there: the
/// request path takes no lock (one atomic load finds the lists, which are set once, before the first request).
package final class BackendConnectionPool: Sendable {
    /// The idle lists, one per event loop of the server's group.
    /// A list searched in order, not a dictionary: there is one loop per core, and hashing the loop's identity
    /// twice per request (take, give back) cost ~540 instructions (`bench/run profile`).
    private final class Lists: Sendable {
        let loops: [ObjectIdentifier]
        let lists: [NIOLoopBoundBox<[BackendConnection]>]

        init(eventLoops: [any EventLoop]) {
            var loops: [ObjectIdentifier] = []
            var lists: [NIOLoopBoundBox<[BackendConnection]>] = []
            for loop in eventLoops where !loops.contains(ObjectIdentifier(loop)) {
                loops.append(ObjectIdentifier(loop))
                lists.append(NIOLoopBoundBox.makeBoxSendingValue([], as: [BackendConnection].self, eventLoop: loop))
            }
            self.loops = loops
            self.lists = lists
        }

        func list(on eventLoop: any EventLoop) -> NIOLoopBoundBox<[BackendConnection]>? {
            let wanted = ObjectIdentifier(eventLoop)
            for index in loops.indices where loops[index] == wanted { return lists[index] }
            return nil
        }
    }

    private let lists = ManagedAtomicLazyReference<Lists>()
    /// Set by `closeAll`: the server left (or its generation ended), so connections coming back are closed.
    private let closed = ManagedAtomic<Bool>(false)
    package let maxIdlePerEventLoop: Int

    package init(maxIdlePerEventLoop: Int) {
        self.maxIdlePerEventLoop = maxIdlePerEventLoop
    }

    /// Creates the per-loop lists for the loops that will serve requests. Called once, before the runtime
    /// serves its first connection; later calls keep the first set. A loop outside the set never pools.
    package func prepare(eventLoops: [any EventLoop]) {
        _ = lists.storeIfNilThenLoad(Lists(eventLoops: eventLoops))
    }

    private func list(on eventLoop: any EventLoop) -> NIOLoopBoundBox<[BackendConnection]>? {
        lists.load()?.list(on: eventLoop)
    }

    /// An idle, still-open connection on `eventLoop` (the caller's loop), if any.
    package func take(on eventLoop: any EventLoop) -> BackendConnection? {
        guard let list = list(on: eventLoop) else { return nil }
        return list.withValue { idle in
            while let connection = idle.popLast() {
                if connection.channel.isActive { return connection }
            }
            return nil
        }
    }

    /// Returns a connection whose last exchange ended cleanly (on its own loop); closes it when the pool is
    /// full.
    package func giveBack(_ connection: BackendConnection) {
        let kept = closed.load(ordering: .relaxed) ? false : list(on: connection.channel.eventLoop)?.withValue { idle in
            guard idle.count < maxIdlePerEventLoop else { return false }
            idle.append(connection)
            return true
        }
        if kept != true { connection.channel.close(promise: nil) }
    }

    /// Forgets a connection that closed while idle (on its own loop).
    package func remove(_ connection: BackendConnection) {
        guard let list = list(on: connection.channel.eventLoop) else { return }
        list.value.removeAll { $0 === connection }
    }

    /// Closes every idle connection, each on its own loop, and every connection given back later; callable
    /// from any thread.
    package func closeAll() {
        closed.store(true, ordering: .relaxed)
        guard let lists = lists.load() else { return }
        for list in lists.lists {
            list.eventLoop.execute {
                let idle = list.withValue { idle in defer { idle.removeAll() }; return idle }
                for connection in idle { connection.channel.close(promise: nil) }
            }
        }
    }
}
