import Logging
import NIOCore
import NIOExtras
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The gateway's listening side: binds every listener, builds each connection's pipeline, and shuts down
/// gracefully (stop accepting, let in-flight requests finish up to `shutdown_timeout`, then close).
public final class GatewayServer: Service, @unchecked Sendable {
    private let runtime: GatewayRuntime
    private let group: any EventLoopGroup
    private let logger: Logger
    private let quiesce: ServerQuiescingHelper
    private var channels: [(name: String, channel: Channel)] = []
    private var started = false
    private var stopped = false

    public init(runtime: GatewayRuntime, group: any EventLoopGroup, logger: Logger) {
        self.runtime = runtime
        self.group = group
        self.logger = logger
        self.quiesce = ServerQuiescingHelper(group: group)
        PluginRegistry.shared.logger = logger
    }

    /// The bound address of each listener, by name (port 0 in the config is resolved here).
    public var boundAddresses: [String: SocketAddress] {
        Dictionary(channels.compactMap { entry in entry.channel.localAddress.map { (entry.name, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    /// Binds all listeners; on any failure, closes those already bound and throws naming the listener.
    public func start() async throws {
        guard !started else { return }
        started = true
        for listener in runtime.listeners {
            do {
                let channel = try await makeBootstrap(for: listener).bind(to: listener.address).get()
                channels.append((listener.name, channel))
                logger.info("listening", metadata: [
                    "listener": "\(listener.name)", "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                    "protocol": "\(listener.tls == nil ? "http" : "https")",
                    "client_auth": "\(listener.tls?.clientAuth.rawValue ?? "none")",
                ])
            } catch {
                for entry in channels { try? await entry.channel.close() }
                channels.removeAll()
                throw GatewayError(.bindFailed, "listener '\(listener.name)': cannot bind \(listener.address): \(error)")
            }
        }
    }

    /// Runs the started server under one ServiceGroup until SIGTERM/SIGINT (graceful) while SIGHUP makes
    /// plugins reopen their files. `main` and `demo` both end here.
    public func runUntilShutdownSignal(runtime: GatewayRuntime, logger: Logger) async throws {
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: self),
                    .init(service: ReopenOnHangupService(runtime: runtime, logger: logger), successTerminationBehavior: .ignore),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
            )
        )
        try await group.run()
    }

    public func run() async throws {
        try await start()
        // Wait for SIGTERM/SIGINT (through the ServiceGroup) or cancellation.
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops accepting, lets in-flight requests finish up to `shutdown_timeout`, then closes what is left.
    public func shutdown() async {
        guard !stopped else { return }
        stopped = true
        logger.info("shutting down", metadata: ["timeout": "\(runtime.shutdownTimeout)"])
        let loop = group.next()
        let drained = loop.makePromise(of: Void.self)
        let done = loop.makePromise(of: Bool.self)
        quiesce.initiateShutdown(promise: drained)
        // Both callbacks run on `loop`, so the flag needs no lock.
        var finished = false
        drained.futureResult.whenComplete { _ in
            if !finished { finished = true; done.succeed(true) }
        }
        let timeout = loop.scheduleTask(in: runtime.shutdownTimeout.timeAmount) {
            if !finished { finished = true; done.succeed(false) }
        }
        let clean = (try? await done.futureResult.get()) ?? false
        timeout.cancel()
        if !clean { logger.warning("shutdown timeout reached; closing remaining connections") }
        for backend in runtime.backends { backend.shutdown() }
        // Every connection is closed: no request can reach a plugin instance any more.
        runtime.destroyPlugins()
        logger.info("stopped")
    }

    private func makeBootstrap(for listener: CompiledListener) -> ServerBootstrap {
        let logger = self.logger
        let quiesce = self.quiesce
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Self.configureConnection(channel, listener: listener, logger: logger)
                }
            }
    }

    static func configureConnection(_ channel: Channel, listener: CompiledListener, logger: Logger) throws {
        let connection = ConnectionContext(
            listenerName: listener.name, isTLS: listener.tls != nil,
            remoteAddress: channel.remoteAddress, localAddress: channel.localAddress
        )
        let sync = channel.pipeline.syncOperations
        if let tls = listener.tls {
            let hello = TLSHelloHandler(tls: tls, connection: connection, logger: logger)
            try sync.addHandler(hello)
            try sync.addHandler(TLSHandshakeHandler(connection: connection, logger: logger, plugins: listener.plugins))
        } else {
            listener.plugins?.onConnection(connection)
        }
        let headGuard = RequestHeadGuard(limits: listener.limits)
        try sync.addHandler(headGuard)
        try sync.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try sync.addHandler(HTTPProxyHandler(listener: listener, connection: connection, headGuard: headGuard, logger: logger))
    }
}
