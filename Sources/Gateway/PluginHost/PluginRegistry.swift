import Logging
import NIOConcurrencyHelpers
import PluginAPI

/// Process-wide plugin state: loaded libraries (each loaded once), instance tags for logging and metrics, and
/// the metrics plugins defined. Libraries stay loaded for the life of the process.
final class PluginRegistry: @unchecked Sendable {
    static let shared = PluginRegistry()

    struct InstanceInfo: Sendable {
        var plugin: String
        var listener: String
    }

    struct Metric: Sendable {
        var name: String
        var help: String
        var kind: gw_metric_kind
        var plugin: String
        var listener: String
        var count: UInt64 = 0
        var sum: Double = 0
    }

    private let lock = NIOLock()
    private var libraries: [String: PluginLibrary] = [:]
    private var instances: [UInt64: InstanceInfo] = [:]
    private var metrics: [UInt64: [Metric]] = [:]
    private var nextTag: UInt64 = 1
    private var _logger = Logger(label: "gateway.plugin")

    var logger: Logger {
        get { lock.withLock { _logger } }
        set { lock.withLock { _logger = newValue } }
    }

    /// Loads `path` once; a second plugin file with a name already taken is refused.
    func library(at path: String) throws -> PluginLibrary {
        if let loaded = lock.withLock({ libraries[path] }) { return loaded }
        let library = try PluginLibrary.load(path: path)
        return try lock.withLock {
            if let existing = libraries.values.first(where: { $0.name == library.name && $0.path != path }) {
                throw PluginError("\(path): plugin name '\(library.name)' is already used by \(existing.path)")
            }
            libraries[path] = library
            return library
        }
    }

    func register(plugin: String, listener: String) -> UInt64 {
        lock.withLock {
            let tag = nextTag
            nextTag += 1
            instances[tag] = InstanceInfo(plugin: plugin, listener: listener)
            return tag
        }
    }

    func unregister(tag: UInt64) {
        lock.withLock { _ = instances.removeValue(forKey: tag) }
    }

    func instanceInfo(tag: UInt64) -> InstanceInfo? {
        lock.withLock { instances[tag] }
    }

    func defineMetric(tag: UInt64, kind: gw_metric_kind, name: String, help: String, id: inout UInt32) -> gw_status {
        guard kind == GW_METRIC_COUNTER || kind == GW_METRIC_HISTOGRAM else { return GW_ERR_INVALID_ARGUMENT }
        let valid = !name.isEmpty && name.utf8.enumerated().allSatisfy { index, byte in
            (byte >= 97 && byte <= 122) || byte == 95 || (index > 0 && byte >= 48 && byte <= 57)
        }
        guard valid else { return GW_ERR_INVALID_ARGUMENT }
        return lock.withLock {
            guard let info = instances[tag] else { return GW_ERR_INVALID_ARGUMENT }
            var list = metrics[tag, default: []]
            if let existing = list.firstIndex(where: { $0.name == name }) {
                id = UInt32(existing)
                return GW_OK
            }
            list.append(Metric(name: "gateway_plugin_" + name, help: help, kind: kind, plugin: info.plugin, listener: info.listener))
            metrics[tag] = list
            id = UInt32(list.count - 1)
            return GW_OK
        }
    }

    func recordMetric(tag: UInt64, id: UInt32, value: Double) -> gw_status {
        lock.withLock {
            guard var list = metrics[tag], Int(id) < list.count, value.isFinite else { return GW_ERR_INVALID_ARGUMENT }
            list[Int(id)].count += 1
            list[Int(id)].sum += value
            metrics[tag] = list
            return GW_OK
        }
    }

    /// A snapshot of every plugin metric (for the admin endpoint and tests).
    var metricSnapshot: [Metric] { lock.withLock { metrics.values.flatMap { $0 } } }
}
