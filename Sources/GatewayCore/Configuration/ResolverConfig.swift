/// The top-level `resolver`: the DNS servers the gateway asks, itself, for the addresses of backend servers
/// named by host name. Without it the system resolver (`getaddrinfo`: /etc/hosts, then /etc/resolv.conf) is
/// asked, which reports no TTLs.
public struct ResolverConfig: Codable, Sendable {
    /// `IP:port` of each DNS server, asked in order until one answers.
    public var servers: [String]
    /// How long to wait for one server's answer before asking the next.
    public var timeout: ConfigDuration

    package enum CodingKeys: String, CodingKey {
        case servers, timeout
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        servers = c.required(.servers, StringOrList.self)?.values ?? []
        timeout = c.value(.timeout, default: .seconds(2))
    }
}

/// Which addresses of a backend host name become servers.
public enum DNSFamily: String, ConfigEnum, Sendable {
    /// IPv4 and IPv6 addresses alike.
    case all
    case ipv4
    case ipv6
}
