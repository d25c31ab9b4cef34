import NIOCore

extension SocketAddress {
    /// The address as operators write it, in every log line and error: `203.0.113.7:50412`, `[::1]:443`.
    package var text: String {
        guard let ip = ipAddress else { return "\(self)" }
        let host = self.protocol == .inet6 ? "[\(ip)]" : ip
        return port.map { "\(host):\($0)" } ?? host
    }
}

extension Optional where Wrapped == SocketAddress {
    /// `text`, or "unknown" for a channel that has no address (any more).
    package var text: String { self?.text ?? "unknown" }
}
