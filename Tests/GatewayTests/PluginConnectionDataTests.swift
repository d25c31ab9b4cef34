import GatewayCore
import NIOHTTP1
import PluginAPI
import XCTest

/// The host's side of per-connection data (ABI 1.4) without a server: what is kept, what is released and when,
/// and who may call (`PluginChainTests` runs it through the real gateway with a C plugin).
final class PluginConnectionDataTests: XCTestCase {
    /// What the release function was called with, in order (tests run one at a time).
    nonisolated(unsafe) private static var released: [Int] = []
    private static let release: PluginConnectionData.Release = { pointer in
        PluginConnectionDataTests.released.append(Int(bitPattern: pointer))
    }

    override func setUp() {
        super.setUp()
        Self.released = []
    }

    private static func pointer(_ value: Int) -> UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: value)! }

    func testReplacingReleasesTheOldValueAndTheSameValueIsKeptAsItIs() {
        var data = PluginConnectionData()
        data.set(tag: 1, data: Self.pointer(0x10), release: Self.release).run()
        data.set(tag: 2, data: Self.pointer(0x20), release: Self.release).run()
        XCTAssertEqual(data.value(tag: 1), Self.pointer(0x10))
        XCTAssertEqual(data.value(tag: 2), Self.pointer(0x20))
        XCTAssertNil(data.value(tag: 3))
        data.set(tag: 1, data: Self.pointer(0x10), release: Self.release).run()
        XCTAssertEqual(Self.released, [], "the value already kept is not released")
        data.set(tag: 1, data: Self.pointer(0x11), release: Self.release).run()
        XCTAssertEqual(Self.released, [0x10], "the replaced value, once")
        data.set(tag: 2, data: nil, release: nil).run()
        XCTAssertEqual(Self.released, [0x10, 0x20], "cleared")
        XCTAssertNil(data.value(tag: 2))
        data.set(tag: 3, data: Self.pointer(0x30), release: nil).run()
        let taken = data.takeAll()
        XCTAssertEqual(Self.released, [0x10, 0x20], "taken out, not released yet")
        XCTAssertTrue(data.isEmpty)
        taken.run()
        XCTAssertEqual(Self.released, [0x10, 0x20, 0x11], "each kept value once; none without a release function")
        data.takeAll().run()
        XCTAssertEqual(Self.released.count, 3, "never twice")

        data.set(tag: 4, data: Self.pointer(0x40), release: Self.release).run()
        data.set(tag: 5, data: Self.pointer(0x50), release: Self.release).run()
        data.take(tags: [5, 6]).run()
        XCTAssertEqual(Self.released.count, 4)
        XCTAssertEqual(Self.released.last, 0x50, "only the listed instances' values")
        XCTAssertEqual(data.value(tag: 4), Self.pointer(0x40))
    }

    /// Through the host's table, as a plugin calls it: request and connection handles reach the same data; a
    /// blocking hook's copy (worker thread) is refused; bad arguments are refused.
    func testHostFunctionsKeepDataWithTheConnectionAndRefuseBlockingCopies() {
        let api = HostAPI.table.pointee
        let connection = ConnectionContext(listenerName: "l", isTLS: false, remoteAddress: nil, localAddress: nil)
        let request = PluginRequest(connection: connection, head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"))
        var out: UnsafeMutableRawPointer? = Self.pointer(1)
        let status = PluginCallContext.with(request.handle, request) { () -> gw_status in
            XCTAssertEqual(api.get_connection_data(request.handle, 7, &out), GW_ERR_NOT_FOUND)
            XCTAssertNil(out, "NULL when nothing is kept")
            XCTAssertEqual(api.set_connection_data(request.handle, 0, Self.pointer(0x70), Self.release), GW_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(api.get_connection_data(request.handle, 7, nil), GW_ERR_INVALID_ARGUMENT)
            return api.set_connection_data(request.handle, 7, Self.pointer(0x70), Self.release)
        }
        XCTAssertEqual(status, GW_OK)
        XCTAssertEqual(api.get_connection_data(request.handle, 7, &out), GW_ERR_STALE_HANDLE, "only while the hook runs")

        let copy = request.copyForBlockingCall()
        PluginCallContext.with(copy.handle, copy) {
            XCTAssertEqual(api.get_connection_data(copy.handle, 7, &out), GW_ERR_WRONG_PHASE, "a blocking hook's copy")
            XCTAssertEqual(api.set_connection_data(copy.handle, 7, nil, nil), GW_ERR_WRONG_PHASE)
        }

        let target = PluginConnectionTarget(connection: connection)
        let handle = connection.id | (1 << 63)
        PluginCallContext.with(handle, target) {
            XCTAssertEqual(api.get_connection_data(handle, 7, &out), GW_OK, "the connection's handle sees the request's data")
            XCTAssertEqual(out, Self.pointer(0x70))
        }
        XCTAssertEqual(Self.released, [])
        connection.releasePluginData()
        XCTAssertEqual(Self.released, [0x70])
    }
}
