import GatewayCore
import NIOCore
import NIOHTTP1
import XCTest

/// `HTTP1ResponseParser` (backend responses) on hand-written responses: the framing of RFC 9112 6.3, interim
/// responses, the end at the close, and every refusal.
final class HTTP1ResponseParserTests: XCTestCase {
    private struct Parsed: Equatable {
        var heads: [String] = []
        var body = ""
        var ends = 0
        var refusal: String?
    }

    /// Parses `text` read by read (`cuts`), then the close if `close`; `head` marks the first request as a HEAD;
    /// `requests`: how many requests were sent, one after the other response (the next is sent when a response
    /// ended).
    private func parse(_ text: String, cuts: [Int] = [], head: Bool = false, close: Bool = false, requests: Int = 10) -> Parsed {
        var parser = HTTP1ResponseParser(maxHeadBytes: 4096, maxFields: 20)
        parser.heads.requestSent(isHEAD: head)
        var parsed = Parsed()
        let bytes = Array(text.utf8)
        var start = 0
        var sent = 1
        func take(_ part: HTTP1ResponseParser.Part) {
            switch part {
            case .head(let head): parsed.heads.append("\(head.status.code) \(head.version) \(head.headers.map { "\($0.name)=\($0.value)" })")
            case .body(let body): parsed.body += String(buffer: body)
            case .end:
                parsed.ends += 1
                if sent < requests {
                    sent += 1
                    parser.heads.requestSent(isHEAD: false)
                }
            }
        }
        do {
            for end in cuts + [bytes.count] {
                parser.append(ByteBuffer(bytes: bytes[start..<end]))
                start = end
                while let part = try parser.next() { take(part) }
            }
            if close, let part = try parser.finish() { take(part) }
        } catch {
            parsed.refusal = error.reason.rawValue
        }
        return parsed
    }

    func testFramingByLengthChunksAndClose() {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
            + "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: t\r\n\r\n"
            + "HTTP/1.0 200\r\nX-Empty:\r\n\r\nuntil the close"
        for cuts in [[], Array(1..<text.utf8.count)] {
            let parsed = parse(text, cuts: cuts, close: true)
            XCTAssertNil(parsed.refusal)
            XCTAssertEqual(parsed.heads, ["200 HTTP/1.1 [\"Content-Length=5\"]", "201 HTTP/1.1 [\"Transfer-Encoding=chunked\"]", "200 HTTP/1.0 [\"X-Empty=\"]"])
            XCTAssertEqual(parsed.body, "helloabcuntil the close")
            XCTAssertEqual(parsed.ends, 3)
        }
        // A Transfer-Encoding without chunked last is read until the close.
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", close: true).body, "zz")
    }

    func testResponsesWithoutABody() {
        // A HEAD's response has no body whatever its length says; the next response is read normally.
        let parsed = parse(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                + "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", head: true
        )
        XCTAssertNil(parsed.refusal)
        XCTAssertEqual(parsed.heads.count, 4)
        XCTAssertEqual(parsed.body, "ok")
        XCTAssertEqual(parsed.ends, 4)
    }

    func testInterimResponsesAreSkippedAnUpgradeEndsParsing() {
        let interim = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
        XCTAssertEqual(interim.heads, ["200 HTTP/1.1 [\"Content-Length=1\"]"])
        XCTAssertEqual(interim.ends, 1)
        let upgrade = parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\u{0}\u{1}garbage", close: true)
        XCTAssertNil(upgrade.refusal)
        XCTAssertEqual(upgrade.heads, ["101 HTTP/1.1 [\"Upgrade=websocket\"]"])
        XCTAssertEqual(upgrade.ends, 1)
    }

    func testTheBytesAfterA101AreHandedOverOnceAndNeverParsed() {
        var parser = HTTP1ResponseParser(maxHeadBytes: 4096, maxFields: 20)
        parser.heads.requestSent(isHEAD: false)
        parser.append(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\u{81}\u{05}hel"))
        guard case .head(let head)? = try? parser.next() else { return XCTFail("no head") }
        XCTAssertEqual(head.status, .switchingProtocols)
        XCTAssertNil(parser.takeUpgraded(), "nothing is handed over before the 101's end")
        guard case .end? = try? parser.next() else { return XCTFail("no end") }
        XCTAssertEqual(parser.takeUpgraded().map { String(buffer: $0) }, "\u{81}\u{05}hel")
        XCTAssertNil(parser.takeUpgraded(), "once")
        parser.append(ByteBuffer(string: "lo"))
        XCTAssertNil(try? parser.next(), "what comes later is not parsed (the tunnel reads it)")
        XCTAssertNil(parser.takeUpgraded())
    }

    func testAResponseNoRequestAskedForIsRefused() {
        let two = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
        XCTAssertNil(parse(two, requests: 2).refusal)
        let unsolicited = parse(two, requests: 1)
        XCTAssertEqual(unsolicited.refusal, "unsolicited")
        XCTAssertEqual(unsolicited.body, "a")
        // Interim responses do not count as the response.
        XCTAssertNil(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", requests: 1).refusal)
    }

    func testTheCloseInTheMiddleOfAMessageIsAnError() {
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", close: true).refusal, "truncated")
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab", close: true).refusal, "truncated")
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nContent-", close: true).refusal, "truncated")
        let between = parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close: true)
        XCTAssertNil(between.refusal)
        XCTAssertEqual(between.ends, 1)
    }

    func testRefusals() {
        let cases: [(String, String)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "length_and_encoding"),
            ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "content_length"),
            ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "content_length"),
            ("HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", "obs_fold"),
            ("HTTP/1.1 200 OK\r\nX: a\u{0}\r\n\r\n", "field_value"),
            ("HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n", "field_name"),
            ("HTTP/1.1 200 OK\nX: a\r\n\r\n", "line_ending"),
            ("HTTP/1.1 200 O\rK\r\n\r\n", "line_ending"),
            ("HTTP/1.1 200 O\u{1}K\r\n\r\n", "status_line"),
            ("HTTP/1.1 20 OK\r\n\r\n", "status_line"),
            ("HTTP/1.1 099 Low\r\n\r\n", "status_line"),
            ("HTTP/1.1  200 OK\r\n\r\n", "status_line"),
            ("HTTP/1.1 2000 OK\r\n\r\n", "status_line"),
            ("http/1.1 200 OK\r\n\r\n", "status_line"),
            ("HTTP/2.0 200 OK\r\n\r\n", "unsupported_version"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", "chunk_size"),
            ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "chunk_end"),
            ("HTTP/1.1 200 OK\r\n" + (0..<21).map { "X-\($0): v\r\n" }.joined() + "\r\n", "too_many_fields"),
            ("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 5000) + "\r\n\r\n", "head_too_large"),
        ]
        for (text, reason) in cases {
            XCTAssertEqual(parse(text).refusal, reason, HTTP1DifferentialTests.escaped(Array(text.utf8)))
        }
        XCTAssertEqual(parse("HTTP/1.1 200 OK\r\nServer: caf\u{e9}\r\n\r\n").heads, ["200 HTTP/1.1 [\"Server=caf\u{e9}\"]"])
    }
}
