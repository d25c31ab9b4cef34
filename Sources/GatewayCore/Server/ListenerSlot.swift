import NIOConcurrencyHelpers
import NIOCore
import NIOExtras

/// One bound listening socket and the configuration generation its new connections start on. A reload
/// swaps the generation; connections already accepted keep the one they started with.
package final class ListenerSlot: Sendable {
    package let name: String
    package let address: SocketAddress
    private let state: NIOLockedValueBox<(listener: CompiledListener, runtime: GatewayRuntime)?>
    private let bound = NIOLockedValueBox<(any Channel)?>(nil)
    /// Tracks this socket's connections for a graceful close (its own helper: one helper serves one socket).
    package let quiesce: ServerQuiescingHelper
    /// This socket's open connections against max_connections and max_connections_per_ip.
    package let limiter = ConnectionLimiter()

    package init(listener: CompiledListener, runtime: GatewayRuntime, group: any EventLoopGroup) {
        self.quiesce = ServerQuiescingHelper(group: group)
        self.name = listener.name
        self.address = listener.address
        self.state = .init((listener, runtime))
    }

    package var channel: (any Channel)? {
        get { bound.withLockedValue { $0 } }
        set { bound.withLockedValue { $0 = newValue } }
    }

    /// The listener and generation for a connection being accepted now, registered with that generation;
    /// nil once the listener was removed by a reload.
    package func acquire() -> (listener: CompiledListener, runtime: GatewayRuntime)? {
        while true {
            guard let current = state.withLockedValue({ $0 }) else { return nil }
            if current.runtime.connectionOpened() { return current }
            // Retired between the read and the registration: the swap already happened, read again.
            if state.withLockedValue({ $0?.runtime === current.runtime }) { return nil }
        }
    }

    /// New connections are still accepted (the listener was not removed) by a generation that is not draining
    /// for shutdown: a connection of a retired generation may move on to it rather than close.
    package var acceptsOnLiveGeneration: Bool { state.withLockedValue { $0.map { !$0.runtime.isDraining } ?? false } }

    package func swap(to listener: CompiledListener, runtime: GatewayRuntime) {
        state.withLockedValue { $0 = (listener, runtime) }
    }

    /// Stops accepting and lets this socket's connections finish their current request; the future completes
    /// once every one of them closed.
    package func drain(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        state.withLockedValue { $0 = nil }
        let promise = eventLoop.makePromise(of: Void.self)
        if channel == nil { promise.succeed(()) } else { quiesce.initiateShutdown(promise: promise) }
        return promise.futureResult
    }
}
