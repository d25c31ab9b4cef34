import Foundation
import NIOCore

/// The compiled configuration: everything the request path needs, built and validated once.
public final class GatewayRuntime: Sendable {
    let listeners: [CompiledListener]
    let backends: [BackendGroup]
    public let shutdownTimeout: ConfigDuration

    init(listeners: [CompiledListener], backends: [BackendGroup], shutdownTimeout: ConfigDuration) {
        self.listeners = listeners
        self.backends = backends
        self.shutdownTimeout = shutdownTimeout
    }

    /// Asks every plugin instance to reopen its files (SIGHUP, after log rotation).
    public func reopenPlugins() {
        for listener in listeners { listener.plugins?.reopen() }
    }

    /// Destroys every plugin instance; called once no request can reach them any more.
    public func destroyPlugins() {
        for listener in listeners { listener.plugins?.destroy() }
    }

    /// Loads, validates and compiles a configuration file; throws `ConfigValidationError` naming every problem.
    public static func load(configPath: String) throws -> GatewayRuntime {
        let config = try ConfigLoader.load(path: configPath)
        let base = URL(fileURLWithPath: configPath).deletingLastPathComponent().path
        return try RuntimeCompiler(baseDirectory: base, source: configPath).compile(config)
    }
}
