import GatewayCore
import GatewayTooling
import NIOHTTP1
import XCTest

final class RouterTests: XCTestCase {
    func testHostNormalisation() {
        XCTAssertEqual(Router.normaliseHost("API.Example.com:8443"), "api.example.com")
        XCTAssertEqual(Router.normaliseHost("[::1]:443"), "[::1]")
        XCTAssertEqual(Router.normaliseHost("example.com."), "example.com")
        XCTAssertEqual(Router.path(of: "/a/b?x=1"), "/a/b")
        XCTAssertEqual(Router.path(of: "https://h/x/y?q"), "/x/y")
        XCTAssertEqual(Router.path(of: "https://h"), "/")
        XCTAssertEqual(Router.path(of: "/a#frag?x"), "/a")
        XCTAssertEqual(Router.path(of: "*"), "*")
        XCTAssertEqual(Router.path(of: "/caf\u{e9}/x?y"), "/caf\u{e9}/x")
        XCTAssertEqual(Router.normaliseHost("Example.COM.:80"), "example.com")
        XCTAssertEqual(Router.normaliseHost(""), "")
        XCTAssertEqual(Router.normaliseHost("[::1]"), "[::1]")
        XCTAssertEqual(Router.normaliseHost("h\u{e9}.test:1"), "h\u{e9}.test")
    }

    /// The byte-level host and path reading agrees with reading by the strings' UTF-8 views (the code it
    /// replaced, kept here as the reference) on random texts made of the delimiters, letters of both cases,
    /// digits and a non-ASCII letter.
    func testHostAndPathOverBytesAgreeWithTheUTF8ViewReading() {
        func referenceHost(_ raw: String) -> String {
            let utf8 = raw.utf8
            var end = utf8.endIndex
            if utf8.first == UInt8(ascii: "[") {
                if let close = utf8.firstIndex(of: UInt8(ascii: "]")) { end = utf8.index(after: close) }
            } else if let colon = utf8.lastIndex(of: UInt8(ascii: ":")) {
                end = colon
            }
            if end > utf8.startIndex, utf8[utf8.index(before: end)] == UInt8(ascii: ".") { end = utf8.index(before: end) }
            return String(raw[utf8.startIndex..<end]).lowercased()
        }
        func referencePath(_ uri: String) -> String? {
            guard uri.utf8.first == UInt8(ascii: "/") else { return nil }
            let end = uri.utf8.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? uri.utf8.endIndex
            return String(uri[..<end])
        }
        let pieces = ["a", "Z", "e", "Q", "0", "9", ".", ":", "[", "]", "/", "?", "#", "\u{e9}", "-", "_"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let text = (0..<Int.random(in: 0...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            XCTAssertEqual(String(Router.normaliseHost(text)), referenceHost(text), "host \(text.debugDescription)")
            if let path = referencePath(text) { XCTAssertEqual(String(Router.path(of: text)), path, "path \(text.debugDescription)") }
            let slash = "/" + text
            XCTAssertEqual(String(Router.path(of: slash)), referencePath(slash), "path \(slash.debugDescription)")
        }
    }

    /// Routing over bytes (what the proxy runs) picks the route routing over Strings picks, on seeded random
    /// hosts and origin-form targets against routes of every kind.
    func testRoutingOverBytesAgreesWithRoutingOverStrings() {
        let metrics = GatewayMetrics()
        func group(_ name: String) -> BackendGroup {
            BackendGroup(
                name: name, entries: [], balance: .roundRobin, tlsContext: nil, serverName: nil, connectTimeout: .seconds(1),
                responseTimeout: .seconds(1), metrics: metrics)
        }
        var matchers: [RouteMatcher] = []
        for host in [RouteMatcher.HostPattern.any, .exact("a.example"), .exact("[::1]"), .suffix(".example")] {
            for (prefix, exact) in [(nil, nil), ("/v1/", nil), (nil, "/health"), ("/", nil)] as [(String?, String?)] {
                for methods in [nil, Set(["GET"])] as [Set<String>?] {
                    var matcher = RouteMatcher()
                    matcher.host = host
                    matcher.pathPrefix = prefix
                    matcher.pathExact = exact
                    matcher.methods = methods
                    matchers.append(matcher)
                }
            }
        }
        let hosts = ["a.example", "A.Example:8443", "b.a.example.", "example", "[::1]:443", ":80", "", "x.EXAMPLE", "caf\u{e9}.example"]
        let targets = ["/", "/v1/x?q", "/health", "/health/x", "/v1#f", "*", "/h?/v1/", "/caf\u{e9}"]
        var random = SeededRandom(seed: 0x0A7E_5EED)
        for _ in 0..<2_000 {
            var routes: [Router.Route] = []
            for index in 0..<Int(1 + random.next() % 4) {
                routes.append(Router.Route(matcher: matchers[Int(random.next() % UInt64(matchers.count))], backend: group("g\(index)")))
            }
            let router = Router(routes: routes)
            var host: String? = random.next() % 8 == 0 ? nil : hosts[Int(random.next() % UInt64(hosts.count))]
            var target = targets[Int(random.next() % UInt64(targets.count))]
            let method: HTTPMethod = random.next() % 2 == 0 ? .GET : .POST
            let onStrings = router.route(hostHeader: host, uri: target, method: method.rawValue)?.name
            let onBytes = target.withUTF8 { target in
                guard host != nil else { return router.route(host: nil, target: UnsafeRawBufferPointer(target), method: method)?.name }
                return host!.withUTF8 { router.route(host: UnsafeRawBufferPointer($0), target: UnsafeRawBufferPointer(target), method: method)?.name }
            }
            XCTAssertEqual(onBytes, onStrings, "\(String(describing: host)) \(target) \(method) \(routes.map(\.matcher))")
        }
    }

    func testMatcher() {
        var m = RouteMatcher()
        m.host = .suffix(".example.com")
        m.pathPrefix = "/v1/"
        m.methods = ["GET"]
        XCTAssertTrue(m.matches(host: "a.example.com", path: "/v1/x", method: "GET"))
        XCTAssertTrue(m.matches(host: "a.b.example.com", path: "/v1/x", method: "GET"))
        XCTAssertFalse(m.matches(host: "example.com", path: "/v1/x", method: "GET"))
        XCTAssertFalse(m.matches(host: "a.example.com", path: "/v2/x", method: "GET"))
        XCTAssertFalse(m.matches(host: "a.example.com", path: "/v1/x", method: "POST"))
        var exact = RouteMatcher()
        exact.pathExact = "/health"
        XCTAssertTrue(exact.matches(host: "x", path: "/health", method: "GET"))
        XCTAssertFalse(exact.matches(host: "x", path: "/health/x", method: "GET"))
    }
}

/// Routing through the real gateway: host, path and method rules in order, 404 when none matches.
final class RoutingIntegrationTests: XCTestCase {
    func testRoutesInOrderAnd404() async throws {
        let pki = try TestPKI()
        let api = TestBackend(name: "api"), web = TestBackend(name: "web"), admin = TestBackend(name: "admin")
        for b in [api, web, admin] { try await b.start() }
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                routes:
                  - { match: { host: "API.example.com", path_prefix: "/v1/" }, backend: api }
                  - { match: { host: "*.example.com", path_exact: "/admin", methods: [POST] }, backend: admin }
                  - { match: { host: "www.example.com" }, backend: web }
            backends:
              - { name: api, servers: [ { address: "127.0.0.1:\(api.port)" } ] }
              - { name: web, servers: [ { address: "127.0.0.1:\(web.port)" } ] }
              - { name: admin, servers: [ { address: "127.0.0.1:\(admin.port)" } ] }
            """, in: pki.directory)
        let port = gateway.port("plain")
        func via(_ method: String, _ host: String, _ path: String) async throws -> String? {
            let client = try await TestClient.connect(port: port, tls: nil)
            defer { Task { await client.close() } }
            try await client.send("\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nContent-Length: 0\r\n\r\n")
            let response = await client.readResponse()
            return response.map { $0.status == 200 ? ($0.header("x-backend") ?? "?") : String($0.status) }
        }
        let r1 = try await via("GET", "api.example.com:443", "/v1/users")
        XCTAssertEqual(r1, "api")
        let r2 = try await via("GET", "api.example.com", "/v2/users")
        XCTAssertEqual(r2, "404")
        let r3 = try await via("POST", "x.example.com", "/admin")
        XCTAssertEqual(r3, "admin")
        let r4 = try await via("GET", "x.example.com", "/admin")
        XCTAssertEqual(r4, "404")
        let r5 = try await via("GET", "WWW.example.com", "/anything")
        XCTAssertEqual(r5, "web")
        let r6 = try await via("GET", "other.org", "/")
        XCTAssertEqual(r6, "404")
        await gateway.stop()
        for b in [api, web, admin] { await b.stop() }
    }
}
