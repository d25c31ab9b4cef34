import NIOCore

/// Put in front of `HTTPProxyHandler` when a WebSocket tunnel opens: it hands every byte the client sends to the
/// tunnel (`HTTPProxyHandler.tunnelUp`), so the proxy handler's `channelRead` remains the request path alone
/// (no tunnel check on every keep-alive request). Other inbound events pass on.
package final class TunnelReadTap: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    private let proxy: HTTPProxyHandler

    package init(_ proxy: HTTPProxyHandler) {
        self.proxy = proxy
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        proxy.tunnelUp(unwrapInboundIn(data))
    }
}
