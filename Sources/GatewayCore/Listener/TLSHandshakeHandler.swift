import Logging
import NIOCore
import NIOSSL
import NIOTLS

/// Completes the connection's identity when the handshake succeeds, and logs a refused handshake with the
/// client address, the listener, what the client presented and the precise reason.
package final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = NIOAny

    private let connection: ConnectionContext
    private let logger: Logger
    /// The listener's plugins: their on_connection hooks see every handshake, refused ones included.
    private let plugins: PluginChain?
    private let metrics: ListenerMetrics
    private let tls: ListenerTLS
    /// The whole handshake, from the connection's start, must complete within this (`handshake_timeout`).
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    package init(connection: ConnectionContext, logger: Logger, plugins: PluginChain?, metrics: ListenerMetrics, tls: ListenerTLS, timeout: TimeAmount) {
        self.tls = tls
        self.connection = connection
        self.logger = logger
        self.plugins = plugins
        self.metrics = metrics
        self.timeout = timeout
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: timeout) { [self] in
            guard !connection.handshakeCompleted, context.channel.isActive else { return }
            refuse(.init(.handshakeTimeout, "no complete TLS handshake within handshake_timeout (\(ConfigDuration(nanoseconds: timeout.nanoseconds)))"), context: context)
        }
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let alpn) = event {
            if let rejection = verifyResumedSession(context: context) {
                refuse(rejection, context: context)
                return
            }
            connection.handshakeCompleted = true
            metrics.handshakesSucceeded.increment()
            connection.negotiatedALPN = alpn
            connection.tlsVersion = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).tlsVersion
            if logger.logLevel <= .debug {
                logger.debug("TLS handshake completed", metadata: metadata(extra: [
                    "tls_version": "\(connection.tlsVersionName ?? "?")", "cipher": "\(connection.cipherName ?? "?")",
                ]))
            }
            plugins?.onConnection(connection)
            if case .success = connection.verification { metrics.console.clientVerified(connection) }
            // Passed on before this handler leaves (a removed handler's context fires nothing further): an
            // `ALPNSwitch` sets up the connection's protocol on it.
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !connection.handshakeCompleted {
            refuse(Self.rejection(for: error, connection: connection), context: context)
            return
        }
        context.fireErrorCaught(error)
    }

    private func refuse(_ rejection: HandshakeRejection, context: ChannelHandlerContext) {
        metrics.handshakeFailed(rejection.code)
        var extra: Logger.Metadata = ["reason": "\(rejection.code)", "detail": "\(rejection.detail)"]
        if let presented = connection.clientCertificate {
            extra["subject"] = "\(presented.subject)"
            extra["issuer"] = "\(presented.issuer)"
            extra["serial"] = "\(presented.serialHex)"
        }
        logger.warning("TLS handshake rejected", metadata: metadata(extra: extra))
        if case .failed = connection.verification {} else { connection.verification = .failed(rejection) }
        metrics.console.handshakeRefused(connection, rejection)
        plugins?.onConnection(connection)
        context.close(promise: nil)
    }

    /// A resumed session skips the verification callback: verify its client certificate here (fail closed).
    /// Returns the reason to refuse the connection, if any. Under `optional`, a certificate that no longer
    /// verifies is recorded as failed (as in a full handshake) and the connection goes on.
    private func verifyResumedSession(context: ChannelHandlerContext) -> HandshakeRejection? {
        // The policy of the certificate the server name selected (a session resumes with its own context's keys).
        let policy = tls.policies[connection.clientPolicy]
        guard policy.clientAuth != .none, case .none = connection.verification, let verifier = policy.verifier else { return nil }
        let leaf = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self).peerCertificate
        guard let leaf, let der = try? leaf.toDERBytes() else {
            return policy.clientAuth == .required ? HandshakeRejection(.noCertificate, "resumed session without a client certificate") : nil
        }
        let (outcome, path) = verifier.verifyResumed(leafDER: der)
        switch outcome {
        case .verified(let identity):
            connection.clientCertificate = identity
            guard let revocation = tls.revocation else {
                connection.verification = .success
                return nil
            }
            // A resumption cannot wait for a fetch here: it is decided from what is cached, and what is missing
            // is fetched in the background for the next handshake (the unknown policy decides this one).
            let verdict: RevocationChecker.Verdict
            switch revocation.evaluate(path: path) {
            case .decided(let decided, let checks):
                revocation.record(checks)
                verdict = decided
            case .fetch:
                Task { _ = await revocation.resolve(path: path) }
                verdict = .unavailable(.init(.revocationUnavailable, "resumed session of '\(identity.subject)': its revocation status is not cached (being fetched)"))
            }
            if TLSHelloHandler.apply(verdict, revocation: revocation, connection: connection, logger: logger) == .failed,
                case .failed(let rejection) = connection.verification
            {
                return policy.clientAuth == .required ? rejection : nil
            }
            return nil
        case .rejected(let rejection, let presented):
            connection.clientCertificate = presented
            connection.verification = .failed(rejection)
            return policy.clientAuth == .required ? rejection : nil
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        context.fireChannelInactive()
    }

    private func metadata(extra: Logger.Metadata) -> Logger.Metadata {
        var m: Logger.Metadata = [
            "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)",
            "connection_id": "\(connection.id)",
        ]
        if let sni = connection.serverName { m["sni"] = "\(sni)" }
        m.merge(extra) { $1 }
        return m
    }

    /// Maps what went wrong to a rejection: our verifier's reason when it ran, otherwise BoringSSL's error.
    package static func rejection(for error: any Error, connection: ConnectionContext) -> HandshakeRejection {
        if case .failed(let rejection) = connection.verification { return rejection }
        let text = "\(error)"
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") {
            return .init(.noCertificate, "client presented no certificate, and this listener requires one")
        }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("WRONG_VERSION") || text.contains("PROTOCOL_VERSION") {
            return .init(.protocolVersion, "client offered no TLS version this listener accepts: \(text)")
        }
        if error is NIOSSLError, case .uncleanShutdown = error as! NIOSSLError {
            return .init(.tlsError, "connection closed during the handshake")
        }
        if let channelError = error as? ChannelError, channelError == .eof {
            return .init(.tlsError, "connection closed during the handshake")
        }
        return .init(.tlsError, text)
    }
}
