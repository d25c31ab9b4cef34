import NIOCore
import NIOTLS

/// On a listener whose `alpn` offers h2: waits for the TLS handshake and sets up the rest of the connection's
/// pipeline for the protocol it negotiated (HTTP/2 for `h2`, HTTP/1.1 otherwise), then leaves. NIOSSL reports
/// the handshake before it decodes any application data, so the first request's bytes find the new handlers.
package final class ALPNSwitch: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer

    private let configure: (_ alpn: String?, _ channel: Channel) throws -> Void

    package init(configure: @escaping (_ alpn: String?, _ channel: Channel) throws -> Void) {
        self.configure = configure
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let alpn) = event {
            do {
                try configure(alpn, context.channel)
            } catch {
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
