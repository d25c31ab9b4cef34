import Logging
import NIOCore
import NIOSSL

/// The first handler of an HTTPS connection. It reads the ClientHello (server name, offered ALPN and ciphers),
/// installs a `NIOSSLServerHandler` with the certificate for that name and a per-connection verification
/// callback, replays the bytes into it, notes the cipher suite from the outgoing ServerHello, and then leaves
/// the pipeline.
package final class TLSHelloHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// Tells the handshake handler to refuse the connection (the reason is in `connection.verification`).
    struct JA4Denied: Error {}

    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingClientHello(ByteBuffer?)
        case awaitingServerHello
        case done
    }

    private var state: State = .awaitingClientHello(nil)
    private let tls: ListenerTLS
    private let connection: ConnectionContext
    private let logger: Logger
    private let metrics: ListenerMetrics

    package init(tls: ListenerTLS, connection: ConnectionContext, logger: Logger, metrics: ListenerMetrics) {
        self.tls = tls
        self.connection = connection
        self.logger = logger
        self.metrics = metrics
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .awaitingClientHello(let pending) = state else {
            context.fireChannelRead(data)
            return
        }
        var incoming = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var pending {
            pending.writeBuffer(&incoming)
            buffer = pending
        } else {
            buffer = incoming
        }
        switch ClientHello.parse(buffer) {
        case .needMoreData:
            state = .awaitingClientHello(buffer)
        case .notTLS(let reason):
            state = .done
            logger.info("closing connection that did not start with a TLS ClientHello", metadata: [
                "client": "\(connection.remoteAddress.text)", "listener": "\(connection.listenerName)", "reason": "\(reason)",
            ])
            context.close(promise: nil)
        case .refused(let reason):
            state = .done
            metrics.handshakeFailed(.tlsError)
            metrics.console.handshakeRefused(connection, .init(.tlsError, "ClientHello refused: \(reason)"))
            logger.info("refusing a ClientHello", metadata: [
                "client": "\(connection.remoteAddress.text)", "listener": "\(connection.listenerName)", "reason": "\(reason)",
            ])
            context.close(promise: nil)
        case .complete(let hello):
            // JA4 and JA3 once per connection: for ja4_deny, the plugins' attributes and the debug log.
            let ja4 = JA4Fingerprint(hello).fingerprint
            connection.ja4 = ja4
            connection.ja3 = JA3Fingerprint(hello).fingerprint
            if logger.logLevel <= .debug {
                logger.debug("ClientHello", metadata: [
                    "client": "\(connection.remoteAddress.text)", "listener": "\(connection.listenerName)", "ja4": "\(ja4)",
                    "ja3": "\(connection.ja3 ?? "")", "sni": "\(hello.serverName ?? "")",
                ])
            }
            let refusal: HandshakeRejection? = if tls.ja4Deny.contains(ja4) {
                .init(.ja4Denied, "the client's JA4 fingerprint \(ja4) is in tls.ja4_deny")
            } else if !tls.ja4Allow.isEmpty, !tls.ja4Allow.contains(ja4) {
                .init(.ja4NotAllowed, "the client's JA4 fingerprint \(ja4) is not in tls.ja4_allow")
            } else {
                nil
            }
            if let refusal {
                // Refused by the handshake handler, as every handshake is: logged, counted, and shown to the
                // plugins' on_connection (Audit's handshake_rejected line).
                state = .done
                connection.serverName = hello.serverName
                connection.verification = .failed(refusal)
                context.fireErrorCaught(JA4Denied())
                return
            }
            state = .awaitingServerHello
            connection.serverName = hello.serverName
            connection.offeredCipherSuites = hello.cipherSuites
            let entry = tls.entry(forServerName: hello.serverName)
            connection.clientPolicy = entry.policy
            let sslContext = entry.context
            let handler: NIOSSLServerHandler
            if let verifier = tls.policies[entry.policy].verifier {
                let connection = self.connection
                let revocation = tls.revocation
                let logger = self.logger
                let metrics = self.metrics
                handler = NIOSSLServerHandler(context: sslContext) { certificates, promise in
                    // Runs on this channel's event loop, during the handshake.
                    let der: [[UInt8]]
                    do {
                        der = try certificates.map { try $0.toDERBytes() }
                    } catch {
                        connection.verification = .failed(.init(.malformed, "cannot encode presented certificate: \(error)"))
                        promise.succeed(.failed)
                        return
                    }
                    let (outcome, path) = verifier.verifyWithPath(der: der)
                    if verifier.hasCRLs { metrics.crlFileCheck(outcome) }
                    switch outcome {
                    case .verified(let identity):
                        connection.clientCertificate = identity
                        guard let revocation else {
                            connection.verification = .success
                            promise.succeed(.certificateVerified)
                            return
                        }
                        switch revocation.evaluate(path: path) {
                        case .decided(let verdict, let checks):
                            revocation.record(checks)
                            promise.succeed(Self.apply(verdict, revocation: revocation, connection: connection, logger: logger))
                        case .fetch:
                            // Fetched off the event loop; the handshake waits (within handshake_timeout).
                            let loop = promise.futureResult.eventLoop
                            let bound = NIOLoopBound(connection, eventLoop: loop)
                            Task {
                                let (verdict, checks) = await revocation.resolve(path: path)
                                loop.execute {
                                    revocation.record(checks)
                                    promise.succeed(Self.apply(verdict, revocation: revocation, connection: bound.value, logger: logger))
                                }
                            }
                        }
                    case .rejected(let rejection, let presented):
                        connection.clientCertificate = presented
                        connection.verification = .failed(rejection)
                        promise.succeed(.failed)
                    }
                }
            } else {
                handler = NIOSSLServerHandler(context: sslContext)
            }
            do {
                try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
            } catch {
                metrics.connectionSetupFailed(.tls)
                logger.error("closing connection: cannot install the TLS handler", metadata: [
                    "client": "\(connection.remoteAddress.text)", "listener": "\(connection.listenerName)", "error": "\(error)",
                ])
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(wrapInboundOut(buffer))
        }
    }

    /// Records what the online revocation check decided for a verified chain, and what the handshake does: an
    /// unknown status admits the client only under `revocation.unknown: allow` (logged all the same).
    package static func apply(_ verdict: RevocationChecker.Verdict, revocation: RevocationChecker, connection: ConnectionContext, logger: Logger)
        -> NIOSSLVerificationResult
    {
        switch verdict {
        case .good:
            connection.verification = .success
            return .certificateVerified
        case .revoked(let rejection):
            connection.verification = .failed(rejection)
            return .failed
        case .unavailable(let rejection):
            if revocation.admitsUnknown {
                logger.info("revocation status unknown; client admitted (revocation.unknown: allow)", metadata: [
                    "listener": "\(connection.listenerName)", "client": "\(connection.remoteAddress.text)", "detail": "\(rejection.detail)",
                ])
                connection.verification = .success
                return .certificateVerified
            }
            connection.verification = .failed(rejection)
            return .failed
        }
    }

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .awaitingServerHello = state else {
            context.write(data, promise: promise)
            return
        }
        state = .done
        connection.cipherSuite = ClientHello.serverHelloCipher(unwrapOutboundIn(data))
        context.write(data, promise: promise)
    }

    package func flush(context: ChannelHandlerContext) {
        context.flush()
        // Its work is done once the ServerHello is out: every later read and write of the connection skips it.
        if case .done = state {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }
}
