import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A raw client for tests: plain TCP or TLS (with an optional client certificate chain), sends exact bytes and
/// reads exact bytes, so that malformed and smuggling requests can be written by hand.
final class TestClient: @unchecked Sendable {
    struct Response {
        var status: Int
        var headers: [(String, String)]
        var body: [UInt8]
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
        func headers(_ name: String) -> [String] { headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1) }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    private final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let state = NIOLockedValueBox<(bytes: [UInt8], closed: Bool, error: (any Error)?)>(([], false, nil))
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            buffer.withUnsafeReadableBytes { raw in state.withLockedValue { $0.bytes.append(contentsOf: raw) } }
        }
        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            state.withLockedValue { if $0.error == nil { $0.error = error } }
            context.close(promise: nil)
        }
    }

    let channel: Channel
    private let collector: Collector
    private var consumed = 0

    private init(channel: Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    struct TLSOptions: Sendable {
        var trust: [String] = []  // CA PEM files
        var certificateChain: String?  // PEM file, leaf first
        var key: String?
        var serverName: String? = "localhost"
        var maximumVersion: TLSVersion?
        var minimumVersion: TLSVersion?
    }

    static func connect(port: Int, tls: TLSOptions?, host: String = "127.0.0.1") async throws -> TestClient {
        let collector = Collector()
        var sslContext: NIOSSLContext?
        if let tls {
            var config = TLSConfiguration.makeClientConfiguration()
            config.trustRoots = .certificates(try tls.trust.flatMap { try NIOSSLCertificate.fromPEMFile($0) })
            config.certificateVerification = .noHostnameVerification
            if let chain = tls.certificateChain, let key = tls.key {
                config.certificateChain = try NIOSSLCertificate.fromPEMFile(chain).map { .certificate($0) }
                config.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
            if let max = tls.maximumVersion { config.maximumTLSVersion = max }
            if let min = tls.minimumVersion { config.minimumTLSVersion = min }
            config.applicationProtocols = ["http/1.1"]
            sslContext = try NIOSSLContext(configuration: config)
        }
        let serverName = tls?.serverName
        let clientContext = sslContext
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let clientContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: clientContext, serverHostname: serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
            .connect(host: host, port: port).get()
        return TestClient(channel: channel, collector: collector)
    }

    func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
    }

    var isClosed: Bool { collector.state.withLockedValue { $0.closed } }
    var error: (any Error)? { collector.state.withLockedValue { $0.error } }
    var receivedCount: Int { collector.state.withLockedValue { $0.bytes.count } }
    var receivedBytes: [UInt8] { collector.state.withLockedValue { $0.bytes } }
    var receivedText: String { String(decoding: collector.state.withLockedValue { $0.bytes }, as: UTF8.self) }

    /// Waits for one complete response (after those already read); nil if the connection closed first.
    func readResponse(timeout: TimeInterval = 10) async -> Response? {
        let deadline = Date().addingTimeInterval(timeout)
        var lastCount = -1
        while Date() < deadline {
            // Parse under the lock: holding a copy of the array would make every append copy it.
            let consumed = self.consumed
            let (parsed, closed) = collector.state.withLockedValue { state -> ((Response, Int)?, Bool) in
                guard state.bytes.count != lastCount || state.closed else { return (nil, state.closed) }
                lastCount = state.bytes.count
                return (Self.parse(state.bytes[consumed...], closed: state.closed), state.closed)
            }
            if let (response, length) = parsed {
                self.consumed += length
                return response
            }
            if closed { return nil }
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
        return nil
    }

    /// Waits until the server closes the connection; false on timeout.
    func waitForClose(timeout: TimeInterval = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if isClosed { return true }
            try? await Task.sleep(nanoseconds: 5_000_000)
        }
        return false
    }

    func close() async { try? await channel.close() }

    /// One request, one response, on a new connection.
    static func get(port: Int, tls: TLSOptions?, path: String = "/", host: String = "localhost", headers: [String] = []) async throws -> Response? {
        let client = try await connect(port: port, tls: tls)
        defer { Task { await client.close() } }
        let extra = headers.map { "\($0)\r\n" }.joined()
        try? await client.send("GET \(path) HTTP/1.1\r\nHost: \(host)\r\n\(extra)\r\n")
        return await client.readResponse()
    }

    /// Parses one HTTP/1.1 response from the start of `bytes`; nil until complete.
    static func parse(_ all: ArraySlice<UInt8>, closed: Bool) -> (Response, Int)? {
        let base = all.startIndex
        let bytes = all
        let crlfcrlf: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.prefix(256 * 1024).firstRange(of: crlfcrlf)?.upperBound else { return nil }
        let headText = String(decoding: bytes[..<headEnd], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        guard !lines.isEmpty else { return nil }
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        let headers: [(String, String)] = lines.compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let response = Response(status: status, headers: headers, body: [])
        if status == 100 { return (response, headEnd - base) }
        if let length = response.header("content-length").flatMap(Int.init) {
            guard bytes.endIndex >= headEnd + length else { return nil }
            var r = response
            r.body = Array(bytes[headEnd..<headEnd + length])
            return (r, headEnd + length - base)
        }
        if response.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            var body: [UInt8] = []
            var index = headEnd
            while true {
                guard let lineEnd = bytes[index...].prefix(64).firstRange(of: [13, 10])?.lowerBound else { return nil }
                let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                index = lineEnd + 2
                if size == 0 {
                    guard bytes.endIndex >= index + 2 else { return nil }
                    var r = response
                    r.body = body
                    return (r, index + 2 - base)
                }
                guard bytes.endIndex >= index + size + 2 else { return nil }
                body += bytes[index..<index + size]
                index += size + 2
            }
        }
        if status == 204 || status == 304 { return (response, headEnd - base) }
        guard closed else { return nil }
        var r = response
        r.body = Array(bytes[headEnd...])
        return (r, bytes.endIndex - base)
    }
}
