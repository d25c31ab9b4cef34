import Logging
import NIOConcurrencyHelpers
import PluginAPI

/// Process-wide plugin state: loaded libraries (each loaded once), instance tags for logging and metrics, and
/// the metrics plugins defined. Libraries stay loaded for the life of the process.
package final class PluginRegistry: Sendable {
    package static let shared = PluginRegistry()

    package struct InstanceInfo: Sendable {
        package var plugin: String
        package var listener: String
    }

    /// A metric a plugin instance defined. Instances of the same plugin on the same listener (one per
    /// configuration generation) share one series, so a reload never resets a plugin's counters.
    package final class Metric: Sendable {
        package let name: String
        package let help: String
        package let kind: gw_metric_kind
        package let plugin: String
        package let listener: String
        private let values = NIOLockedValueBox<(count: UInt64, sum: Double)>((0, 0))

        package init(name: String, help: String, kind: gw_metric_kind, plugin: String, listener: String) {
            self.name = name
            self.help = help
            self.kind = kind
            self.plugin = plugin
            self.listener = listener
        }

        /// Adds to a counter or a histogram; sets a gauge.
        package func record(_ value: Double) {
            let gauge = kind == GW_METRIC_GAUGE
            values.withLockedValue { values in
                values.count += 1
                values.sum = gauge ? value : values.sum + value
            }
        }

        package var count: UInt64 { values.withLockedValue { $0.count } }
        package var sum: Double { values.withLockedValue { $0.sum } }
    }

    /// Everything mutable, behind one lock.
    private struct State {
        var libraries: [String: PluginLibrary] = [:]
        var instances: [UInt64: InstanceInfo] = [:]
        /// Each instance's metrics, by the id `metric_define` returned.
        var metrics: [UInt64: [Metric]] = [:]
        /// Every series, by name, plugin and listener: what `/metrics` shows.
        var series: [String: Metric] = [:]
        var nextTag: UInt64 = 1
        /// Instances that said they are not ready (`set_ready`), with their reasons.
        var unready: [UInt64: String] = [:]
        /// The instance whose `create` is running (only it may call metric_define and read its config).
        var creatingTag: UInt64?
        /// That instance's config, for the config reader.
        var creatingConfig: PluginConfigReader?
        var logger = Logger(label: "gateway.plugin")
    }

    private let state = NIOLockedValueBox(State())

    package var logger: Logger {
        get { state.withLockedValue { $0.logger } }
        set { state.withLockedValue { $0.logger = newValue } }
    }

    /// Loads `path` once; a second plugin file with a name already taken is refused.
    package func library(at path: String) throws -> PluginLibrary {
        if let loaded = state.withLockedValue({ state in state.libraries[path] }) { return loaded }
        let library = try PluginLibrary.load(path: path)
        return try state.withLockedValue { state in
            if let existing = state.libraries.values.first(where: { $0.name == library.name && $0.path != path }) {
                throw PluginError("\(path): plugin name '\(library.name)' is already used by \(existing.path), which stays loaded until the process exits: to replace a plugin with a file at another path, restart the gateway")
            }
            state.libraries[path] = library
            return library
        }
    }

    package func register(plugin: String, listener: String) -> UInt64 {
        state.withLockedValue { state in
            let tag = state.nextTag
            state.nextTag += 1
            state.instances[tag] = InstanceInfo(plugin: plugin, listener: listener)
            return tag
        }
    }

    package func unregister(tag: UInt64) {
        state.withLockedValue { state in
            state.instances.removeValue(forKey: tag)
            state.unready.removeValue(forKey: tag)
            state.metrics.removeValue(forKey: tag)  // the series stay in `series`: counters outlive instances
        }
    }

    /// `set_ready`: records whether the instance `tag` can do its work, for `/readyz`. The reason is kept to
    /// 200 bytes, control bytes replaced, so that a plugin's text cannot split the admin answer's lines.
    package func setReady(tag: UInt64, ready: Bool, reason: String) -> gw_status {
        var bytes = Array(reason.utf8.prefix(200)).map { $0 < 32 || $0 == 127 ? UInt8(ascii: " ") : $0 }
        if bytes.isEmpty { bytes = Array("no reason given".utf8) }
        let text = String(decoding: bytes, as: UTF8.self)
        return state.withLockedValue { state in
            guard state.instances[tag] != nil else { return GW_ERR_INVALID_ARGUMENT }
            if ready { state.unready.removeValue(forKey: tag) } else { state.unready[tag] = text }
            return GW_OK
        }
    }

    /// The instances among `tags` that are not ready, as "plugin 'p' on listener 'l': reason", in tag order.
    package func unready(among tags: Set<UInt64>) -> [String] {
        state.withLockedValue { state in
            state.unready.filter { tags.contains($0.key) }.sorted { $0.key < $1.key }.compactMap { tag, reason in
                state.instances[tag].map { "plugin '\($0.plugin)' on listener '\($0.listener)' is not ready: \(reason)" }
            }
        }
    }

    package func instanceInfo(tag: UInt64) -> InstanceInfo? {
        state.withLockedValue { state in state.instances[tag] }
    }

    /// Runs `body` (an instance's `create`) with `tag` as the one instance allowed to define metrics and read
    /// `config` through the config reader.
    package func creating<Result>(tag: UInt64, config: PluginConfigReader, _ body: () -> Result) -> Result {
        state.withLockedValue { state in
            state.creatingTag = tag
            state.creatingConfig = config
        }
        defer {
            state.withLockedValue { state in
                state.creatingTag = nil
                state.creatingConfig = nil
            }
        }
        return body()
    }

    /// The config of the instance `tag` while its `create` runs; nil otherwise (GW_ERR_WRONG_PHASE).
    package func configReader(tag: UInt64) -> PluginConfigReader? {
        state.withLockedValue { state in state.creatingTag == tag ? state.creatingConfig : nil }
    }

    package func defineMetric(tag: UInt64, kind: gw_metric_kind, name: String, help: String, id: inout UInt32) -> gw_status {
        guard state.withLockedValue({ state in state.creatingTag == tag }) else { return GW_ERR_WRONG_PHASE }
        guard kind == GW_METRIC_COUNTER || kind == GW_METRIC_HISTOGRAM || kind == GW_METRIC_GAUGE else { return GW_ERR_INVALID_ARGUMENT }
        let valid = !name.isEmpty && name.utf8.enumerated().allSatisfy { index, byte in
            (byte >= 97 && byte <= 122) || byte == 95 || (index > 0 && byte >= 48 && byte <= 57)
        }
        guard valid else { return GW_ERR_INVALID_ARGUMENT }
        return state.withLockedValue { state in
            guard let info = state.instances[tag] else { return GW_ERR_INVALID_ARGUMENT }
            var list = state.metrics[tag, default: []]
            let fullName = "gateway_plugin_" + name
            if let existing = list.firstIndex(where: { $0.name == fullName }) {
                guard list[existing].kind == kind else { return GW_ERR_INVALID_ARGUMENT }
                id = UInt32(existing)
                return GW_OK
            }
            let key = fullName + "\u{0}" + info.plugin + "\u{0}" + info.listener
            let metric: Metric
            if let shared = state.series[key] {
                guard shared.kind == kind else { return GW_ERR_INVALID_ARGUMENT }
                metric = shared
            } else {
                guard !state.series.values.contains(where: { $0.name == fullName && $0.kind != kind }) else { return GW_ERR_INVALID_ARGUMENT }
                // Names /metrics would show twice (counter `x` and gauge `x_total`, histogram `h` and gauge
                // `h_sum`, counters `x` and `x_total`) would make Prometheus reject the whole scrape.
                let exposed = Self.exposedNames(fullName, kind)
                guard !state.series.values.contains(where: { $0.name != fullName && !exposed.isDisjoint(with: Self.exposedNames($0.name, $0.kind)) }) else {
                    return GW_ERR_INVALID_ARGUMENT
                }
                metric = Metric(name: fullName, help: help, kind: kind, plugin: info.plugin, listener: info.listener)
                state.series[key] = metric
            }
            list.append(metric)
            state.metrics[tag] = list
            id = UInt32(list.count - 1)
            return GW_OK
        }
    }

    /// The family and sample names `appendExposition` writes for a metric.
    static func exposedNames(_ name: String, _ kind: gw_metric_kind) -> Set<String> {
        switch kind {
        case GW_METRIC_COUNTER: return [name.hasSuffix("_total") ? name : name + "_total"]
        case GW_METRIC_GAUGE: return [name]
        default: return [name, name + "_sum", name + "_count"]
        }
    }

    package func recordMetric(tag: UInt64, id: UInt32, value: Double) -> gw_status {
        guard value.isFinite else { return GW_ERR_INVALID_ARGUMENT }
        let metric: Metric? = state.withLockedValue { state in
            guard let list = state.metrics[tag], Int(id) < list.count else { return nil }
            return list[Int(id)]
        }
        guard let metric else { return GW_ERR_INVALID_ARGUMENT }
        metric.record(value)
        return GW_OK
    }

    /// A snapshot of every plugin metric series (for the admin endpoint and tests).
    package var metricSnapshot: [Metric] { state.withLockedValue { state in Array(state.series.values) } }

    /// Appends every plugin metric in the Prometheus text format: counters as `<name>_total`, histograms
    /// (the ABI defines no buckets) as summaries with `_sum` and `_count`, gauges (ABI 1.3) with their last value.
    /// Labels: plugin and listener.
    package func appendExposition(into buffer: inout [UInt8]) {
        let families = Dictionary(grouping: metricSnapshot, by: \.name).sorted { $0.key < $1.key }
        for (name, list) in families {
            let first = list[0]
            let counter = first.kind == GW_METRIC_COUNTER, gauge = first.kind == GW_METRIC_GAUGE
            let family = counter && !name.hasSuffix("_total") ? name + "_total" : name
            var text = "# HELP \(family) \(Self.escapeHelp(first.help))\n# TYPE \(family) \(counter ? "counter" : gauge ? "gauge" : "summary")\n"
            for metric in list.sorted(by: { ($0.plugin, $0.listener) < ($1.plugin, $1.listener) }) {
                let labels = "{plugin=\"\(Self.escapeLabel(metric.plugin))\",listener=\"\(Self.escapeLabel(metric.listener))\"}"
                if counter || gauge {
                    text += "\(family)\(labels) \(Self.number(metric.sum))\n"
                } else {
                    text += "\(family)_sum\(labels) \(Self.number(metric.sum))\n\(family)_count\(labels) \(metric.count)\n"
                }
            }
            buffer.append(contentsOf: text.utf8)
        }
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    }

    private static func escapeLabel(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    private static func escapeHelp(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
