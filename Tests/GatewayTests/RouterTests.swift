import GatewayCore
import GatewayTooling
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
