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
    /// that may never come.
    func testAHeldHeadLeavesAtFlushCloseAndRemoval() throws {
        let head = HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "5"]))
        let flushed = EmbeddedChannel(handler: DownstreamResponseEncoder())
        try flushed.writeOutbound(head)
        XCTAssertEqual(try flushed.readOutbound(as: IOData.self).map { if case .byteBuffer(let b) = $0 { String(buffer: b) } else { "" } }, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")

        let encoder = DownstreamResponseEncoder()
        let removed = EmbeddedChannel(handler: encoder)
        removed.write(head, promise: nil)
        try removed.pipeline.syncOperations.removeHandler(encoder).wait()
        removed.flush()
        XCTAssertNotNil(try removed.readOutbound(as: IOData.self), "passed on when the encoder left the pipeline")
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
