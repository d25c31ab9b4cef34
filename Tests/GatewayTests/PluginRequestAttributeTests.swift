import GatewayCore
import GatewayPluginKit
import NIOCore
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
    /// ABI 1.6 `get_attributes`: every attribute number below 100, at index 0 and 1, read in one call is what
    /// the single reads answer (the integer ones by `get_attribute_int`), in each phase; a stale handle and a
    /// NULL list are refused with no entry written.
    func testBatchReadIsWhatTheSingleReadsAnswer() throws {
        let connection = ConnectionContext(
            listenerName: "l", isTLS: false, remoteAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 50123),
            localAddress: try SocketAddress(ipAddress: "127.0.0.1", port: 8443)
        )
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a/b?c=d")
        head.headers.add(name: "Host", value: "h.example")
        let request = PluginRequest(connection: connection, head: head)
        request.backendServer = "127.0.0.1:9000"
        request.bytesSent = 1234
        let host = HostAPI.table.pointee
        var found = 0
        for phase in [PluginRequest.Phase.request, .response, .complete] {
            request.phase = phase
            PluginCallContext.with(request.handle, request) {
                var entries: [gw_attribute_value] = []
                for attribute in gw_attribute(0)..<100 {
                    for index in UInt32(0)...1 {
                        entries.append(gw_attribute_value(attribute: attribute, index: index, status: 77, reserved: 0, text: gw_str(ptr: nil, len: 0), integer: 77))
                    }
                }
                XCTAssertEqual(host.get_attributes(request.handle, &entries, entries.count), GW_OK)
                for entry in entries {
                    let what = "attribute \(entry.attribute) index \(entry.index) in \(phase)"
                    // What the single reads answer, found without the host's own rule: the text read, else the
                    // integer read (index 0 only), else the text read's status.
                    var text = gw_str(ptr: nil, len: 0)
                    var integer: Int64 = 0
                    let textStatus = host.get_attribute(request.handle, entry.attribute, entry.index, &text)
                    let intStatus = entry.index == 0 ? host.get_attribute_int(request.handle, entry.attribute, &integer) : GW_ERR_NOT_FOUND
                    XCTAssertFalse(textStatus == GW_OK && intStatus == GW_OK, "\(what): one kind only")
                    if textStatus == GW_OK {
                        XCTAssertEqual(entry.status, GW_OK, what)
                        XCTAssertEqual(entry.integer, 0, what)
                        XCTAssertEqual(
                            Array(UnsafeRawBufferPointer(start: entry.text.ptr, count: entry.text.len)),
                            Array(UnsafeRawBufferPointer(start: text.ptr, count: text.len)), what
                        )
                    } else if intStatus == GW_OK {
                        XCTAssertEqual(entry.status, GW_OK, what)
                        XCTAssertEqual(entry.integer, integer, what)
                        XCTAssertNil(entry.text.ptr, what)
                    } else {
                        XCTAssertEqual(entry.status, textStatus, what)
                        XCTAssertEqual(entry.integer, 0, what)
                        XCTAssertNil(entry.text.ptr, what)
                    }
                    if entry.status == GW_OK { found += 1 }
                    // The host's hint of which read to try first agrees with the reads (it decides no answer).
                    if textStatus == GW_OK { XCTAssertFalse(PluginCallTarget.likelyInteger(entry.attribute), what) }
                    if intStatus == GW_OK { XCTAssertTrue(PluginCallTarget.likelyInteger(entry.attribute), what) }
                }
                // The SDK's fallback for a host older than 1.6 answers the same, entry for entry.
                PluginHost.api = HostAPI.table
                var alone = entries.map { gw_attribute_value($0.attribute, index: $0.index) }
                XCTAssertTrue(alone.withUnsafeMutableBufferPointer { GatewayRequest(request.handle).readOneByOne($0) })
                for (batch, single) in zip(entries, alone) {
                    let what = "attribute \(batch.attribute) index \(batch.index) in \(phase), one by one"
                    XCTAssertEqual(single.status, batch.status, what)
                    XCTAssertEqual(single.integer, batch.integer, what)
                    XCTAssertEqual(
                        Array(UnsafeRawBufferPointer(start: single.text.ptr, count: single.text.len)),
                        Array(UnsafeRawBufferPointer(start: batch.text.ptr, count: batch.text.len)), what
                    )
                }
                var one = [gw_attribute_value(GW_ATTR_METHOD)]
                XCTAssertFalse(one.withUnsafeMutableBufferPointer { GatewayRequest(request.handle &+ 1).readOneByOne($0) }, "a stale handle")
                func entry(_ attribute: gw_attribute) -> gw_attribute_value { entries[2 * Int(attribute)] }
                XCTAssertEqual(entry(GW_ATTR_CLIENT_PORT).integerValue, 50123)
                XCTAssertEqual(entry(GW_ATTR_BYTES_SENT).integerValue, phase == .complete ? 1234 : nil)
                XCTAssertEqual(entry(GW_ATTR_METHOD).textValue.map { String(decoding: UnsafeRawBufferPointer(start: $0.ptr, count: $0.len), as: UTF8.self) }, "POST")
                XCTAssertEqual(entries[2 * Int(GW_ATTR_CLIENT_PORT) + 1].status, GW_ERR_NOT_FOUND, "an integer at index 1")
                var stale = gw_attribute_value(attribute: GW_ATTR_METHOD, index: 0, status: 77, reserved: 0, text: gw_str(ptr: nil, len: 0), integer: 77)
                XCTAssertEqual(host.get_attributes(request.handle &+ 1, &stale, 1), GW_ERR_STALE_HANDLE)
                XCTAssertEqual(stale.status, 77, "a stale handle's entries are not written")
                XCTAssertEqual(host.get_attributes(request.handle, nil, 1), GW_ERR_INVALID_ARGUMENT)
                XCTAssertEqual(host.get_attributes(request.handle, nil, 0), GW_OK)
                XCTAssertEqual(host.get_attributes(request.handle, &stale, -1), GW_ERR_INVALID_ARGUMENT, "a size_t past Int.max")
            }
        }
        XCTAssertGreaterThan(found, 3 * 12, "the test read real values, not only absent ones")
        // Every attribute the header marks int, and no other below 128.
        let integers: Set<gw_attribute> = [
            GW_ATTR_CLIENT_PORT, GW_ATTR_LOCAL_PORT, GW_ATTR_CONNECTION_ID, GW_ATTR_CLIENT_CERT_PRESENT, GW_ATTR_CLIENT_NOT_BEFORE_UNIX,
            GW_ATTR_CLIENT_NOT_AFTER_UNIX, GW_ATTR_REQUEST_ID, GW_ATTR_RESPONSE_STATUS, GW_ATTR_BYTES_RECEIVED, GW_ATTR_BYTES_SENT,
            GW_ATTR_DURATION_US, GW_ATTR_CLIENT_ABORTED, GW_ATTR_RESPONSE_INCOMPLETE,
        ]
        for attribute in gw_attribute(0)..<200 {
            XCTAssertEqual(PluginCallTarget.likelyInteger(attribute), integers.contains(attribute), "attribute \(attribute)")
        }
        XCTAssertEqual(host.get_attributes(request.handle, nil, 0), GW_ERR_STALE_HANDLE, "after the hook")
    }
}
