import GatewayCore
import NIOHTTP1
import XCTest

/// The request-head checks and normal form, as a pure function (the socket-level tests are in
/// HostileRequestTests).
final class RequestHeadValidatorTests: XCTestCase {
    private func check(_ uri: String, _ headers: [(String, String)]) -> (HTTPRequestHead, RequestHeadValidator.Refusal?) {
        check(.GET, uri, headers)
    }

    private func check(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)], version: HTTPVersion = .http1_1) -> (HTTPRequestHead, RequestHeadValidator.Refusal?) {
        var head = HTTPRequestHead(version: version, method: method, uri: uri, headers: HTTPHeaders(headers))
        let refusal = RequestHeadValidator.normalise(&head, maxBodyBytes: 1000)
        return (head, refusal)
    }

    /// What `check` reports of a head it passed (so the proxy does not scan the fields again) is what scanning
    /// the normalised head says, on seeded random heads.
    func testTheFactsOfACheckedHeadAreWhatItsFieldsSay() {
        var random = SeededRandom(seed: 0x5EED_0F4C)
        let fields: [(String, String)] = [
            ("Host", "a.example"), ("host", "b.example:8443"), ("Content-Length", "5"), ("content-length", "05"), ("Content-Length", "7"),
            ("Transfer-Encoding", "chunked"), ("Expect", "100-continue"), ("expect", "x"), ("Connection", "close"), ("TE", "trailers"),
            ("Upgrade", "h2c"), ("Keep-Alive", "5"), ("Proxy-Authorization", "x"), ("Trailer", "x"), ("X-Foo", "1"), ("Accept", "*/*"),
        ]
        let targets = ["/", "/a?b", "http://c.example:80/x", "*", "https://d.example"]
        let methods: [HTTPMethod] = [.GET, .POST, .OPTIONS, .HEAD]
        var passed = 0
        for _ in 0..<5_000 {
            var headers = HTTPHeaders()
            for _ in 0..<Int(random.next() % 6) {
                let field = fields[Int(random.next() % UInt64(fields.count))]
                headers.add(name: field.0, value: field.1)
            }
            var head = HTTPRequestHead(
                version: random.next() % 4 == 0 ? .http1_0 : .http1_1, method: methods[Int(random.next() % UInt64(methods.count))],
                uri: targets[Int(random.next() % UInt64(targets.count))], headers: headers)
            guard case .success(let facts) = RequestHeadValidator.check(&head, maxBodyBytes: 1_000) else { continue }
            passed += 1
            let context = "\(head)"
            XCTAssertEqual(facts.host, head.headers.first(name: "host"), context)
            XCTAssertEqual(facts.contentLength, head.headers.first(name: "content-length").flatMap { Int64($0) }, context)
            XCTAssertEqual(facts.chunked, head.headers.contains(name: "transfer-encoding"), context)
            XCTAssertEqual(facts.hasExpect, head.headers.contains(name: "expect"), context)
            XCTAssertEqual(facts.hasHopByHop, head.headers.contains { ProxyHeaders.isHopByHop($0.name) }, context)
        }
        XCTAssertGreaterThan(passed, 500, "few heads passed the checks")
    }

    /// The check on a parsed head's bytes (what the proxy runs) and the check on NIO's type agree on every
    /// seeded random head: the same refusal, or the same facts and the same normal form; and the bytes' own
    /// path (`usualFacts`, no String check) decides enough of them.
    func testTheCheckOnBytesAgreesWithTheCheckOnStrings() {
        var random = SeededRandom(seed: 0xB17E_5EED)
        let fields: [(String, String)] = [
            ("Host", "a.example"), ("host", "b.example:8443"), ("HOST", "bad host"), ("Host", ""), ("Content-Length", "5"),
            ("content-length", "05"), ("Content-Length", "0"), ("Content-Length", "2000"), ("Transfer-Encoding", "chunked"),
            ("transfer-encoding", "gzip, chunked"), ("Expect", "100-continue"), ("Connection", "close"), ("TE", "trailers"),
            ("Upgrade", "h2c"), ("Keep-Alive", "5"), ("X-Foo", "1"), ("Accept", "*/*"), ("X-Caf", "caf\u{e9}"),
        ]
        let targets = ["/", "/a?b", "/a#f", "http://c.example:80/x", "*", "https://d.example", "/p?q=\u{e9}"]
        let methods: [HTTPMethod] = [.GET, .POST, .OPTIONS, .HEAD, .CONNECT]
        var usual = 0
        for _ in 0..<5_000 {
            var headers = HTTPHeaders()
            for _ in 0..<Int(random.next() % 5) {
                let field = fields[Int(random.next() % UInt64(fields.count))]
                headers.add(name: field.0, value: field.1)
            }
            var strings = HTTPRequestHead(
                version: random.next() % 4 == 0 ? .http1_0 : .http1_1, method: methods[Int(random.next() % UInt64(methods.count))],
                uri: targets[Int(random.next() % UInt64(targets.count))], headers: headers)
            var bytes = ClientRequestHead(strings)
            let before = bytes
            if RequestHeadValidator.usualFacts(bytes, maxBodyBytes: 1_000) != nil { usual += 1 }
            let context = "\(strings)"
            let onBytes = RequestHeadValidator.check(&bytes, maxBodyBytes: 1_000)
            let onStrings = RequestHeadValidator.check(&strings, maxBodyBytes: 1_000)
            XCTAssertEqual(onBytes, onStrings, context)
            if case .success = onStrings {
                XCTAssertEqual(bytes, ClientRequestHead(strings), context)
            } else {
                XCTAssertEqual(bytes, before, "a refused head is left as it was: \(context)")
            }
        }
        XCTAssertGreaterThan(usual, 250, "the bytes' own path took few heads")
    }

    func testAbsoluteFormBecomesOriginFormWithTheAuthorityAsHost() {
        let (head, refusal) = check("http://other.example:8080/x?y=1", [("Host", "localhost")])
        XCTAssertNil(refusal)
        XCTAssertEqual(head.uri, "/x?y=1")
        XCTAssertEqual(head.headers[canonicalForm: "host"], ["other.example:8080"])
        XCTAssertEqual(check("HTTPS://h", [("host", "h")]).0.uri, "/")
        XCTAssertEqual(check("http://h?q", []).0.uri, "/?q", "HTTP/1.1 without Host is fine when the target has the authority")
        XCTAssertEqual(check("http://u@h/", [("host", "h")]).1?.status, .badRequest, "userinfo")
        XCTAssertEqual(check("http:///x", [("host", "h")]).1?.status, .badRequest, "empty authority")
        XCTAssertEqual(check("ftp://h/x", [("host", "h")]).1?.status, .badRequest)
        XCTAssertEqual(check("x", [("host", "h")]).1?.status, .badRequest)
        XCTAssertEqual(check("http://a/", [("host", "a"), ("host", "b")]).1?.status, .badRequest, "repeated Host, even with absolute-form")
    }

    func testHostMustBeOneAuthority() {
        for bad in ["attacker.example, api.corp.example", "a b", "a:80:90", "a:x", "[::1", "[zz]", "a/b", "@a"] {
            XCTAssertEqual(check("/", [("host", bad)]).1, .init(.badRequest, "invalid Host header\n"), bad)
        }
        for good in ["a.example", "a.example:8443", "127.0.0.1:80", "[::1]:443", "[::1]", "under_score.test", ""] {
            XCTAssertNil(check("/", [("host", good)]).1, good)
        }
    }

    func testFragmentsConnectAndAsterisk() {
        XCTAssertEqual(check("/a#b", [("host", "h")]).1, .init(.badRequest, "fragment in request target\n"))
        XCTAssertEqual(check(.CONNECT, "h:443", [("host", "h")]).1?.status, .methodNotAllowed)
        XCTAssertNil(check(.OPTIONS, "*", [("host", "h")]).1)
        XCTAssertEqual(check(.GET, "*", [("host", "h")]).1?.status, .badRequest)
    }

    func testContentLengthMustBeOneCanonicalNumber() {
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "9223372036854775813")]).1, .init(.badRequest, "invalid Content-Length\n"))
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "+5")]).1?.status, .badRequest)
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "5, 6")]).1?.status, .badRequest)
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "")]).1?.status, .badRequest)
        let (same, none) = check(.POST, "/", [("host", "h"), ("content-length", "5, 5"), ("content-length", "05")])
        XCTAssertNil(none)
        XCTAssertEqual(same.headers["content-length"], ["5"], "one canonical value")
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "7 ")]).0.headers["content-length"], ["7"], "no trailing space forwarded")
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("content-length", "1001")]).1?.status, .payloadTooLarge)
    }

    func testOnlyChunkedTransferCodingOnHTTP11() {
        XCTAssertNil(check(.POST, "/", [("host", "h"), ("transfer-encoding", " Chunked ")]).1)
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("transfer-encoding", "gzip, chunked")]).1?.status, .notImplemented)
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]).1?.status, .notImplemented)
        XCTAssertEqual(check(.POST, "/", [("host", "h"), ("transfer-encoding", "chunked"), ("content-length", "3")]).1?.status, .badRequest)
        XCTAssertEqual(check(.POST, "/", [("transfer-encoding", "chunked")], version: .http1_0).1?.status, .badRequest)
        XCTAssertEqual(check(.GET, "/", [], version: .init(major: 2, minor: 0)).1?.status, .httpVersionNotSupported)
    }

    func testConnectionCannotRemoveHostOrContentLength() {
        var headers = HTTPHeaders([("Host", "h"), ("Content-Length", "3"), ("Connection", "host, content-length, x-drop"), ("X-Drop", "1"), ("X-Keep", "1")])
        ProxyHeaders.removeHopByHop(&headers)
        XCTAssertEqual(headers.map(\.name), ["Host", "Content-Length", "X-Keep"])
    }

    func testAHopByHopHeaderAPluginAddsIsStillRemovedUpstream() {
        // The plugins' view is already free of hop-by-hop headers, so the upstream head skips the second pass,
        // unless a plugin put one back.
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["host": "h"])
        let quiet = PluginRequest(connection: connection, head: head)
        _ = quiet.setHeader("x-id", "1", mode: .set)
        XCTAssertFalse(quiet.addedHopByHop)
        let noisy = PluginRequest(connection: connection, head: head)
        _ = noisy.setHeader("Connection", "x-id", mode: .add)
        XCTAssertTrue(noisy.addedHopByHop)
        let upstream = ProxyHeaders.upstreamRequest(noisy.head, clientIP: "1.2.3.4", scheme: "http", localPort: nil, hasBody: false,
                                                    hopByHopRemoved: !noisy.addedHopByHop)
        XCTAssertFalse(upstream.fields.contains { $0.0.lowercased() == "connection" })
        // A blocking plugin works on a private copy: what it did comes back with the copy.
        let original = PluginRequest(connection: connection, head: head)
        let copy = original.copyForBlockingCall()
        _ = copy.setHeader("upgrade", "websocket", mode: .set)
        original.adopt(copy)
        XCTAssertTrue(original.addedHopByHop)
    }

    /// The authority check over bytes answers as the Substring formulation it replaced (kept here as the
    /// reference) for random strings over the bytes that matter, and for the usual ones.
    func testTheAuthorityCheckAnswersAsItsReference() {
        func reference(_ text: Substring) -> Bool {
            var host = text.utf8[...]
            if host.first == UInt8(ascii: "[") {
                guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return false }
                let literal = host[host.index(after: host.startIndex)..<close]
                guard !literal.isEmpty, literal.allSatisfy({ $0 == 58 || $0 == 46 || ($0 >= 48 && $0 <= 57) || ($0 | 0x20 >= 97 && $0 | 0x20 <= 102) }) else { return false }
                host = host[host.index(after: close)...]
                if host.isEmpty { return true }
                guard host.first == UInt8(ascii: ":") else { return false }
                let port = host.dropFirst()
                return !port.isEmpty && port.count <= 5 && port.allSatisfy { $0 >= 48 && $0 <= 57 }
            }
            var name = host
            if let colon = host.firstIndex(of: UInt8(ascii: ":")) {
                let port = host[host.index(after: colon)...]
                guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
                name = host[..<colon]
            }
            return !name.isEmpty && name.allSatisfy { byte in
                (byte >= 48 && byte <= 57) || (byte | 0x20 >= 97 && byte | 0x20 <= 122) || byte == 45 || byte == 46 || byte == 95
            }
        }
        var random = SeededRandom(seed: 0x5EED_0012)
        let pieces = ["[", "]", ":", ".", "a", "F", "g", "z", "0", "9", "-", "_", " ", ",", "@", "\u{e9}", "::1", "443", "123456", "localhost"]
        var accepted = 0
        var samples = ["", "localhost", "localhost:8443", "[::1]", "[::1]:443", "[]", "[::1]x", "a:", ":80", "a:123456", "b\u{e9}", "x:8:8", "[g::1]"]
        for _ in 0..<20_000 {
            samples.append((0..<Int(random.next() % 7)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined())
        }
        for sample in samples {
            // Also as a slice of a longer string, as Host values arrive.
            let longer = "x" + sample + "y"
            let slice = longer.dropFirst().dropLast()
            XCTAssertEqual(RequestHeadValidator.isAuthority(slice), reference(slice), "'\(sample)'")
            XCTAssertEqual(RequestHeadValidator.isAuthority(Substring(sample)), reference(Substring(sample)), "'\(sample)'")
            if reference(Substring(sample)) { accepted += 1 }
        }
        XCTAssertGreaterThan(accepted, 1000)
    }
}
