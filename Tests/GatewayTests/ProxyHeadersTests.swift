import GatewayCore
import GatewayPluginKit
import NIOCore
import NIOHTTP1
import XCTest

/// `ProxyHeaders` builds the upstream and downstream header lists in one pass; these tests hold it to the plain
/// formulation (copy the headers, then NIO's `remove(name:)` once per name to drop) on seeded random heads whose
/// names are drawn mostly from the ones the rewrite treats specially, in random case.
final class ProxyHeadersTests: XCTestCase {
    /// The rewrite as it was written before the one-pass version, with NIO's own header operations.
    private static func referenceUpstream(_ head: HTTPRequestHead, adding extra: [(String, String)], clientIP: String, localPort: Int?, hasBody: Bool) -> [(String, String)] {
        var headers = head.headers
        headers.add(contentsOf: HTTPHeaders(extra))
        let host = headers.first(name: "host")
        referenceRemoveHopByHop(&headers)
        headers.remove(name: "expect")
        var added: [(String, String)] = []
        if hasBody && !headers.contains(name: "content-length") {
            headers.remove(name: "transfer-encoding")
            added.append(("transfer-encoding", "chunked"))
        }
        let previous = headers[canonicalForm: "x-forwarded-for"].joined(separator: ", ")
        headers.remove(name: "x-forwarded-for")
        added.append(("x-forwarded-for", previous.isEmpty ? clientIP : "\(previous), \(clientIP)"))
        headers.remove(name: "x-forwarded-proto")
        added.append(("x-forwarded-proto", "https"))
        headers.remove(name: "x-forwarded-port")
        if let localPort { added.append(("x-forwarded-port", String(localPort))) }
        headers.remove(name: "x-forwarded-host")
        if let host { added.append(("x-forwarded-host", host)) }
        return headers.map { ($0.name, $0.value) } + added
    }

    private static let hopByHop = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization"]

    private static func referenceRemoveHopByHop(_ headers: inout HTTPHeaders) {
        var names = hopByHop
        for value in headers[canonicalForm: "connection"] {
            let token = value.lowercased()
            if !token.isEmpty, !["close", "keep-alive", "host", "content-length"].contains(token) { names.append(String(value)) }
        }
        for name in names { headers.remove(name: name) }
    }

    private static let names = hopByHop + [
        "host", "expect", "content-length", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-host",
        "x-a", "x-b", "user-agent", "accept", "x-client-cert-subject",
    ]

    private func randomHeaders(_ random: inout SeededRandom, count: Int) -> [(String, String)] {
        func pick(_ list: [String]) -> String { list[Int(random.next() % UInt64(list.count))] }
        func randomCase(_ text: String) -> String {
            String(text.map { random.next() % 3 == 0 ? Character($0.uppercased()) : $0 })
        }
        return (0..<count).map { _ in
            let name = randomCase(pick(Self.names))
            let value: String
            if name.lowercased() == "connection" {
                // Tokens that name other headers of the head, options, and the names Connection may not remove.
                value = (0..<(1 + Int(random.next() % 3))).map { _ in randomCase(pick(["close", "keep-alive", "x-a", "x-b", "host", "content-length", "upgrade", "x-forwarded-for", " x-b "])) }
                    .joined(separator: random.next() % 2 == 0 ? "," : ", ")
            } else if name.lowercased() == "x-forwarded-for" {
                value = pick(["10.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.3,10.0.0.4", ""])
            } else {
                value = pick(["1", "v", "a b", "100-continue", "chunked"])
            }
            return (name, value)
        }
    }

    func testTheOnePassUpstreamHeadEqualsTheRemoveByNameFormulation() {
        var random = SeededRandom(seed: 0x5EED_0002)
        for _ in 0..<3000 {
            let headers = randomHeaders(&random, count: Int(random.next() % 12))
            let extra = randomHeaders(&random, count: Int(random.next() % 3))
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/p", headers: HTTPHeaders(headers))
            let hasBody = random.next() % 2 == 0
            let port: Int? = random.next() % 4 == 0 ? nil : 8443
            let upstream = ProxyHeaders.upstreamRequest(head, adding: HeaderBlock(extra), clientIP: "192.0.2.7", scheme: "https", localPort: port, hasBody: hasBody)
            let expected = Self.referenceUpstream(head, adding: extra, clientIP: "192.0.2.7", localPort: port, hasBody: hasBody)
            XCTAssertEqual(upstream.fields.map { "\($0.0): \($0.1)" }, expected.map { "\($0.0): \($0.1)" }, "for \(headers) + \(extra)")
            XCTAssertEqual(upstream.head.version, .http1_1)
        }
    }

    /// With plugins the head reaches `upstreamRequest` without hop-by-hop headers (and a plugin that adds one
    /// turns `hopByHopRemoved` off); the headers they added stay the bytes they were when no rule applies to
    /// any of them, and the fields are the same as the reference's either way.
    func testAddedHeadersStayBytesUnlessARuleAppliesToOne() {
        var random = SeededRandom(seed: 0x5EED_0006)
        var keptAsBytes = 0
        var takenAsStrings = 0
        for _ in 0..<3000 {
            var headers = HTTPHeaders(randomHeaders(&random, count: Int(random.next() % 12)))
            ProxyHeaders.removeHopByHop(&headers)
            let extra = randomHeaders(&random, count: Int(random.next() % 4)).filter { !Self.hopByHop.contains($0.0.lowercased()) }
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/p", headers: headers)
            let upstream = ProxyHeaders.upstreamRequest(
                head, adding: HeaderBlock(extra), clientIP: "192.0.2.7", scheme: "https", localPort: 8443, hasBody: false, hopByHopRemoved: true
            )
            let expected = Self.referenceUpstream(head, adding: extra, clientIP: "192.0.2.7", localPort: 8443, hasBody: false)
            XCTAssertEqual(upstream.fields.map { "\($0.0): \($0.1)" }, expected.map { "\($0.0): \($0.1)" }, "for \(headers) + \(extra)")
            let special = ["host", "content-length", "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-host"]
            if extra.contains(where: { special.contains($0.0.lowercased()) }) {
                XCTAssertTrue(upstream.added.isEmpty, "a rule applies: the added headers were taken as Strings")
                takenAsStrings += 1
            } else if !extra.isEmpty {
                XCTAssertEqual(upstream.added, HeaderBlock(extra), "no rule applies: the added headers go as their bytes")
                keptAsBytes += 1
            }
        }
        XCTAssertGreaterThan(keptAsBytes, 300)
        XCTAssertGreaterThan(takenAsStrings, 300)
    }

    func testRemovingHopByHopInOnePassEqualsRemovingByName() {
        var random = SeededRandom(seed: 0x5EED_0003)
        for _ in 0..<3000 {
            let list = randomHeaders(&random, count: Int(random.next() % 12))
            var fast = HTTPHeaders(list)
            ProxyHeaders.removeHopByHop(&fast)
            var reference = HTTPHeaders(list)
            Self.referenceRemoveHopByHop(&reference)
            XCTAssertEqual(fast.map { "\($0.name): \($0.value)" }, reference.map { "\($0.name): \($0.value)" }, "for \(list)")
            // The same on a client's head as bytes (what plugins see).
            let bytes = ClientRequestHead(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: HTTPHeaders(list))).removingHopByHop()
            XCTAssertEqual(bytes.fields.fields.map { "\($0.0): \($0.1)" }, reference.map { "\($0.name): \($0.value)" }, "bytes, for \(list)")
        }
    }

    /// A head parsed from `fields` as a backend's response, with or without its hop-by-hop fields.
    private static func parseResponse(_ fields: [(String, String)], version: String, dropHopByHop: Bool) -> (HTTPResponseHead, HTTP1ConnectionOptions)? {
        var parser = HTTP1ResponseParser(maxHeadBytes: 16 * 1024, maxFields: 100)
        parser.heads.dropsHopByHop = dropHopByHop
        parser.heads.requestSent(isHEAD: false)
        let text = "\(version) 200 OK\r\n" + fields.map { "\($0.0): \($0.1)\r\n" }.joined() + "content-length: 0\r\n\r\n"
        parser.append(ByteBuffer(string: text))
        guard case .head(let head)? = try? parser.next() else { return nil }
        return (head.nioHead, parser.heads.lastConnection)
    }

    /// What the Connection fields say is read from the bytes while parsing; the keep-alive decision is NIO's
    /// `isKeepAlive` on the whole head, and the response a client gets is the one the String-based removal of
    /// hop-by-hop fields made (`removeHopByHop`, itself held to the remove-by-name formulation above) from the
    /// head parsed whole.
    func testAResponseParsedWithoutItsHopByHopFieldsIsTheOneTheStringRemovalMade() {
        var random = SeededRandom(seed: 0x5EED_0004)
        let elements = ["close", "Close", "keep-alive", "Keep-Alive", "KEEP-ALIVE", "upgrade", "x-a", "X-B", "", " ", "\tclose ", "keep-alive\t", "closed", "host", "content-length"]
        var decided: [Bool: Int] = [:]
        var listedSome = 0
        for _ in 0..<4000 {
            var list = randomHeaders(&random, count: Int(random.next() % 8)).filter {
                // The parser refuses these in a response that also has a length (the test's content-length).
                !["transfer-encoding", "content-length"].contains($0.0.lowercased()) && !$0.1.isEmpty
            }
            for _ in 0..<Int(random.next() % 3) {
                let value = (0..<(1 + Int(random.next() % 3))).map { _ in elements[Int(random.next() % UInt64(elements.count))] }
                    .joined(separator: random.next() % 2 == 0 ? "," : ", ")
                list.insert((random.next() % 2 == 0 ? "Connection" : "connection", value), at: Int(random.next() % UInt64(list.count + 1)))
            }
            for version in ["HTTP/1.0", "HTTP/1.1"] {
                guard let (whole, _) = Self.parseResponse(list, version: version, dropHopByHop: false),
                    let (dropped, options) = Self.parseResponse(list, version: version, dropHopByHop: true) else {
                    return XCTFail("not parsed: \(list)")
                }
                XCTAssertEqual(options.isKeepAlive(version: dropped.version), whole.isKeepAlive, "for \(version) \(list)")
                decided[whole.isKeepAlive, default: 0] += 1
                if !options.listed.isEmpty { listedSome += 1 }
                for close in [false, true] {
                    var expected = whole.headers
                    ProxyHeaders.removeHopByHop(&expected)
                    if close { expected.add(name: "connection", value: "close") }
                    let made = ProxyHeaders.downstreamResponse(dropped, removing: options.listed, version: .http1_1, close: close)
                    XCTAssertEqual(made.headers.map { "\($0.name): \($0.value)" }, expected.map { "\($0.name): \($0.value)" }, "for \(list)")
                }
            }
        }
        // Both decisions and listed names came up often: the comparison covered them.
        XCTAssertGreaterThan(decided[true] ?? 0, 1000)
        XCTAssertGreaterThan(decided[false] ?? 0, 1000)
        XCTAssertGreaterThan(listedSome, 500)
    }

    /// Names in Connection match fields by ASCII case only: a KELVIN SIGN (U+212A, which Unicode lowercases to
    /// `k`) names no `X-Key`.
    func testConnectionNamesMatchFieldsByASCIICaseOnly() throws {
        let fields = [("Connection", "X-\u{212A}ey, x-OTHER"), ("X-Key", "kept"), ("X-Other", "gone")]
        let (head, options) = try XCTUnwrap(Self.parseResponse(fields, version: "HTTP/1.1", dropHopByHop: true))
        let kept = ProxyHeaders.downstreamResponse(head, removing: options.listed, version: .http1_1, close: false)
        XCTAssertEqual(kept.headers.map { "\($0.name): \($0.value)" }, ["X-Key: kept", "content-length: 0"])
    }

    func testAResponseLosesItsHopByHopHeadersAndSaysCloseWhenItCloses() throws {
        let fields = [("Connection", "keep-alive, X-Internal"), ("Keep-Alive", "timeout=5"), ("X-Internal", "1"), ("Server", "nginx")]
        let (head, options) = try XCTUnwrap(Self.parseResponse(fields, version: "HTTP/1.1", dropHopByHop: true))
        XCTAssertEqual(head.headers.map(\.name), ["X-Internal", "Server", "content-length"], "hop-by-hop fields are not in the parsed head")
        XCTAssertEqual(options.listed, ["X-Internal"])
        XCTAssertTrue(options.isKeepAlive(version: head.version))
        let kept = ProxyHeaders.downstreamResponse(head, removing: options.listed, version: .http1_0, close: true)
        XCTAssertEqual(kept.headers.map { "\($0.name): \($0.value)" }, ["Server: nginx", "content-length: 0", "connection: close"])
        XCTAssertEqual(kept.version, .http1_0)
        let (untouched, none) = try XCTUnwrap(Self.parseResponse([], version: "HTTP/1.1", dropHopByHop: true))
        XCTAssertEqual(none, HTTP1ConnectionOptions())
        XCTAssertEqual(ProxyHeaders.downstreamResponse(untouched, removing: none.listed, version: .http1_1, close: false).headers.map(\.name), ["content-length"])
    }
}

/// Plugins read the request head and the headers earlier plugins added where they are (not joined into a copy).
final class PluginRequestHeaderTests: XCTestCase {
    func testPluginsReadAddedHeadersByNameAndIndexAsIfJoined() {
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/a?b=1", headers: ["Host": "h", "X-Id": "client"])
        let request = PluginRequest(connection: connection, head: head)
        _ = request.setHeader("x-id", "plugin", mode: .add)
        _ = request.setHeader("X-Other", "o", mode: .add)
        func value(_ name: String, _ index: Int) -> String? {
            var out = gw_str()
            guard request.header(name, index: index, arena: PluginArena.current, into: &out) == GW_OK else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: out.ptr, count: out.len), as: UTF8.self)
        }
        func entry(_ index: Int) -> String? {
            var name = gw_str()
            var value = gw_str()
            guard request.header(at: index, arena: PluginArena.current, name: &name, value: &value) == GW_OK else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: name.ptr, count: name.len), as: UTF8.self) + ": "
                + String(decoding: UnsafeRawBufferPointer(start: value.ptr, count: value.len), as: UTF8.self)
        }
        XCTAssertEqual([value("X-ID", 0), value("x-id", 1), value("x-id", 2), value("x-other", 0), value("HOST", 0)], ["client", "plugin", nil, "o", "h"])
        XCTAssertEqual((0..<5).map(entry), ["Host: h", "X-Id: client", "x-id: plugin", "X-Other: o", nil])
        // The joined head says the same.
        XCTAssertEqual(request.head.headers.map { "\($0.name): \($0.value)" }, ["Host: h", "X-Id: client", "x-id: plugin", "X-Other: o"])
        XCTAssertTrue(request.headAndAdded.added.isEmpty, "reading `head` joins the added headers")
    }

    /// The one-pass writer of the usual upstream head (`writeUpstreamRequest`) writes the bytes that
    /// `upstreamRequest` and the upstream encoder write, with the same framing, on seeded random heads, and
    /// declines the rest; it takes a good share of them (the test would pass vacuously otherwise).
    func testTheOnePassUpstreamWriterWritesWhatTheGeneralPathWrites() {
        var generator = SeededRandom(seed: 0x5eed_0b1e)
        let methods: [HTTPMethod] = [.GET, .GET, .GET, .HEAD, .POST, .PUT, .PATCH, .DELETE, .OPTIONS, .TRACE, .CONNECT, .RAW(value: "PURGE"), .RAW(value: "TRACE")]
        let uris = ["/", "/a?b=c", "/x/y%20z", "*"]
        let fields: [(String, String)] = [
            ("Host", "example.com"), ("host", "h:8443"), ("Content-Length", "5"), ("content-length", "0"), ("Transfer-Encoding", "chunked"),
            ("X-Forwarded-For", "1.2.3.4"), ("x-forwarded-proto", "http"), ("X-Forwarded-Host", "evil"), ("X-FORWARDED-PORT", "1"),
            ("Connection", "keep-alive"), ("connection", "x-foo, close"), ("X-Foo", "bar"), ("TE", "trailers"), ("Expect", "100-continue"),
            ("Upgrade", "h2c"), ("Keep-Alive", "timeout=5"), ("Accept", "*/*"), ("User-Agent", "curl/8.0 (x86_64) caf\u{e9}"),
            ("Proxy-Authorization", "Basic x"), ("Trailer", "x"), ("x_forwarded_for", "9.9.9.9"), ("Cookie", ""),
        ]
        let addable: [(String, String)] = [
            ("x-client-subject", "CN=a,O=b"), ("x-amzn-mtls-clientcert-serial-number", "01AB"), ("x-foo", "plugin"),
            ("Host", "other"), ("x-forwarded-for", "5.6.7.8"), ("Connection", "close"), ("content-length", "9"), ("x-forwarded-proto", "https"),
            ("te", "trailers"), ("Transfer-Encoding", "chunked"), ("expect", "100-continue"), ("X-Forwarded-Host", "h"), ("x-forwarded-port", "1"),
        ]
        var taken = 0
        let rounds = 5_000
        for _ in 0..<rounds {
            let method = methods.randomElement(using: &generator)!
            var headers = HTTPHeaders()
            for _ in 0..<Int.random(in: 0...7, using: &generator) {
                let field = fields.randomElement(using: &generator)!
                headers.add(name: field.0, value: field.1)
            }
            let version: HTTPVersion = Int.random(in: 0..<5, using: &generator) == 0 ? .http1_0 : .http1_1
            let head = HTTPRequestHead(version: version, method: method, uri: uris.randomElement(using: &generator)!, headers: headers)
            var added = HeaderBlock()
            if Bool.random(using: &generator) {
                for _ in 0..<Int.random(in: 1...3, using: &generator) {
                    // Mostly identity headers, as plugins add them.
                    let field = Int.random(in: 0..<4, using: &generator) == 0 ? addable.randomElement(using: &generator)! : addable[Int.random(in: 0..<2, using: &generator)]
                    added.append(name: field.0, value: field.1)
                }
            }
            let clientIP = Bool.random(using: &generator) ? "127.0.0.1" : "2001:db8::1"
            let scheme = Bool.random(using: &generator) ? "https" : "http"
            let localPort = [nil, 0, 7, 443, 8443, 65535].randomElement(using: &generator)!
            let hasBody = Bool.random(using: &generator)
            let hopByHopRemoved = Int.random(in: 0..<4, using: &generator) != 0
            let general = UpstreamRequestEncoder.serialize(
                ProxyHeaders.upstreamRequest(head, adding: added, clientIP: clientIP, scheme: scheme, localPort: localPort, hasBody: hasBody, hopByHopRemoved: hopByHopRemoved),
                allocator: ByteBufferAllocator())
            guard let onePass = ProxyHeaders.writeUpstreamRequest(
                ClientRequestHead(head), adding: added, clientIP: clientIP, scheme: scheme, localPort: localPort, hasBody: hasBody, hopByHopRemoved: hopByHopRemoved,
                allocator: ByteBufferAllocator())
            else { continue }
            taken += 1
            let context = "\(head) added \(added.fields) hasBody \(hasBody) hopByHopRemoved \(hopByHopRemoved) port \(String(describing: localPort))"
            XCTAssertEqual(String(buffer: onePass.head), String(buffer: general.0), context)
            XCTAssertEqual(onePass.chunked, general.1 == .chunked, context)
            if String(buffer: onePass.head) != String(buffer: general.0) { return }
        }
        XCTAssertGreaterThan(taken, rounds / 5, "the one-pass writer declined almost every head")

        // The usual heads are taken: a browser's GET without plugins (Connection: keep-alive names nothing),
        // a GET with identity headers plugins added, a GET with a chunked body, a POST with a length.
        var identity = HeaderBlock()
        identity.append(name: "x-client-subject", value: "CN=a")
        let usual: [(HTTPRequestHead, HeaderBlock, Bool, Bool)] = [
            (HTTPRequestHead(version: .http1_1, method: .GET, uri: "/", headers: ["Host": "a", "Connection": "keep-alive", "Accept": "*/*"]), HeaderBlock(), false, false),
            (HTTPRequestHead(version: .http1_0, method: .GET, uri: "/", headers: ["Host": "a", "Connection": "keep-alive"]), HeaderBlock(), false, false),
            (HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x", headers: ["Host": "a"]), identity, false, true),
            (HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x", headers: ["Host": "a", "Transfer-Encoding": "chunked"]), identity, true, true),
            (HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x", headers: ["Host": "a", "Content-Length": "3"]), identity, true, true),
        ]
        for (head, added, hasBody, hopByHopRemoved) in usual {
            XCTAssertNotNil(
                ProxyHeaders.writeUpstreamRequest(
                    ClientRequestHead(head), adding: added, clientIP: "127.0.0.1", scheme: "https", localPort: 443, hasBody: hasBody, hopByHopRemoved: hopByHopRemoved,
                    allocator: ByteBufferAllocator()),
                "\(head)")
        }
    }
}
