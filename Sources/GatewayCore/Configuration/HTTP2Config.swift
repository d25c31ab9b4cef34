/// A listener's `http2` limits, for the connections that negotiate `h2` (listeners whose `alpn` offers it). The
/// protocol's own defences (swift-nio-http2's: RST_STREAM, control frame and stream error rates, CONTINUATION
/// runs, empty DATA runs) are on whatever these say; see docs/configuration.md, `listeners[].http2`.
public struct HTTP2Config: Codable, Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once on one connection. Each is one
    /// request, and one backend connection while it is proxied.
    public var maxConcurrentStreams = 100
    /// SETTINGS_INITIAL_WINDOW_SIZE and the window kept open per stream: request body bytes a client may send
    /// ahead on a stream before the gateway reads them.
    public var initialWindowSize = 65_535
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK table the client's encoder may use for the gateway's decoder.
    public var headerTableSize = 4_096
    /// Streams one connection may open in its life; then it is told to go away (GOAWAY) and closes when its open
    /// streams are done. Bounds what a client that opens and resets streams in a loop can make the gateway do.
    public var maxStreamsPerConnection = 10_000
    /// RST_STREAM frames a client may send per 30 s before the connection is closed (ENHANCE_YOUR_CALM).
    public var maxResetsPer30s = 200

    package enum CodingKeys: String, CodingKey {
        case maxConcurrentStreams = "max_concurrent_streams"
        case initialWindowSize = "initial_window_size"
        case headerTableSize = "header_table_size"
        case maxStreamsPerConnection = "max_streams_per_connection"
        case maxResetsPer30s = "max_resets_per_30s"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        maxConcurrentStreams = c.value(.maxConcurrentStreams, default: maxConcurrentStreams)
        initialWindowSize = c.value(.initialWindowSize, default: initialWindowSize)
        headerTableSize = c.value(.headerTableSize, default: headerTableSize)
        maxStreamsPerConnection = c.value(.maxStreamsPerConnection, default: maxStreamsPerConnection)
        maxResetsPer30s = c.value(.maxResetsPer30s, default: maxResetsPer30s)
    }
}
