import GatewayCore
import NIOHTTP1
import PluginAPI
import XCTest

/// The request attributes plugins read through the host table, on the request's own bytes: the method (the
/// usual ones from constants), the path (from the target's bytes when it is origin-form), the query.
final class PluginRequestAttributeTests: XCTestCase {
    private func read(_ attribute: gw_attribute, method: HTTPMethod = .GET, uri: String) -> String? {
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let request = PluginRequest(connection: connection, head: HTTPRequestHead(version: .http1_1, method: method, uri: uri))
        return PluginCallContext.with(request.handle, request) { () -> String? in
            var out = gw_str(ptr: nil, len: 0)
            guard HostAPI.table.pointee.get_attribute(request.handle, attribute, 0, &out) == GW_OK else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: out.ptr, count: out.len), as: UTF8.self)
        }
    }

    func testPathIsTheTargetUpToItsQueryOrFragment() {
        let cases: [(String, String)] = [
            ("/", "/"), ("/a/b", "/a/b"), ("/a?b=1", "/a"), ("/a#frag", "/a"), ("/a?b#c", "/a"), ("/?", "/"),
            ("/\(String(repeating: "long/", count: 20))x?q", "/\(String(repeating: "long/", count: 20))x"),
            ("http://example.com/p?q", "/p"), ("http://example.com", "/"), ("*", Router.path(of: "*").description),
        ]
        for (uri, path) in cases {
            XCTAssertEqual(read(GW_ATTR_PATH, uri: uri), path, uri)
            XCTAssertEqual(read(GW_ATTR_PATH, uri: uri), String(Router.path(of: uri)), "as routing sees it: \(uri)")
        }
        XCTAssertEqual(read(GW_ATTR_QUERY, uri: "/a?b=1#c"), "b=1")
        XCTAssertNil(read(GW_ATTR_QUERY, uri: "/a"))
    }

    /// Host first (where clients put it: read without a walk), later, in another case, empty, absent.
    func testHostIsTheHostFieldWhereverItIs() {
        func host(_ fields: [(String, String)]) -> String? {
            let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            for (name, value) in fields { head.headers.add(name: name, value: value) }
            let request = PluginRequest(connection: connection, head: head)
            return PluginCallContext.with(request.handle, request) { () -> String? in
                var out = gw_str(ptr: nil, len: 0)
                guard HostAPI.table.pointee.get_attribute(request.handle, GW_ATTR_HOST, 0, &out) == GW_OK else { return nil }
                return String(decoding: UnsafeRawBufferPointer(start: out.ptr, count: out.len), as: UTF8.self)
            }
        }
        XCTAssertEqual(host([("Host", "a.example:8443"), ("accept", "*/*")]), "a.example:8443")
        XCTAssertEqual(host([("HOST", "b")]), "b")
        XCTAssertEqual(host([("accept", "*/*"), ("host", "c")]), "c")
        XCTAssertEqual(host([("Host", "")]), "")
        XCTAssertEqual(host([("hostx", "no"), ("host", "d")]), "d")
        XCTAssertEqual(host([("hos", "no")]), nil)
        XCTAssertNil(host([("accept", "*/*")]))
        XCTAssertNil(host([]))
    }

    func testMethodIsItsName() {
        let methods: [HTTPMethod] = [.GET, .POST, .PUT, .HEAD, .DELETE, .PATCH, .OPTIONS, .PROPFIND, .RAW(value: "BREW")]
        for method in methods {
            XCTAssertEqual(read(GW_ATTR_METHOD, method: method, uri: "/"), method.rawValue)
        }
    }
}
