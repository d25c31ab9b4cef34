import GatewayCore
import GatewayPluginKit
import NIOHTTP1
import PluginAPI
import XCTest

/// The host's side of header sets (ABI 1.5) without a server: which names a set owns, what applying it does to
/// a request's head, to what earlier plugins added and to a response, and what the host table refuses
/// (`PluginChainTests` runs them through the real gateway with a C plugin).
final class PluginHeaderSetTests: XCTestCase {
    private func makeSet(_ headers: [(String, String)], owned: [String]) throws -> PluginHeaderSet {
        let bytes = headers.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        let names = owned.map { Array($0.utf8) }
        return try withViews(bytes, names) { list, owned in try PluginHeaderSet(headers: list, owned: owned) }
    }

    /// Runs `body` with views of the headers and names (kept alive for the call, in one pinned array).
    private func withViews<T>(
        _ headers: [([UInt8], [UInt8])], _ names: [[UInt8]], _ body: (UnsafeBufferPointer<gw_header>, UnsafeBufferPointer<gw_str>) throws -> T
    ) rethrows -> T {
        let all = headers.flatMap { [$0.0, $0.1] } + names
        let storage = all.flatMap { $0 }
        return try storage.withUnsafeBufferPointer { bytes in
            var spans: [gw_str] = []
            var at = 0
            for part in all {
                spans.append(gw_str(UnsafeBufferPointer(rebasing: bytes[at..<(at + part.count)])))
                at += part.count
            }
            let list = headers.indices.map { gw_header(name: spans[2 * $0], value: spans[2 * $0 + 1]) }
            let owned = Array(spans[(2 * headers.count)...])
            return try list.withUnsafeBufferPointer { list in try owned.withUnsafeBufferPointer { try body(list, $0) } }
        }
    }

    private func owns(_ set: PluginHeaderSet, _ name: String) -> Bool {
        var name = name
        return name.withUTF8 { set.owns(UnsafeRawBufferPointer($0)) }
    }

    func testOwnedNamesMatchInAnyCaseWithUnderscoreAsHyphen() throws {
        let long = String(repeating: "a", count: 70)
        let longer = String(repeating: "b", count: 80)
        let set = try makeSet([], owned: ["X-Client-Subject", "x_id", long, longer])
        XCTAssertTrue(set.ownsNames)
        for name in ["x-client-subject", "X_CLIENT_SUBJECT", "x_Client-subject", "X-ID", "x-id", "x_id", long.uppercased(), longer] {
            XCTAssertTrue(owns(set, name), name)
        }
        for name in ["x-client-subjec", "x-client-subjects", "x.id", "xid", "", String(repeating: "a", count: 75), String(repeating: "b", count: 70)] {
            XCTAssertFalse(owns(set, name), name)
        }
        XCTAssertFalse(try makeSet([("a", "1")], owned: []).ownsNames)
    }

    func testTheSetsLinesAreLaidOutOnceAndFlagHopByHop() throws {
        let set = try makeSet([("x-a", "1"), ("X-B", ""), ("x-c", "caf\u{e9}")], owned: [])
        XCTAssertEqual(set.lines.count, 3)
        XCTAssertEqual(String(decoding: set.lines.bytes, as: UTF8.self), "x-a: 1\r\nX-B: \r\nx-c: caf\u{e9}\r\n")
        XCTAssertFalse(set.addsHopByHop)
        XCTAssertTrue(try makeSet([("x-a", "1"), ("Connection", "close")], owned: []).addsHopByHop)
        let invalid = Array("caf".utf8) + [0xE9]
        let repaired = try withViews([(Array("x-v".utf8), invalid)], []) { try PluginHeaderSet(headers: $0, owned: $1) }
        XCTAssertEqual(String(decoding: repaired.lines.bytes, as: UTF8.self), "x-v: caf\u{FFFD}\r\n", "invalid UTF-8 repaired, as add_headers does")
    }

    func testRefusals() {
        XCTAssertThrowsError(try makeSet([("x a", "1")], owned: [])) { XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .invalidHeader) }
        XCTAssertThrowsError(try makeSet([("x-a", "1\r\nx-b: 2")], owned: [])) { XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .invalidHeader) }
        XCTAssertThrowsError(try makeSet([("x-a", "\0")], owned: [])) { XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .invalidHeader) }
        XCTAssertThrowsError(try makeSet([], owned: ["x:a"])) { XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .invalidHeader) }
        XCTAssertThrowsError(try makeSet([], owned: [""])) { XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .invalidHeader) }
        let nullView = [gw_header(name: gw_str(ptr: nil, len: 3), value: gw_str(ptr: nil, len: 0))]
        XCTAssertThrowsError(try nullView.withUnsafeBufferPointer { try PluginHeaderSet(headers: $0, owned: UnsafeBufferPointer(start: nil, count: 0)) }) {
            XCTAssertEqual($0 as? PluginHeaderSet.Refusal, .nullView)
        }
    }

    /// Applied to a request: the head's fields and the earlier plugins' under an owned name go (the others stay
    /// in order), then the set's lines follow what was added before; a request with nothing added takes the
    /// set's bytes as they are.
    func testApplyingToARequestStripsThenAdds() throws {
        let set = try makeSet([("x-id", "me"), ("x-more", "1")], owned: ["x-id", "x-owned"])
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        head.headers.add(name: "Host", value: "a")
        head.headers.add(name: "X_ID", value: "forged")
        head.headers.add(name: "x-keep", value: "1")
        head.headers.add(name: "X-Owned", value: "forged")
        let request = PluginRequest(connection: connection, head: head)
        XCTAssertEqual(request.setHeader("x-earlier", "e", mode: .add), GW_OK)
        XCTAssertEqual(request.setHeader("x_owned", "earlier", mode: .add), GW_OK)
        XCTAssertEqual(request.addHeaderSet(set), GW_OK)
        let (kept, added) = request.headAndAdded
        XCTAssertEqual(kept.fields.fields.map(\.0), ["Host", "x-keep"])
        XCTAssertEqual(added.fields.map { "\($0.0): \($0.1)" }, ["x-earlier: e", "x-id: me", "x-more: 1"])
        XCTAssertFalse(request.addedHopByHop)

        let plain = PluginRequest(connection: connection, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        XCTAssertEqual(plain.addHeaderSet(set), GW_OK)
        XCTAssertEqual(plain.headAndAdded.added, set.lines, "nothing added before: the set's lines themselves")
        XCTAssertEqual(plain.addHeaderSet(set), GW_OK)
        XCTAssertEqual(plain.headAndAdded.added.fields.map(\.0), ["x-more", "x-id", "x-more"], "applied twice: the first x-id (owned) goes, x-more (not owned) stays")

        let hop = try makeSet([("te", "trailers")], owned: [])
        XCTAssertEqual(plain.addHeaderSet(hop), GW_OK)
        XCTAssertTrue(plain.addedHopByHop, "a hop-by-hop name is removed again before forwarding")
    }

    func testApplyingToAResponseAndAfterIt() throws {
        let set = try makeSet([("x-id", "me")], owned: ["x-id", "x-owned"])
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let request = PluginRequest(connection: connection, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        request.phase = .response
        XCTAssertEqual(request.addHeaderSet(set), GW_ERR_WRONG_PHASE, "no response head yet")
        request.responseHead = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["X_Owned": "b", "x-ID": "b", "content-type": "text/plain"])
        XCTAssertEqual(request.addHeaderSet(set), GW_OK)
        XCTAssertEqual(request.responseHead?.headers.map { "\($0.name): \($0.value)" }, ["content-type: text/plain", "x-id: me"])
        request.phase = .complete
        XCTAssertEqual(request.addHeaderSet(set), GW_ERR_WRONG_PHASE)
    }

    /// The SDK's `HeaderSet` of Swift strings, made and applied through the host's table as a Swift plugin does
    /// (this process's host): names, values and owned names land where they belong (one array behind all the
    /// views), non-ASCII text included; a bad name or value is the host's refusal.
    func testTheKitsStringSetThroughTheHostTable() throws {
        PluginHost.api = HostAPI.table
        let set = try HeaderSet(headers: [(name: "x-id", value: "caf\u{e9}"), (name: "X-Two", value: "")], owned: ["x_owned", "X-ID"])
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
        head.headers.add(name: "x-ID", value: "forged")
        head.headers.add(name: "keep", value: "1")
        head.headers.add(name: "X-Owned", value: "forged")
        let request = PluginRequest(connection: connection, head: head)
        let status = PluginCallContext.with(request.handle, request) { GatewayRequest(request.handle).add(set) }
        XCTAssertEqual(status, GW_OK)
        let (kept, added) = request.headAndAdded
        XCTAssertEqual(kept.fields.fields.map(\.0), ["keep"])
        XCTAssertEqual(added.fields.map { "\($0.0): \($0.1)" }, ["x-id: caf\u{e9}", "X-Two: "])
        XCTAssertEqual(GatewayRequest(request.handle).add(set), GW_ERR_STALE_HANDLE, "outside the hook")

        let stripOnly = try HeaderSet(headers: [], owned: ["keep"])
        let other = PluginRequest(connection: connection, head: head)
        XCTAssertEqual(PluginCallContext.with(other.handle, other) { GatewayRequest(other.handle).add(stripOnly) }, GW_OK)
        XCTAssertEqual(other.headAndAdded.head.fields.fields.map(\.0), ["x-ID", "X-Owned"])
        XCTAssertTrue(other.headAndAdded.added.isEmpty)

        XCTAssertThrowsError(try HeaderSet(headers: [(name: "x id", value: "1")])) {
            XCTAssertEqual(($0 as? HeaderSet.Refusal)?.status, GW_ERR_INVALID_HEADER)
        }
        XCTAssertThrowsError(try HeaderSet(headers: [(name: "x-id", value: "1\r\nx-evil: 1")])) {
            XCTAssertEqual(($0 as? HeaderSet.Refusal)?.status, GW_ERR_INVALID_HEADER)
        }
        XCTAssertThrowsError(try HeaderSet(headers: [], owned: ["bad:name"])) {
            XCTAssertEqual(($0 as? HeaderSet.Refusal)?.status, GW_ERR_INVALID_HEADER)
        }
    }

    /// Through the host's table, as a plugin calls it: one retain for the plugin, arguments checked.
    func testHostTableMakesAddsAndReleases() throws {
        let api = HostAPI.table.pointee
        XCTAssertEqual(api.header_set_create(nil, 0, nil, 0, nil), GW_ERR_INVALID_ARGUMENT, "no out")
        var out: OpaquePointer? = OpaquePointer(bitPattern: 1)
        XCTAssertEqual(api.header_set_create(nil, 1, nil, 0, &out), GW_ERR_INVALID_ARGUMENT, "NULL list with a count")
        XCTAssertNil(out, "cleared on failure")
        XCTAssertEqual(api.header_set_create(nil, 0, nil, -1, &out), GW_ERR_INVALID_ARGUMENT, "a count past Int.max")
        XCTAssertEqual(api.header_set_create(nil, 0, nil, 0, &out), GW_OK, "an empty set is a set")
        let empty = try XCTUnwrap(out)
        weak var watched: PluginHeaderSet?
        try withViews([(Array("x-a".utf8), Array("1".utf8))], [Array("x-a".utf8)]) { list, owned in
            XCTAssertEqual(api.header_set_create(list.baseAddress, list.count, owned.baseAddress, owned.count, &out), GW_OK)
            let made = try XCTUnwrap(out)
            watched = Unmanaged<PluginHeaderSet>.fromOpaque(UnsafeRawPointer(made)).takeUnretainedValue()
        }
        let made = try XCTUnwrap(out)
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let request = PluginRequest(connection: connection, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        let statuses = PluginCallContext.with(request.handle, request) {
            [api.header_set_add(request.handle, nil), api.header_set_add(request.handle, made), api.header_set_add(request.handle + 1, made)]
        }
        XCTAssertEqual(statuses, [GW_ERR_INVALID_ARGUMENT, GW_OK, GW_ERR_STALE_HANDLE])
        XCTAssertEqual(request.headAndAdded.added.fields.map(\.0), ["x-a"])
        XCTAssertNotNil(watched)
        api.header_set_release(made)
        XCTAssertNil(watched, "released: the request kept the bytes, not the set")
        XCTAssertEqual(request.headAndAdded.added.fields.map(\.1), ["1"])
        api.header_set_release(empty)
        api.header_set_release(nil)
    }
}
