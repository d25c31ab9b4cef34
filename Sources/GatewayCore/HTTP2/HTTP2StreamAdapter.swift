import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The first handler of an HTTP/2 stream's pipeline, in front of its `HTTPProxyHandler`: the stream's frames
/// become the request parts the HTTP/1 parser would hand over (`HTTPProxyHandler.streamPart`), so every stream
/// runs the listener's validation, routing, plugin chain and `ProxyStateMachine` as an HTTP/1.1 request does,
/// and the proxy handler's response parts become HEADERS and DATA frames.
///
/// The request head is built from the HPACK fields directly (NIO's HTTP/2-to-HTTP/1 codec would make it
/// HTTP/2.0, which the validator refuses, and does not check Host against `:authority`): version 1.1 inside, Host
/// from `:authority` when the client sent none (both and different: 400), cookies joined (RFC 9113 8.2.3), and a
/// body without a length marked chunked (as the codec does), which the request path and the upstream head
/// already handle. swift-nio-http2 has refused connection-specific fields (Connection, Upgrade,
/// Transfer-Encoding, ...), CR, LF and NUL already. Request trailers end the body and are not forwarded.
package final class HTTP2StreamAdapter: ChannelDuplexHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTP2Frame.FramePayload
    package typealias OutboundIn = HTTPServerResponsePart
    package typealias OutboundOut = HTTP2Frame.FramePayload

    private let proxy: HTTPProxyHandler
    private let maxHeaderBytes: Int
    private let maxHeaderCount: Int
    private var headReceived = false
    private var requestEnded = false
    /// The response answers HEAD, or its status has no body: DATA is not sent.
    private var suppressBody = false
    private var isHEAD = false

    package init(proxy: HTTPProxyHandler, limits: HTTPLimitsConfig) {
        self.proxy = proxy
        self.maxHeaderBytes = limits.maxHeaderBytes
        self.maxHeaderCount = limits.maxHeaderCount
    }

    // MARK: inbound

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if headReceived {
                // Trailers: they end the body (not forwarded: the backend is HTTP/1.1 without a trailer path here).
                if !requestEnded { end() }
                return
            }
            headReceived = true
            switch Self.requestHead(headers.headers, endStream: headers.endStream, maxBytes: maxHeaderBytes, maxCount: maxHeaderCount) {
            case .failure(let refusal):
                requestEnded = true
                isHEAD = headers.headers.first(name: ":method") == "HEAD"
                refuse(refusal, endStream: headers.endStream, context: context)
            case .success(let head):
                isHEAD = head.method.isHEAD
                proxy.streamPart(.head(head))
                if headers.endStream { end() }
            }
        case .data(let data):
            guard headReceived, !requestEnded else { return }
            if case .byteBuffer(let bytes) = data.data, bytes.readableBytes > 0 { proxy.streamPart(.body(bytes)) }
            if data.endStream { end() }
        default:
            break
        }
    }

    private func end() {
        requestEnded = true
        proxy.streamPart(.end)
    }

    /// Answers a head the adapter refuses itself (before any plugin or backend), and ends the stream: once the
    /// answer is out, a stream whose request had not ended is reset (nothing more of it is read).
    private func refuse(_ refusal: RequestHeadValidator.Refusal, endStream: Bool, context: ChannelHandlerContext) {
        let body = context.channel.allocator.buffer(string: refusal.message)
        let head: HPACKHeaders = [
            ":status": String(refusal.status.code), "content-type": "text/plain; charset=utf-8", "content-length": String(body.readableBytes),
        ]
        let promise = context.eventLoop.makePromise(of: Void.self)
        if isHEAD {
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: head, endStream: true))), promise: promise)
        } else {
            context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: promise)
        }
        guard !endStream else { return }
        let channel = context.channel
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    /// The request head an HTTP/2 HEADERS frame carries, or why it is refused.
    package static func requestHead(_ headers: HPACKHeaders, endStream: Bool, maxBytes: Int, maxCount: Int) -> Result<ClientRequestHead, RequestHeadValidator.Refusal> {
        var method: String?
        var path: String?
        var authority: String?
        var host: String?
        var cookies: [String] = []
        var fields = HeaderBlock()
        var count = 0
        var bytes = 0
        var hasLength = false
        for (name, value, _) in headers {
            bytes += name.utf8.count + value.utf8.count + 4
            if name.utf8.first == UInt8(ascii: ":") {
                switch name {
                case ":method": method = value
                case ":path": path = value
                case ":authority": authority = value
                default: break  // :scheme (checked by swift-nio-http2), :protocol (extended CONNECT is not offered)
                }
                continue
            }
            count += 1
            switch name {
            case "cookie":
                cookies.append(value)
                continue
            case "host":
                if host != nil { return .failure(.init(.badRequest, "missing or repeated Host header\n")) }
                host = value
            case "content-length": hasLength = true
            default: break
            }
            fields.append(name: name, value: value)
        }
        if count > maxCount || bytes > maxBytes {
            return .failure(.init(.init(statusCode: 431), "request header too large\n"))
        }
        guard let method, let path, !path.isEmpty else { return .failure(.init(.badRequest, "missing :method or :path\n")) }
        if let authority {
            if let host, host != authority { return .failure(.init(.badRequest, "Host and :authority differ\n")) }
            if host == nil { fields.append(name: "host", value: authority) }
        }
        if !cookies.isEmpty { fields.append(name: "cookie", value: cookies.joined(separator: "; ")) }
        // A body whose length the client did not say: chunked to the request path, as NIO's codec frames it.
        if !endStream, !hasLength { fields.append(name: "transfer-encoding", value: "chunked") }
        return .success(ClientRequestHead(method: HTTPMethod(rawValue: method), version: .http1_1, uri: path, fields: fields))
    }

    // MARK: outbound

    package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            var headers = HPACKHeaders()
            headers.add(name: ":status", value: String(head.status.code))
            headers.add(contentsOf: HPACKHeaders(httpHeaders: head.headers, normalizeHTTPHeaders: true))
            let final = head.status.code >= 200
            if final { suppressBody = isHEAD || head.status.code == 204 || head.status.code == 304 }
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: promise)
        case .body(let body):
            guard !suppressBody else {
                promise?.succeed()
                return
            }
            context.write(wrapOutboundOut(.data(.init(data: body))), promise: promise)
        case .end(let trailers):
            if let trailers, !trailers.isEmpty {
                context.write(wrapOutboundOut(.headers(.init(headers: HPACKHeaders(httpHeaders: trailers, normalizeHTTPHeaders: true), endStream: true))), promise: promise)
            } else {
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(context.channel.allocator.buffer(capacity: 0)), endStream: true))), promise: promise)
            }
        }
    }
}
