import GatewayCore
import PluginAPI
import XCTest

/// `set_ready` (ABI 1.3) as the host keeps it for `/readyz`: per instance, a reason that cannot split the admin
/// answer's lines, only for tags the host knows, gone with the instance. The Audit plugin's use of it, through
/// the real process and the admin listener, is in AuditTests (the /dev/full and tmpfs tests).
final class PluginReadinessTests: XCTestCase {
    func testAnInstanceIsReadyUntilItSaysOtherwiseAndItsStateGoesWithIt() {
        let registry = PluginRegistry.shared
        let tag = registry.register(plugin: "probe", listener: "edge")
        let other = registry.register(plugin: "probe", listener: "inner")
        defer { registry.unregister(tag: other) }
        XCTAssertEqual(registry.unready(among: [tag, other]), [])
        XCTAssertEqual(registry.setReady(tag: tag, ready: false, reason: "disk full\r\nforged: line"), GW_OK)
        XCTAssertEqual(registry.unready(among: [tag, other]), ["plugin 'probe' on listener 'edge' is not ready: disk full  forged: line"])
        XCTAssertEqual(registry.unready(among: [other]), [], "only the instances asked about count (the running configuration's)")
        XCTAssertEqual(registry.setReady(tag: other, ready: false, reason: String(repeating: "x", count: 500)), GW_OK)
        XCTAssertEqual(registry.unready(among: [other]).first?.hasSuffix(": " + String(repeating: "x", count: 200)), true, "reasons are cut to 200 bytes")
        XCTAssertEqual(registry.setReady(tag: tag, ready: true, reason: ""), GW_OK)
        XCTAssertEqual(registry.unready(among: [tag]), [])
        XCTAssertEqual(registry.setReady(tag: tag, ready: false, reason: ""), GW_OK)
        XCTAssertEqual(registry.unready(among: [tag]), ["plugin 'probe' on listener 'edge' is not ready: no reason given"])
        registry.unregister(tag: tag)
        XCTAssertEqual(registry.unready(among: [tag]), [], "a destroyed instance's state goes with it")
        XCTAssertEqual(registry.setReady(tag: tag, ready: false, reason: "late"), GW_ERR_INVALID_ARGUMENT, "an unknown tag")
    }
}
