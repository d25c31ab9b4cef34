import NIOCore

/// What an open tunnel (a WebSocket after its 101) has carried, and when it last carried anything: the bytes
/// each way for on_complete (GW_ATTR_BYTES_RECEIVED / _SENT, so Audit's line for the tunnel) and the idle check.
package struct TunnelTraffic: Sendable {
    /// Client to backend.
    package private(set) var bytesUp: Int64 = 0
    /// Backend to client.
    package private(set) var bytesDown: Int64 = 0
    package private(set) var lastActivity: NIODeadline
    package let idleTimeout: TimeAmount

    package init(idleTimeout: TimeAmount, now: NIODeadline) {
        self.idleTimeout = idleTimeout
        self.lastActivity = now
    }

    package mutating func up(_ count: Int, now: NIODeadline) {
        bytesUp += Int64(count)
        lastActivity = now
    }

    package mutating func down(_ count: Int, now: NIODeadline) {
        bytesDown += Int64(count)
        lastActivity = now
    }

    /// When the idle timer next needs to look: nil when the tunnel has been idle for `idleTimeout` at `now`.
    package func nextCheck(now: NIODeadline) -> NIODeadline? {
        let deadline = lastActivity + idleTimeout
        return deadline <= now ? nil : deadline
    }
}
