import NIOCore

/// Finds the addresses of a backend server's host name. Two kinds: the system's (`getaddrinfo`, no TTLs) and
/// the gateway's own DNS client for the configured `resolver` servers (TTLs honoured).
package protocol HostResolver: Sendable {
    /// The addresses of `host` of `family`, completed on `eventLoop`; fails when there are none.
    func resolve(_ host: String, family: DNSFamily, on eventLoop: any EventLoop) -> EventLoopFuture<ResolvedHost>
}

/// What a host name resolved to: addresses as text (`192.0.2.1`, `2001:db8::1`), the time they may be kept
/// (nil when the resolver does not say), and the families whose query failed while another answered (their
/// last known addresses stay).
package struct ResolvedHost: Equatable, Sendable {
    package var addresses: [String]
    package var ttl: TimeAmount?
    package var failedFamilies: Set<DNSFamily>

    package init(addresses: [String], ttl: TimeAmount?, failedFamilies: Set<DNSFamily> = []) {
        self.addresses = addresses
        self.ttl = ttl
        self.failedFamilies = failedFamilies
    }
}

/// Why a host name gave no address.
package struct HostResolutionError: Error, CustomStringConvertible {
    package var host: String
    package var reason: String

    package init(host: String, reason: String) {
        self.host = host
        self.reason = reason
    }

    package var description: String { "resolving '\(host)': \(reason)" }
}
