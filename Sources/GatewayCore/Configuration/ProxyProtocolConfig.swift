/// A listener's `proxy_protocol`: its connections come through a load balancer in TCP mode (an NLB, HAProxy,
/// a Kubernetes Service) that sends a PROXY protocol header (v1 or v2) with the real client's address.
public struct ProxyProtocolConfig: Codable, Sendable {
    public enum Mode: String, ConfigEnum, Sendable {
        /// Every connection starts with a header; connections from outside `trusted` are closed at accept.
        case required
        /// Connections from `trusted` peers may start with a header; others, and trusted peers without one,
        /// are served with the socket's addresses. A header from outside `trusted` closes the connection.
        case optional
    }

    public var mode: Mode
    /// The peers (the balancers) whose headers are believed: CIDR ranges or single addresses. Required: a
    /// header says who the client is, so only the balancer may send one.
    public var trusted: [String]

    package enum CodingKeys: String, CodingKey {
        case mode, trusted
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        mode = c.value(.mode, default: .required)
        trusted = c.required(.trusted, StringOrList.self)?.values ?? []
    }
}
