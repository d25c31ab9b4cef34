import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

/// The gateway's response encoder must put exactly the bytes on the wire that NIO's `HTTPResponseEncoder`
/// does: standalone (framing from the status) for every status, version, framing header and body shape, and
/// inside NIO's server pipeline for responses to HEAD and CONNECT (which NIO's decoder reports to its encoder).
final class DownstreamResponseEncoderTests: XCTestCase {
    private struct Output: Equatable {
        var bytes: [UInt8]
        var succeeded: Int
        var failed: Int
        /// Writes that reached the socket (not compared: only this encoder coalesces).
        var writes = 0

        static func == (a: Output, b: Output) -> Bool { (a.bytes, a.succeeded, a.failed) == (b.bytes, b.succeeded, b.failed) }
    }

    /// Writes `parts` at the end of `channel`'s pipeline and collects what reaches the socket. With
    /// `promisesOnLastOnly`, only the last part has a promise, as when the proxy forwards a response.
    private func run(_ channel: EmbeddedChannel, _ parts: [HTTPServerResponsePart], promisesOnLastOnly: Bool = false) throws -> Output {
        let counts = NIOLockedValueBox((succeeded: 0, failed: 0))
        for (index, part) in parts.enumerated() {
            guard !promisesOnLastOnly || index == parts.count - 1 else {
                channel.write(part, promise: nil)
                continue
            }
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { result in
                counts.withLockedValue { if case .success = result { $0.succeeded += 1 } else { $0.failed += 1 } }
            }
            channel.write(part, promise: promise)
        }
        channel.flush()
        var bytes: [UInt8] = []
        var writes = 0
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { XCTFail("file region"); continue }
            bytes += buffer.readableBytesView
            writes += 1
        }
        _ = try? channel.finish()
        let (succeeded, failed) = counts.withLockedValue { ($0.succeeded, $0.failed) }
        return Output(bytes: bytes, succeeded: succeeded, failed: failed, writes: writes)
    }

    private func assertSame(_ theirs: Output, _ ours: Output, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(String(decoding: ours.bytes, as: UTF8.self), String(decoding: theirs.bytes, as: UTF8.self), what, file: file, line: line)
        XCTAssertEqual(ours, theirs, what, file: file, line: line)
    }

    private func body(_ text: String) -> HTTPServerResponsePart { .body(.byteBuffer(ByteBuffer(string: text))) }

    func testEveryStatusAndFramingWritesNIOsBytes() throws {
        let framings: [[(String, String)]] = [[], [("Content-Length", "5")], [("transfer-encoding", "chunked")], [("content-length", "5"), ("Transfer-Encoding", "chunked")]]
        let bodies: [[HTTPServerResponsePart]] = [[], [body("hello")], [body("he"), body(""), body("llo")]]
        var statuses = (100...599).map { HTTPResponseStatus(statusCode: $0) }
        statuses.append(.custom(code: 299, reasonPhrase: "Fine Enough"))
        for version in [HTTPVersion.http1_1, .http1_0] {
            for status in statuses {
                for framing in framings {
                    for parts in bodies where status.mayHaveResponseBody || parts.isEmpty {
                        let head = HTTPResponseHead(version: version, status: status, headers: HTTPHeaders([("Server", "x"), ("x-empty", "")] + framing))
                        let all = [HTTPServerResponsePart.head(head)] + parts + [.end(nil)]
                        let theirs = try run(EmbeddedChannel(handler: HTTPResponseEncoder()), all)
                        let ours = try run(EmbeddedChannel(handler: DownstreamResponseEncoder()), all)
                        assertSame(theirs, ours, "\(version) \(status.code) \(framing) \(parts.count) parts")
                    }
                }
            }
        }
    }

    /// As the proxy writes a response (a promise on the end only), a head, its body and its end that fit in one
    /// TLS record leave as one write; a larger one as few writes as the limit allows; the bytes are NIO's.
    func testAResponseWithoutPromisesBeforeItsEndLeavesAsOneWriteWhenItFits() throws {
        let big = String(repeating: "x", count: DownstreamResponseEncoder.coalescingLimit)
        for version in [HTTPVersion.http1_1, .http1_0] {
            for framing in [[("Content-Length", "11")], [("transfer-encoding", "chunked")], []] as [[(String, String)]] {
                for (parts, oneWrite) in [
                    ([body("hello"), body(""), body(" world")], true),
                    ([], true),
                    ([body(big)], false),
                    ([body("hello"), body(big), body("tail")], false),
                ] as [([HTTPServerResponsePart], Bool)] {
                    let head = HTTPResponseHead(version: version, status: .ok, headers: HTTPHeaders([("Server", "x")] + framing))
                    let all = [HTTPServerResponsePart.head(head)] + parts + [.end(framing.isEmpty ? nil : ["x-sum": "1"])]
                    let theirs = try run(EmbeddedChannel(handler: HTTPResponseEncoder()), all)
                    let ours = try run(EmbeddedChannel(handler: DownstreamResponseEncoder()), all, promisesOnLastOnly: true)
                    let what = "\(version) \(framing) \(parts.count) parts"
                    XCTAssertEqual(String(decoding: ours.bytes, as: UTF8.self), String(decoding: theirs.bytes, as: UTF8.self), what)
                    XCTAssertEqual(ours.succeeded, 1, what)
                    XCTAssertEqual(ours.failed, 0, what)
                    if oneWrite {
                        XCTAssertEqual(ours.writes, 1, what)
                    } else {
                        XCTAssertGreaterThan(ours.writes, 1, what)
                        XCTAssertLessThanOrEqual(ours.writes, 4, what)
                    }
                }
            }
        }
    }

    /// A held head goes on at a flush, at a close and when the handler is removed: nothing waits for a part
    /// that may never come. A recorder in front of the encoder sees what it passes on, flushed or not.
    func testAHeldHeadLeavesAtFlushCloseAndRemoval() throws {
        let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "5"]))
        let expected = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
        for ending in ["flush", "close", "removal"] {
            let recorder = OutboundRecorder()
            let encoder = DownstreamResponseEncoder()
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandlers([recorder, encoder])
            channel.write(head, promise: nil)
            XCTAssertEqual(recorder.written, [], "\(ending): held while nothing follows")
            switch ending {
            case "flush": channel.flush()
            case "close": channel.close(promise: nil)
            default: try channel.pipeline.syncOperations.removeHandler(encoder).wait()
            }
            XCTAssertEqual(recorder.written, [expected], "\(ending): passed on")
            _ = try? channel.finish()
        }
    }

    /// Records the bytes written through it (before any flush) and passes them on.
    private final class OutboundRecorder: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = IOData
        typealias OutboundOut = IOData
        var written: [String] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if case .byteBuffer(let buffer) = unwrapOutboundIn(data) { written.append(String(buffer: buffer)) }
            context.write(data, promise: promise)
        }
    }

    /// A backend's head written from its bytes (`writeForwarded`) is byte for byte the head the String path
    /// writes (`ProxyHeaders.downstreamResponse` of its `nioHead`, through `write`), with what follows it, for
    /// random fields (framing, hop-by-hop, non-ASCII and invalid UTF-8 values, whitespace around values, runs of
    /// lines the parser copies whole between others it does not), statuses, versions
    /// on both sides, methods and `close`; it declines exactly when a Content-Length must be removed.
    func testAForwardedHeadWritesTheBytesOfItsHeadThroughTheStringPath() throws {
        var random = SeededRandom(seed: 0x5EED_0011)
        let names = ["Server", "x-a", "Content-Type", "Set-Cookie", "Connection", "Keep-Alive", "Content-Length", "Transfer-Encoding", "Upgrade", "ETag", "Vary"]
        let values = ["v", "a b", "  padded\t", "caf\u{e9}", "", "close", "x-a", "keep-alive", "\u{1F600}"]
        var forwarded = 0, declined = 0
        for round in 0..<3000 {
            let status = [101, 200, 204, 206, 299, 304, 404, 500][Int(random.next() % 8)]
            let method: HTTPMethod = [.GET, .GET, .HEAD, .CONNECT, .POST][Int(random.next() % 5)]
            let clientVersion: HTTPVersion = random.next() % 3 == 0 ? .http1_0 : .http1_1
            let close = random.next() % 2 == 0
            var lines: [String] = []
            var hasLength = false
            for _ in 0..<Int(random.next() % 7) {
                let name = names[Int(random.next() % UInt64(names.count))]
                var value = values[Int(random.next() % UInt64(values.count))]
                switch name.lowercased() {
                case "content-length":
                    guard !hasLength else { continue }
                    hasLength = true
                    value = "5"
                case "transfer-encoding": continue
                default: break
                }
                // Mostly as servers write them (copied as they are), else with other whitespace (field by field).
                let separator = [": ", ": ", ": ", ":", ":  ", ":\t", ": "][Int(random.next() % 7)]
                lines.append("\(name)\(separator)\(value)")
            }
            var bytes = Array("HTTP/1.\(round % 2) \(status) Whatever\r\n".utf8)
            for line in lines { bytes += Array(line.utf8) + [13, 10] }
            if round % 5 == 0 { bytes += Array("X-Bin: a".utf8) + [0xFF, 0xC3] + Array("b\r\n".utf8) }
            bytes += [13, 10]
            var parser = HTTP1ResponseParser(maxHeadBytes: 16 * 1024, maxFields: 100)
            parser.heads.dropsHopByHop = true
            parser.heads.requestSent(isHEAD: method == .HEAD)
            parser.append(ByteBuffer(bytes: bytes))
            guard case .head(let head)? = try parser.next() else { return XCTFail("not parsed: \(String(decoding: bytes, as: UTF8.self))") }
            let parts: [HTTPServerResponsePart] = method == .GET && HTTPResponseStatus(statusCode: status).mayHaveResponseBody ? [body("hello"), .end(nil)] : [.end(nil)]

            let theirs = EmbeddedChannel(handler: DownstreamResponseEncoder())
            let reference = try theirs.pipeline.syncOperations.handler(type: DownstreamResponseEncoder.self)
            reference.respondingTo(method)
            let listed = parser.heads.lastConnection.listed
            let downstream = ProxyHeaders.downstreamResponse(head.nioHead, removing: listed, version: clientVersion, close: close)
            theirs.write(HTTPServerResponsePart.head(downstream), promise: nil)
            let encoder = DownstreamResponseEncoder()
            let ours = EmbeddedChannel(handler: encoder)
            encoder.respondingTo(method)
            if encoder.writeForwarded(head, version: clientVersion, close: close) {
                forwarded += 1
            } else {
                declined += 1
                XCTAssertTrue(
                    !listed.isEmpty || head.hasContentLength && (method == .CONNECT || !head.status.mayHaveResponseBody), "declined \(status) \(method) \(lines)"
                )
                ours.write(HTTPServerResponsePart.head(downstream), promise: nil)
            }
            for part in parts {
                theirs.write(part, promise: nil)
                ours.write(part, promise: nil)
            }
            let (a, b) = try (Self.written(theirs), Self.written(ours))
            XCTAssertEqual(String(decoding: b, as: UTF8.self), String(decoding: a, as: UTF8.self), "\(status) \(method) \(clientVersion) close \(close) \(lines)")
            XCTAssertEqual(a, b)
        }
        XCTAssertGreaterThan(forwarded, 2000)
        XCTAssertGreaterThan(declined, 20)
    }

    private static func written(_ channel: EmbeddedChannel) throws -> [UInt8] {
        channel.flush()
        var bytes: [UInt8] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { bytes += buffer.readableBytesView }
        }
        _ = try? channel.finish()
        return bytes
    }

    /// A head with its hop-by-hop fields kept (a parser not set to drop them), or with a field its Connection
    /// names (which must go too), is never written from its bytes; without such a name it is.
    func testAHeadWithItsHopByHopFieldsIsNotForwardedAsBytes() throws {
        for (drops, connection, forwarded) in [(false, "x-secret", false), (true, "x-secret", false), (true, "keep-alive", true)] {
            var parser = HTTP1ResponseParser(maxHeadBytes: 4096, maxFields: 10)
            parser.heads.dropsHopByHop = drops
            parser.heads.requestSent(isHEAD: false)
            parser.append(ByteBuffer(string: "HTTP/1.1 200 OK\r\nConnection: \(connection)\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n"))
            guard case .head(let head)? = try parser.next() else { return XCTFail("not parsed") }
            let encoder = DownstreamResponseEncoder()
            let channel = EmbeddedChannel(handler: encoder)
            XCTAssertEqual(encoder.writeForwarded(head, version: .http1_1, close: false), forwarded, "\(drops) \(connection)")
            XCTAssertEqual(String(decoding: try Self.written(channel), as: UTF8.self), forwarded ? "HTTP/1.1 200 OK\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n" : "")
        }
    }

    func testTrailersAndInformationalHeadsWriteNIOsBytes() throws {
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-type": "text/plain"])
        for parts: [HTTPServerResponsePart] in [
            [.head(head), body("abc"), .end(["x-checksum": "1"])],
            [.head(HTTPResponseHead(version: .http1_1, status: .continue)), .head(head), body("abc"), .end(nil)],
            [.head(HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: 103), headers: ["link": "</a>"])), .head(head), .end(nil)],
        ] {
            let theirs = try run(EmbeddedChannel(handler: HTTPResponseEncoder()), parts)
            let ours = try run(EmbeddedChannel(handler: DownstreamResponseEncoder()), parts)
            assertSame(theirs, ours, "\(parts)")
        }
    }

    /// Responses to HEAD and CONNECT, against NIO's server pipeline, whose decoder tells its encoder the method.
    func testResponsesToHeadAndConnectWriteNIOsBytes() throws {
        for method in [HTTPMethod.HEAD, .CONNECT, .GET] {
            for (status, framing, parts) in [
                (HTTPResponseStatus.ok, [("content-length", "5")], [body("hello")]),
                (.ok, [("transfer-encoding", "chunked")], [body("hello")]),
                (.ok, [], []),
                (.notFound, [("content-length", "9")], [body("not found")]),
            ] as [(HTTPResponseStatus, [(String, String)], [HTTPServerResponsePart])] {
                let head = HTTPResponseHead(version: .http1_1, status: status, headers: HTTPHeaders(framing))
                let all = [HTTPServerResponsePart.head(head)] + parts + [.end(nil)]
                let nio = EmbeddedChannel()
                try nio.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                let target = method == .CONNECT ? "a:443" : "/"
                try nio.writeInbound(ByteBuffer(string: "\(method.rawValue) \(target) HTTP/1.1\r\nHost: a\r\n\r\n"))
                let theirs = try run(nio, all)
                let encoder = DownstreamResponseEncoder()
                let channel = EmbeddedChannel(handler: encoder)
                encoder.respondingTo(method)
                let ours = try run(channel, all)
                assertSame(theirs, ours, "\(method) \(status.code) \(framing)")
            }
        }
    }
}
