import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import XCTest

/// The gateway's request encoder must put exactly the bytes on the wire that NIO's `HTTPRequestEncoder`
/// (default configuration) does, for every framing case: both run over the same request parts and their
/// output is compared byte for byte.
final class UpstreamRequestEncoderTests: XCTestCase {
    /// The gateway's encoder in a channel, as a backend connection uses it.
    private final class EncoderHandler: ChannelOutboundHandler {
        typealias OutboundIn = UpstreamRequestPart
        typealias OutboundOut = IOData
        var encoder = UpstreamRequestEncoder()

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            encoder.write(unwrapOutboundIn(data), context: context, promise: promise)
        }
    }

    private func bytes(_ encoder: some ChannelHandler, _ parts: [HTTPClientRequestPart]) throws -> (bytes: [UInt8], completed: Int) {
        try bytes(encoder, parts.map { part -> Any in encoder is EncoderHandler ? UpstreamRequestPart(part) : part })
    }

    private func bytes(_ encoder: some ChannelHandler, _ parts: [Any]) throws -> (bytes: [UInt8], completed: Int) {
        let channel = EmbeddedChannel(handler: encoder)
        defer { _ = try? channel.finish() }
        let completed = NIOLockedValueBox(0)
        for part in parts {
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenSuccess { completed.withLockedValue { $0 += 1 } }
            if let part = part as? UpstreamRequestPart {
                channel.write(part, promise: promise)
            } else {
                channel.write(part as! HTTPClientRequestPart, promise: promise)
            }
        }
        channel.flush()
        var out: [UInt8] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { XCTFail("file region"); continue }
            out += buffer.readableBytesView
        }
        return (out, completed.withLockedValue { $0 })
    }

    private func assertSameBytes(_ parts: [HTTPClientRequestPart], file: StaticString = #filePath, line: UInt = #line) throws {
        let theirs = try bytes(HTTPRequestEncoder(), parts)
        let ours = try bytes(EncoderHandler(), parts)
        XCTAssertEqual(String(decoding: ours.bytes, as: UTF8.self), String(decoding: theirs.bytes, as: UTF8.self), "\(parts)", file: file, line: line)
        XCTAssertEqual(ours.bytes, theirs.bytes, file: file, line: line)
        XCTAssertEqual(ours.completed, parts.count, "every write's promise succeeds", file: file, line: line)
    }

    private func body(_ text: String) -> HTTPClientRequestPart { .body(.byteBuffer(ByteBuffer(string: text))) }

    func testEveryFramingCaseWritesNIOsBytes() throws {
        let methods: [HTTPMethod] = [.GET, .HEAD, .POST, .PUT, .PATCH, .DELETE, .OPTIONS, .TRACE, .CONNECT, .MSEARCH, .RAW(value: "PURGEALL")]
        let framings: [[(String, String)]] = [
            [], [("Content-Length", "5")], [("transfer-encoding", "chunked")], [("Transfer-Encoding", "gzip")],
            [("content-length", "5"), ("transfer-encoding", "chunked")], [("Content-Length", "0")],
        ]
        let bodies: [[HTTPClientRequestPart]] = [[], [body("hello")], [body("he"), body(""), body("llo")], [body(String(repeating: "x", count: 70_000))]]
        for version in [HTTPVersion.http1_1, .http1_0] {
            for method in methods {
                for framing in framings {
                    for parts in bodies {
                        let headers = HTTPHeaders([("Host", "api.test"), ("X-Forwarded-For", "127.0.0.1")] + framing + [("x-empty", "")])
                        let head = HTTPRequestHead(version: version, method: method, uri: "/a/b?c=d%20e", headers: headers)
                        try assertSameBytes([.head(head)] + parts + [.end(nil)])
                    }
                }
            }
        }
    }

    /// Headers plugins added go as a block of bytes at a place among the String fields; the framing rules then
    /// remove and add String fields around it. The bytes are those of the same head with the block's fields
    /// joined in at that place, as NIO writes it.
    func testAnAddedBlockWritesTheBytesOfTheHeadWithItsFieldsJoinedIn() throws {
        var random = SeededRandom(seed: 0x5EED_0005)
        let methods: [HTTPMethod] = [.GET, .HEAD, .POST, .PUT, .TRACE, .DELETE]
        let names = ["Host", "Content-Length", "content-length", "Transfer-Encoding", "x-a", "X-B", "accept"]
        let values = ["5", "chunked", "gzip", "v", "", "a b"]
        var withBlock = 0
        for _ in 0..<2000 {
            func pick<T>(_ list: [T]) -> T { list[Int(random.next() % UInt64(list.count))] }
            let strings = (0..<Int(random.next() % 6)).map { _ in (pick(names), pick(values)) }
            // A block never holds a framing field (`ProxyHeaders.upstreamRequest` keeps one only without them).
            let addedFields = (0..<Int(random.next() % 4)).map { _ in (pick(["x-client-subject", "X-Client-Cert", "x-a"]), pick(values)) }
            let at = Int(random.next() % UInt64(strings.count + 1))
            let head = HTTPRequestHead(version: random.next() % 4 == 0 ? .http1_0 : .http1_1, method: pick(methods), uri: "/x", headers: HTTPHeaders(strings))
            let upstream = UpstreamHead(head, added: HeaderBlock(addedFields), at: at)
            let joined = HTTPRequestHead(version: head.version, method: head.method, uri: "/x", headers: HTTPHeaders(upstream.fields))
            XCTAssertEqual(upstream.fields.map(\.0), (Array(strings[..<at]) + addedFields + Array(strings[at...])).map(\.0))
            let parts: [HTTPClientRequestPart] = random.next() % 2 == 0 ? [body("hello"), .end(nil)] : [.end(nil)]
            let theirs = try bytes(HTTPRequestEncoder(), [.head(joined)] + parts)
            let ours = try bytes(EncoderHandler(), [UpstreamRequestPart.head(upstream)] + parts.map(UpstreamRequestPart.init))
            XCTAssertEqual(String(decoding: ours.bytes, as: UTF8.self), String(decoding: theirs.bytes, as: UTF8.self), "\(head.method) \(strings) + \(addedFields) at \(at)")
            if !addedFields.isEmpty { withBlock += 1 }
        }
        XCTAssertGreaterThan(withBlock, 1000)
    }

    func testTrailersAndLongValuesWriteNIOsBytes() throws {
        let pem = String(repeating: "MIIBkTCB%2B6ADAgECAhR", count: 120)
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/upload", headers: HTTPHeaders([
            ("host", "h"), ("x-forwarded-clientcert", pem), ("transfer-encoding", "chunked"), ("caf\u{e9}-value", "\u{e9}t\u{e9}"),
        ]))
        try assertSameBytes([.head(head), body("abc"), .end(["x-checksum": "1234", "x-other": "v"])])
        try assertSameBytes([.head(head), body("abc"), .end([:])])
    }

    func testRandomHeadsWriteNIOsBytes() throws {
        var random = SeededRandom(seed: 0x5EED_0001)
        let tokenBytes = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".utf8)
        let valueBytes = Array((0x20...0x7E).map { UInt8($0) }) + [0x09]
        func text(_ alphabet: [UInt8], _ count: Int) -> String {
            String(decoding: (0..<count).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }, as: UTF8.self)
        }
        for _ in 0..<500 {
            var headers = HTTPHeaders()
            for _ in 0..<Int(random.next() % 24) {
                headers.add(name: text(tokenBytes, 1 + Int(random.next() % 40)), value: text(valueBytes, Int(random.next() % 300)))
            }
            let methods: [HTTPMethod] = [.GET, .POST, .PUT, .DELETE, .HEAD]
            let head = HTTPRequestHead(version: .http1_1, method: methods[Int(random.next() % 5)], uri: "/" + text(tokenBytes, Int(random.next() % 80)), headers: headers)
            let parts = (0..<Int(random.next() % 4)).map { _ in body(text(valueBytes, Int(random.next() % 5000))) }
            try assertSameBytes([.head(head)] + parts + [.end(nil)])
        }
    }

    func testChunkSizesAreLowercaseHex() {
        for (value, hex) in [(0, "0"), (1, "1"), (10, "a"), (255, "ff"), (4096, "1000"), (70_000, "11170"), (Int(Int32.max), "7fffffff")] {
            var buffer = ByteBuffer()
            HTTPHeadWriter.writeHex(value, into: &buffer)
            XCTAssertEqual(String(buffer: buffer), hex)
        }
    }
}

/// A seeded generator (SplitMix64) for repeatable random tests.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
