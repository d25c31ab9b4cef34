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

/// Gauges (ABI 1.3) and the names `/metrics` shows: a gauge shows its last value, and a metric that would be
/// shown under a name another one is shown under is refused, so one plugin cannot break the whole scrape.
final class PluginGaugeTests: XCTestCase {
    func testAGaugeShowsItsLastValueAndCollidingNamesAreRefused() {
        let registry = PluginRegistry.shared
        let tag = registry.register(plugin: "gaugeprobe", listener: "edge")
        defer { registry.unregister(tag: tag) }
        var gauge: UInt32 = 0, counter: UInt32 = 0, histogram: UInt32 = 0, refused: UInt32 = 0
        registry.creating(tag: tag, config: PluginConfigReader(config: nil)) {
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_GAUGE, name: "probe_depth", help: "h", id: &gauge), GW_OK)
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_COUNTER, name: "probe_events", help: "h", id: &counter), GW_OK)
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_HISTOGRAM, name: "probe_latency", help: "h", id: &histogram), GW_OK)
            // Shown as gateway_plugin_probe_events_total, gateway_plugin_probe_latency_sum, ..._depth: taken.
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_COUNTER, name: "probe_events_total", help: "h", id: &refused), GW_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_GAUGE, name: "probe_events_total", help: "h", id: &refused), GW_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_GAUGE, name: "probe_latency_sum", help: "h", id: &refused), GW_ERR_INVALID_ARGUMENT)
            XCTAssertEqual(registry.defineMetric(tag: tag, kind: GW_METRIC_COUNTER, name: "probe_depth", help: "h", id: &refused), GW_ERR_INVALID_ARGUMENT)
        }
        XCTAssertEqual(registry.recordMetric(tag: tag, id: gauge, value: 7), GW_OK)
        XCTAssertEqual(registry.recordMetric(tag: tag, id: gauge, value: 3), GW_OK)
        XCTAssertEqual(registry.recordMetric(tag: tag, id: counter, value: 2), GW_OK)
        XCTAssertEqual(registry.recordMetric(tag: tag, id: counter, value: 2), GW_OK)
        var buffer: [UInt8] = []
        registry.appendExposition(into: &buffer)
        let text = String(decoding: buffer, as: UTF8.self)
        XCTAssertTrue(text.contains("# TYPE gateway_plugin_probe_depth gauge\n"), text)
        XCTAssertTrue(text.contains("gateway_plugin_probe_depth{plugin=\"gaugeprobe\",listener=\"edge\"} 3\n"), "the last value, not the sum")
        XCTAssertTrue(text.contains("gateway_plugin_probe_events_total{plugin=\"gaugeprobe\",listener=\"edge\"} 4\n"))
    }
}
