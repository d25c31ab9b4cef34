/// One entry of a listener's plugin chain.
public struct PluginEntryConfig: Codable, Sendable {
    /// A file name looked up in `plugin_paths`, or a path (relative to the config file) when it contains '/'.
    public var library: String
    /// Any YAML, handed to the plugin's `create` as JSON text.
    package var config: JSONValue?
    package var onError: PluginInstance.OnError
    public var timeoutMs: Int

    package enum CodingKeys: String, CodingKey {
        case library, config
        case onError = "on_error"
        case timeoutMs = "timeout_ms"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        library = c.required(.library) ?? ""
        config = c.optional(.config)
        onError = c.value(.onError, default: .deny)
        timeoutMs = c.value(.timeoutMs, default: 1000)
    }
}
