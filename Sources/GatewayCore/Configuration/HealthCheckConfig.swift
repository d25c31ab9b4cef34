/// Active health checking of a backend's servers: every `interval`, `GET path` on each server (over the
/// backend's own protocol and TLS settings); `unhealthy` failures in a row take a server out of rotation and
/// `healthy` successes in a row bring it back. A 2xx or 3xx answer within `timeout` is a success.
public struct HealthCheckConfig: Codable, Sendable {
    public var path: String
    public var interval: ConfigDuration
    public var timeout: ConfigDuration
    public var healthy: Int
    public var unhealthy: Int
    /// The Host header of the probe; the server's address when absent.
    public var host: String?

    package enum CodingKeys: String, CodingKey { case path, interval, timeout, healthy, unhealthy, host }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        path = c.value(.path, default: "/healthz")
        interval = c.value(.interval, default: .seconds(5))
        timeout = c.value(.timeout, default: .seconds(1))
        healthy = c.value(.healthy, default: 2)
        unhealthy = c.value(.unhealthy, default: 3)
        host = c.optional(.host)
    }
}

/// Passive ejection: after `consecutive_failures` failed connection attempts in a row, a server receives no
/// traffic for `eject_for`; then it receives traffic again (and `consecutive_failures` more failures eject it
/// again).
public struct PassiveHealthConfig: Codable, Sendable {
    public var consecutiveFailures: Int
    public var ejectFor: ConfigDuration

    package enum CodingKeys: String, CodingKey {
        case consecutiveFailures = "consecutive_failures"
        case ejectFor = "eject_for"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        consecutiveFailures = c.value(.consecutiveFailures, default: 5)
        ejectFor = c.value(.ejectFor, default: .seconds(30))
    }
}
