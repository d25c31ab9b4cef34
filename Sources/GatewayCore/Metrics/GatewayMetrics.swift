import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import Prometheus

/// The gateway's metrics: one Prometheus registry per server, fed through swift-metrics. Metric handles are
/// created once per label set (at start-up and reload, never on the request path) and outlive reloads, so
/// counters never reset when the configuration changes.
package final class GatewayMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    /// What the operator's console remembers of clients, refusals and reloads (outlives reloads, as the metrics do).
    package let console = ConsoleJournal()
    package let factory: PrometheusMetricsFactory
    private let listeners = NIOLockedValueBox<[String: ListenerMetrics]>([:])
    private let servers = NIOLockedValueBox<[String: BackendServerMetrics]>([:])
    /// How many live servers from host names use each series (by key): the series go at zero.
    private let discoveredUses = NIOLockedValueBox<[String: Int]>([:])
    private let expiry = NIOLockedValueBox<[String: Gauge]>([:])
    private let discovery = NIOLockedValueBox<[String: any Sendable]>([:])
    /// Revocation counters and gauges, by label and label values (created on first use: per handshake only
    /// while a label set is new).
    private let revocation = NIOLockedValueBox<[String: any Sendable]>([:])

    package let reloadsSucceeded: Counter
    package let reloadsFailed: Counter
    package let lastReloadTimestamp: Gauge
    package let lastReloadSuccess: Gauge
    package let startTimestamp: Gauge
    /// When this process started (the metrics are made once per process).
    package let started = Date()

    /// Request durations, in seconds: from 1 ms to 30 s.
    package static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
        .seconds(10), .seconds(30),
    ]

    package init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        self.factory = factory
        reloadsSucceeded = Counter(label: "gateway_config_reloads_total", dimensions: [("result", "success")], factory: factory)
        reloadsFailed = Counter(label: "gateway_config_reloads_total", dimensions: [("result", "failure")], factory: factory)
        lastReloadTimestamp = Gauge(label: "gateway_config_last_reload_timestamp_seconds", factory: factory)
        lastReloadSuccess = Gauge(label: "gateway_config_last_reload_success", factory: factory)
        startTimestamp = Gauge(label: "gateway_start_timestamp_seconds", factory: factory)
        let now = Date().timeIntervalSince1970
        startTimestamp.record(now)
        // The configuration loaded at start counts as the first successful load.
        lastReloadTimestamp.record(now)
        lastReloadSuccess.record(1)
    }

    /// The metrics of listener `name`, created on first use.
    package func listener(_ name: String) -> ListenerMetrics {
        listeners.withLockedValue { table in
            if let existing = table[name] { return existing }
            let created = ListenerMetrics(listener: name, factory: factory, console: console)
            table[name] = created
            return created
        }
    }

    /// The metrics of one server of a backend group, created on first use.
    package func backendServer(backend: String, server: String) -> BackendServerMetrics {
        servers.withLockedValue { table in
            let key = backend + "\u{0}" + server
            if let existing = table[key] { return existing }
            let created = BackendServerMetrics(backend: backend, server: server, factory: factory)
            table[key] = created
            return created
        }
    }

    package func recordReload(success: Bool) {
        (success ? reloadsSucceeded : reloadsFailed).increment()
        lastReloadTimestamp.record(Date().timeIntervalSince1970)
        lastReloadSuccess.record(success ? 1 : 0)
    }

    /// The Prometheus text exposition: the registry, after refreshing what is computed at scrape time
    /// (certificate expiry, CRL nextUpdate), followed by the metrics plugins defined through the ABI.
    package func exposition(runtime: GatewayRuntime, now: Date = Date()) -> [UInt8] {
        for listener in runtime.listeners {
            guard let tls = listener.tls else { continue }
            if let date = tls.serverCertificateExpiry {
                expiryGauge(listener: listener.name, kind: "server_certificate").record(date.timeIntervalSince(now) / 86_400)
            }
            if let date = tls.clientCAExpiry {
                expiryGauge(listener: listener.name, kind: "client_ca").record(date.timeIntervalSince(now) / 86_400)
            }
            if let date = tls.crlNextUpdate {
                scrapeGauge("gateway_crl_next_update_seconds", listener: listener.name).record(date.timeIntervalSince(now))
            }
        }
        if runtime.listeners.contains(where: { $0.tls?.revocation != nil }) {
            let snapshot = RevocationStore.shared.snapshot()
            for crl in snapshot.crls {
                revocationGauge("gateway_revocation_crl_age_seconds", [("url", crl.url)]).record(now.timeIntervalSince(crl.fetchedAt))
            }
            if let next = snapshot.crls.compactMap(\.nextUpdate).min() {
                revocationGauge("gateway_revocation_next_update_seconds", [("source", "crl_fetched")]).record(next.timeIntervalSince(now))
            }
            if let next = snapshot.earliestOCSPNextUpdate {
                revocationGauge("gateway_revocation_next_update_seconds", [("source", "ocsp")]).record(next.timeIntervalSince(now))
            }
            revocationGauge("gateway_revocation_ocsp_answers", []).record(Double(snapshot.ocspAnswers))
            revocationGauge("gateway_revocation_ocsp_oldest_answer_age_seconds", []).record(snapshot.oldestOCSPFetch.map { now.timeIntervalSince($0) } ?? 0)
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        registry.emit(into: &buffer)
        PluginRegistry.shared.appendExposition(into: &buffer)
        return buffer
    }

    /// The metrics of a server that DNS discovery made (one use per server object; generations of a reload
    /// share the series). `releaseDiscoveredServer` ends the use.
    package func acquireDiscoveredServer(backend: String, server: String) -> BackendServerMetrics {
        servers.withLockedValue { table in
            let key = backend + "\u{0}" + server
            discoveredUses.withLockedValue { $0[key, default: 0] += 1 }
            if let existing = table[key] { return existing }
            let created = BackendServerMetrics(backend: backend, server: server, factory: factory)
            table[key] = created
            return created
        }
    }

    /// Ends one use; when no server uses the series any more (DNS took the address away in every live
    /// generation), they leave the exposition, so that changing addresses do not grow it without bound.
    package func releaseDiscoveredServer(backend: String, server: String) {
        servers.withLockedValue { table in
            let key = backend + "\u{0}" + server
            let left = discoveredUses.withLockedValue { uses -> Int in
                let left = (uses[key] ?? 1) - 1
                uses[key] = left > 0 ? left : nil
                return left
            }
            // Inside the table's lock: no lookup can hand out handles that are being unregistered.
            if left <= 0 { table.removeValue(forKey: key)?.destroy() }
        }
    }

    /// `gateway_backend_resolutions_total{backend, outcome}`: host-name resolutions of a backend's servers,
    /// `success` or `failure` (the last known addresses were kept).
    package func backendResolutions(backend: String, outcome: String) -> Counter {
        discovery.withLockedValue { table in
            let key = "r\u{0}" + backend + "\u{0}" + outcome
            if let counter = table[key] as? Counter { return counter }
            let counter = Counter(label: "gateway_backend_resolutions_total", dimensions: [("backend", backend), ("outcome", outcome)], factory: factory)
            table[key] = counter
            return counter
        }
    }

    /// `gateway_backend_servers{backend}`: the servers a backend with host names has now (one per address).
    package func backendServerCount(backend: String) -> Gauge {
        discovery.withLockedValue { table in
            let key = "s\u{0}" + backend
            if let gauge = table[key] as? Gauge { return gauge }
            let gauge = Gauge(label: "gateway_backend_servers", dimensions: [("backend", backend)], factory: factory)
            table[key] = gauge
            return gauge
        }
    }

    /// One fetch of a CRL or one OCSP query (`result`: ok, or a `RevocationFailure` reason).
    package func revocationFetch(source: String, result: String) {
        revocationCounter("gateway_revocation_fetches_total", [("source", source), ("result", result)]).increment()
    }

    /// One certificate's online revocation check (`result`: good, revoked, unavailable).
    package func revocationCheck(listener: String, source: String, result: String) {
        revocationCounter("gateway_revocation_checks_total", [("listener", listener), ("source", source), ("result", result)]).increment()
    }

    private func revocationCounter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        revocation.withLockedValue { table in
            let key = ([label] + dimensions.map(\.1)).joined(separator: "\u{0}")
            if let counter = table[key] as? Counter { return counter }
            let counter = Counter(label: label, dimensions: dimensions, factory: factory)
            table[key] = counter
            return counter
        }
    }

    private func revocationGauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        revocation.withLockedValue { table in
            let key = ([label] + dimensions.map(\.1)).joined(separator: "\u{0}")
            if let gauge = table[key] as? Gauge { return gauge }
            let gauge = Gauge(label: label, dimensions: dimensions, factory: factory)
            table[key] = gauge
            return gauge
        }
    }

    private func expiryGauge(listener: String, kind: String) -> Gauge {
        scrapeGauge("gateway_certificate_expiry_days", listener: listener, kind: kind)
    }

    /// A gauge computed at scrape time, created once per label set.
    private func scrapeGauge(_ label: String, listener: String, kind: String? = nil) -> Gauge {
        expiry.withLockedValue { table in
            let key = label + "\u{0}" + listener + "\u{0}" + (kind ?? "")
            if let gauge = table[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: [("listener", listener)] + (kind.map { [("kind", $0)] } ?? []), factory: factory)
            table[key] = gauge
            return gauge
        }
    }
}

// Prometheus exports its own Counter and Gauge; in this module the names mean swift-metrics' types.
package typealias Counter = CoreMetrics.Counter
package typealias Gauge = CoreMetrics.Gauge
package typealias Meter = CoreMetrics.Meter
