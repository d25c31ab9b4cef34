import GatewayCore
import GatewayTooling
import NIOCore
import NIOHTTP1
import XCTest

/// `HTTP1RequestParser` on hand-written requests: what it delivers, and the reason of every refusal.
final class HTTP1RequestParserTests: XCTestCase {
    private func parse(_ text: String, cuts: [Int] = [], maxHeadBytes: Int = 1 << 20, maxFields: Int = 100) -> HTTP1Differential.Outcome {
        HTTP1Differential.gateway(Array(text.utf8), cuts: cuts, maxHeadBytes: maxHeadBytes, maxFields: maxFields)
    }

    func testAGetWithHeaders() {
        let outcome = parse("GET /a?b=c HTTP/1.1\r\nHost: h.example\r\nX-A:\t v \t\r\nX-Empty:\r\n\r\n")
        XCTAssertNil(outcome.refusal)
        XCTAssertEqual(outcome.messages, [.init(method: "GET", target: "/a?b=c", version: "HTTP/1.1", headers: ["Host: h.example", "X-A: v", "X-Empty: "], ended: true)])
    }

    func testBodiesByLengthAndChunksWhateverTheReads() {
        let text = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            + "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n3;a=b;c=\"q\\\"\";d\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: t\r\n\r\n"
            + "HEAD / HTTP/1.0\r\n\r\n"
        for cuts in [[], Array(1..<text.utf8.count), [3, 40, 41, 90, 120]] {
            let outcome = parse(text, cuts: cuts)
            XCTAssertNil(outcome.refusal, "cuts \(cuts)")
            XCTAssertEqual(outcome.messages.map(\.method), ["POST", "PUT", "HEAD"])
            XCTAssertEqual(outcome.messages.map { String(decoding: $0.body, as: UTF8.self) }, ["hello", "abc0123456789", ""])
            XCTAssertEqual(outcome.messages.map(\.ended), [true, true, true])
            XCTAssertEqual(outcome.messages.last?.version, "HTTP/1.0")
        }
    }

    func testOneEmptyLineBeforeARequestIsIgnoredTwoAreNot() {
        XCTAssertNil(parse("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").refusal)
        XCTAssertEqual(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").refusal, "request_line")
    }

    func testObsTextInAValueIsKept() {
        let outcome = parse("GET / HTTP/1.1\r\nX-A: caf\u{e9}\r\n\r\n")
        XCTAssertNil(outcome.refusal)
        XCTAssertEqual(outcome.messages.first?.headers, ["X-A: caf\u{e9}"])
    }

    func testEveryRefusalHasItsReason() {
        let cases: [(String, String)] = [
            ("GET / HTTP/1.1\nHost: h\r\n\r\n", "line_ending"),
            ("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", "line_ending"),
            ("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", "obs_fold"),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", "field_name"),
            ("GET / HTTP/1.1\r\n: h\r\n\r\n", "field_name"),
            ("GET / HTTP/1.1\r\nX(: h\r\n\r\n", "field_name"),
            ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", "field_name"),
            ("GET / HTTP/1.1\r\nX: a\u{0}b\r\n\r\n", "field_value"),
            ("GET / HTTP/1.1\r\nX: a\u{7f}b\r\n\r\n", "field_value"),
            ("GET / HTTP/1.1\r\nX: a\u{0b}b\r\n\r\n", "field_value"),
            ("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "content_length"),
            ("GET / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\nx", "content_length"),
            ("GET / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", "content_length"),
            ("GET / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", "content_length"),
            ("GET / HTTP/1.1\r\nContent-Length:\r\n\r\n", "content_length"),
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "length_and_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n", "transfer_encoding"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", "chunk_size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\u{1}\r\n", "chunk_size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"open\r\n", "chunk_size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "chunk_size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "chunk_end"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n", "line_ending"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", "trailers"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", "trailers"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\ncontent-length: 5\r\n\r\n", "trailers"),
            ("GET / HTTP/2.0\r\n\r\n", "unsupported_version"),
            ("GET / HTTP/1.2\r\n\r\n", "unsupported_version"),
            ("GET / http/1.1\r\n\r\n", "version"),
            ("GET / HTTP/1.1 \r\n\r\n", "version"),
            ("GET /\r\n\r\n", "request_line"),
            ("GET  / HTTP/1.1\r\n\r\n", "request_line"),
            ("get / HTTP/1.1\r\n\r\n", "method"),
            ("FOO / HTTP/1.1\r\n\r\n", "method"),
            ("GET /a\u{7f} HTTP/1.1\r\n\r\n", "target"),
            ("GET /caf\u{e9} HTTP/1.1\r\n\r\n", "target"),
            ("GET a/b HTTP/1.1\r\n\r\n", "target"),
            ("GET ** HTTP/1.1\r\n\r\n", "target"),
            ("GET http:/x HTTP/1.1\r\n\r\n", "target"),
            ("GET h;s://x/ HTTP/1.1\r\n\r\n", "target"),
            ("GET / HTTP/1.1\r\nContent-Length: 1 \r\n\r\nx", "content_length"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=b\r\n", "chunk_size"),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a = b\r\n", "chunk_size"),
        ]
        for (text, reason) in cases {
            XCTAssertEqual(parse(text).refusal, reason, HTTP1DifferentialTests.escaped(Array(text.utf8)))
            XCTAssertEqual(parse(text, cuts: Array(1..<text.utf8.count)).refusal, reason, "byte by byte: " + HTTP1DifferentialTests.escaped(Array(text.utf8)))
        }
    }

    func testLimitsOnFieldsAndBytes() {
        let fields = (0..<9).map { "X-\($0): v\r\n" }.joined()
        XCTAssertNil(parse("GET / HTTP/1.1\r\n\(fields)\r\n", maxFields: 9).refusal)
        XCTAssertEqual(parse("GET / HTTP/1.1\r\n\(fields)X-9: v\r\n\r\n", maxFields: 9).refusal, "too_many_fields")
        let long = "GET / HTTP/1.1\r\nX-Long: \(String(repeating: "a", count: 2000))\r\n\r\n"
        XCTAssertNil(parse(long, maxHeadBytes: 2100).refusal)
        XCTAssertEqual(parse(long, maxHeadBytes: 1024).refusal, "head_too_large")
        // An unfinished head past the limit is refused without waiting for its end.
        XCTAssertEqual(parse(String(long.dropLast(4)), maxHeadBytes: 1024).refusal, "head_too_large")
        let trailers = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: \(String(repeating: "t", count: 2000))\r\n\r\n"
        XCTAssertEqual(parse(trailers, maxHeadBytes: 1024).refusal, "head_too_large")
        XCTAssertEqual(HTTP1ParseError(.tooManyFields).status, .requestHeaderFieldsTooLarge)
        XCTAssertEqual(HTTP1ParseError(.unsupportedVersion).status, .httpVersionNotSupported)
        XCTAssertEqual(HTTP1ParseError(.obsFold).status, .badRequest)
    }

    func testAnIncompleteRequestWaitsAndKeepsNothingOnceDone() throws {
        var parser = HTTP1RequestParser(maxHeadBytes: 4096, maxFields: 100)
        parser.append(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: h\r\n\r"))
        XCTAssertNil(try parser.next())
        parser.append(ByteBuffer(string: "\n"))
        guard case .head(let head)? = try parser.next() else { return XCTFail("no head") }
        XCTAssertEqual(head.headers["host"], ["h"])
        guard case .end? = try parser.next() else { return XCTFail("no end") }
        XCTAssertNil(try parser.next())
        XCTAssertEqual(parser.bufferedBytes, 0)
    }
}

extension HTTP1RequestParserTests {
    /// A client that always sends the first byte of its next request with the last one: what the parser
    /// consumed is dropped before more is appended, so the buffer does not grow with every request.
    func testConsumedBytesAreNotKept() throws {
        var parser = HTTP1RequestParser(maxHeadBytes: 4096, maxFields: 100)
        let padding = String(repeating: "p", count: 1000)
        parser.append(ByteBuffer(string: "G"))
        for _ in 0..<500 {
            parser.append(ByteBuffer(string: "ET / HTTP/1.1\r\nHost: a\r\nX-Pad: \(padding)\r\n\r\nG"))
            guard case .head? = try parser.next(), case .end? = try parser.next() else { return XCTFail("no request") }
            XCTAssertNil(try parser.next())
        }
        XCTAssertEqual(parser.bufferedBytes, 1)
        XCTAssertLessThan(parser.bufferedCapacity, 8192, "the parser keeps what it consumed")
    }
}
