/// A listener's `websocket` settings: whether an HTTP/1.1 `Upgrade: websocket` request is tunnelled to its
/// backend (after routing and the plugin chain, like any request), and how long an open tunnel may carry no byte
/// in either direction before both of its connections are closed.
public struct WebSocketConfig: Codable, Sendable {
    /// False: `Upgrade` is removed, as every other Upgrade token is, and the request goes on as plain HTTP.
    public var enabled = true
    /// An open tunnel with no byte in either direction for this long is closed.
    public var idleTimeout: ConfigDuration = .seconds(300)

    package enum CodingKeys: String, CodingKey {
        case enabled
        case idleTimeout = "idle_timeout"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        enabled = c.value(.enabled, default: enabled)
        idleTimeout = c.value(.idleTimeout, default: idleTimeout)
    }
}
