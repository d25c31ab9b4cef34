import NIOCore
import NIOPosix

/// The gateway's own DNS client, for the configured `resolver`: A and/or AAAA queries over UDP, each from a
/// new socket on a random port with a random ID, to the servers in order until one answers within `timeout`
/// (each server twice: one lost datagram is not a failure). Only a datagram from the asked server carrying the
/// query's ID is read; the answer's TTL is kept. When one family's query fails and the other answers, the
/// failed family is reported, so that its last known addresses stay.
package struct DNSHostResolver: HostResolver {
    package let servers: [SocketAddress]
    package let timeout: TimeAmount

    package init(servers: [SocketAddress], timeout: TimeAmount) {
        self.servers = servers
        self.timeout = timeout
    }

    package func resolve(_ host: String, family: DNSFamily, on eventLoop: any EventLoop) -> EventLoopFuture<ResolvedHost> {
        let types: [DNSMessage.RecordType] = switch family {
        case .all: [.a, .aaaa]
        case .ipv4: [.a]
        case .ipv6: [.aaaa]
        }
        let lookups = types.map { type in ask(host, type: type, attempt: 0, on: eventLoop).map { Result<DNSMessage.Answer, any Error>.success($0) }
            .recover { .failure($0) }
        }
        return EventLoopFuture.whenAllSucceed(lookups, on: eventLoop).flatMapThrowing { results in
            var addresses: [String] = []
            var ttl: UInt32?
            var firstError: (any Error)?
            var failed: Set<DNSFamily> = []
            for (type, result) in zip(types, results) {
                switch result {
                case .success(let answer):
                    addresses.append(contentsOf: answer.addresses)
                    if let t = answer.ttl { ttl = min(ttl ?? t, t) }
                case .failure(let error):
                    firstError = firstError ?? error
                    // NXDOMAIN is the name's answer for every family, not a failure to keep addresses through.
                    if (error as? DNSMessage.Failure) != .nameNotFound { failed.insert(type == .a ? .ipv4 : .ipv6) }
                }
            }
            guard !addresses.isEmpty else {
                throw HostResolutionError(host: host, reason: firstError.map { "\($0)" } ?? "no addresses")
            }
            return ResolvedHost(addresses: addresses, ttl: ttl.map { .seconds(Int64($0)) }, failedFamilies: failed)
        }
    }

    /// One query to the attempt's server (the servers in order, then again), then the next attempt on any
    /// failure but NXDOMAIN (which the first server to answer has the authority to say).
    private func ask(_ host: String, type: DNSMessage.RecordType, attempt: Int, on eventLoop: any EventLoop) -> EventLoopFuture<DNSMessage.Answer> {
        let id = UInt16.random(in: 0...UInt16.max)
        guard let query = DNSMessage.query(id: id, name: host, type: type) else {
            return eventLoop.makeFailedFuture(HostResolutionError(host: host, reason: "not a DNS name"))
        }
        let server = servers[attempt % servers.count]
        let exchange = Self.exchange(query, id: id, with: server, timeout: timeout, on: eventLoop).flatMapThrowing { response in
            try DNSMessage.addresses(in: response, id: id, name: host, type: type)
        }
        return exchange.flatMapError { error in
            if (error as? DNSMessage.Failure) == .nameNotFound {
                return eventLoop.makeFailedFuture(error)
            }
            if attempt + 1 >= 2 * servers.count {
                return eventLoop.makeFailedFuture(HostResolutionError(host: host, reason: "\(error) (server \(server.text))"))
            }
            return ask(host, type: type, attempt: attempt + 1, on: eventLoop)
        }
    }

    /// Sends `query` from a new UDP socket and completes with the first datagram from `server` that carries `id`.
    private static func exchange(_ query: [UInt8], id: UInt16, with server: SocketAddress, timeout: TimeAmount, on eventLoop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let promise = eventLoop.makePromise(of: [UInt8].self)
        let bootstrap = DatagramBootstrap(group: eventLoop).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(ResponseHandler(server: server, id: id, promise: promise))
            }
        }
        let local = server.protocol == .inet6 ? "::" : "0.0.0.0"
        bootstrap.bind(host: local, port: 0).whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(error)
            case .success(let channel):
                let timer = eventLoop.scheduleTask(in: timeout) {
                    promise.fail(HostResolutionError(host: server.text, reason: "no answer within \(timeout.nanoseconds / 1_000_000) ms"))
                }
                // A loop that shuts down fails its scheduled tasks instead of running them.
                timer.futureResult.whenFailure { promise.fail($0) }
                promise.futureResult.whenComplete { _ in
                    timer.cancel()
                    channel.close(promise: nil)
                }
                let buffer = channel.allocator.buffer(bytes: query)
                channel.writeAndFlush(AddressedEnvelope(remoteAddress: server, data: buffer)).whenFailure { promise.fail($0) }
            }
        }
        return promise.futureResult
    }

    /// Completes the query's promise with the first matching datagram; others (another sender, another ID)
    /// are dropped.
    private final class ResponseHandler: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let server: SocketAddress
        let id: UInt16
        let promise: EventLoopPromise<[UInt8]>

        init(server: SocketAddress, id: UInt16, promise: EventLoopPromise<[UInt8]>) {
            self.server = server
            self.id = id
            self.promise = promise
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            guard envelope.remoteAddress == server, envelope.data.getInteger(at: envelope.data.readerIndex, as: UInt16.self) == id else { return }
            promise.succeed(Array(envelope.data.readableBytesView))
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            promise.fail(error)
        }

        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
            context.fireChannelInactive()
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
        }
    }
}
