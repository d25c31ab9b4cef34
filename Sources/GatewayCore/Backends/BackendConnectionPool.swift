import NIOConcurrencyHelpers
import NIOCore

/// Idle keep-alive connections to one backend server, kept per event loop so that a request always reuses a
/// connection on its own client's loop (no cross-thread hops on the request path).
package final class BackendConnectionPool: Sendable {
    private let idle = NIOLockedValueBox<[ObjectIdentifier: [BackendConnection]]>([:])
    package let maxIdlePerEventLoop: Int

    package init(maxIdlePerEventLoop: Int) {
        self.maxIdlePerEventLoop = maxIdlePerEventLoop
    }

    /// An idle, still-open connection on `eventLoop`, if any.
    package func take(on eventLoop: any EventLoop) -> BackendConnection? {
        let key = ObjectIdentifier(eventLoop)
        while let connection = idle.withLockedValue({ $0[key]?.popLast() }) {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// Returns a connection whose last exchange ended cleanly; closes it when the pool is full.
    package func giveBack(_ connection: BackendConnection) {
        let key = ObjectIdentifier(connection.channel.eventLoop)
        let kept = idle.withLockedValue { pool -> Bool in
            var list = pool[key, default: []]
            guard list.count < maxIdlePerEventLoop else { return false }
            list.append(connection)
            pool[key] = list
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    /// Forgets a connection that closed while idle.
    package func remove(_ connection: BackendConnection) {
        let key = ObjectIdentifier(connection.channel.eventLoop)
        idle.withLockedValue { pool in
            pool[key]?.removeAll { $0 === connection }
        }
    }

    package func closeAll() {
        let all = idle.withLockedValue { pool -> [BackendConnection] in
            defer { pool.removeAll() }
            return pool.values.flatMap { $0 }
        }
        for connection in all { connection.channel.close(promise: nil) }
    }
}
