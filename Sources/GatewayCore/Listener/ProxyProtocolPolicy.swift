import NIOCore

/// A listener's `proxy_protocol`, compiled: whether a header is required, and which peers may send one.
package struct ProxyProtocolPolicy: Sendable {
    package var mode: ProxyProtocolConfig.Mode
    package var trusted: [AddressRange]

    package init(mode: ProxyProtocolConfig.Mode, trusted: [AddressRange]) {
        self.mode = mode
        self.trusted = trusted
    }

    /// Compiles `config`; every bad entry is reported under `path` (e.g. `listeners[0].proxy_protocol`).
    package static func compile(_ config: ProxyProtocolConfig, path: String, issues: ConfigIssueCollector) -> ProxyProtocolPolicy? {
        if config.trusted.isEmpty {
            issues.add("\(path).trusted", "must name the balancers whose headers are believed (CIDR ranges or addresses; 0.0.0.0/0 and ::/0 for any)")
        }
        var ranges: [AddressRange] = []
        for (index, text) in config.trusted.enumerated() {
            do {
                ranges.append(try AddressRange(parsing: text))
            } catch {
                issues.add("\(path).trusted[\(index)]", error.description)
            }
        }
        guard ranges.count == config.trusted.count, !ranges.isEmpty else { return nil }
        return ProxyProtocolPolicy(mode: config.mode, trusted: ranges)
    }

    package func trusts(_ peer: SocketAddress?) -> Bool {
        guard let peer else { return false }
        return trusted.contains { $0.contains(peer) }
    }
}

extension ProxyProtocolPolicy {
    /// What to do with a connection, given what its first bytes parse to and whether its peer is trusted.
    package enum Decision: Equatable, Sendable {
        /// Not enough bytes yet.
        case needMore
        /// Serve the connection from `addresses` (nil: the socket's own), after skipping `consumed` bytes.
        case proceed(source: SocketAddress?, destination: SocketAddress?, consumed: Int, outcome: ListenerMetrics.ProxyProtocolOutcome)
        /// Close it; `reason` is for the debug log.
        case close(ListenerMetrics.ProxyProtocolOutcome, reason: String)
    }

    /// The outcomes of the PROXY protocol, in one place (docs/configuration.md lists them):
    /// - a header from a trusted peer: its addresses (or the socket's, for LOCAL/UNKNOWN);
    /// - a header, even a broken one, from an untrusted peer: closed (`untrusted`);
    /// - a broken header from a trusted peer: closed (`malformed`);
    /// - no header: closed under `required` (`missing`), served with the socket's addresses under `optional`.
    package func decide(_ parse: ProxyProtocolHeader.Parse, peerTrusted: Bool) -> Decision {
        switch parse {
        case .needMore:
            return .needMore
        case .header(let header):
            guard peerTrusted else { return .close(.untrusted, reason: "a PROXY header from a peer outside proxy_protocol.trusted") }
            guard let source = header.source else {
                return .proceed(source: nil, destination: nil, consumed: header.length, outcome: .local)
            }
            return .proceed(source: source, destination: header.destination, consumed: header.length, outcome: header.version == .v1 ? .v1 : .v2)
        case .invalid(let reason):
            guard peerTrusted else { return .close(.untrusted, reason: "a PROXY header from a peer outside proxy_protocol.trusted (\(reason))") }
            return .close(.malformed, reason: reason)
        case .notProxy:
            guard mode == .optional else { return .close(.missing, reason: "the connection does not start with a PROXY header (proxy_protocol.mode: required)") }
            return .proceed(source: nil, destination: nil, consumed: 0, outcome: .absent)
        }
    }
}
