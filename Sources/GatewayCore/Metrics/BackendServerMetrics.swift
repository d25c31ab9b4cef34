import CoreMetrics
import Prometheus

/// One backend server's metric handles, shared by every generation of the configuration that names it.
package final class BackendServerMetrics: Sendable {
    package let connectErrors: Counter
    package let connectTimeouts: Counter
    package let responseTimeouts: Counter
    /// Responses the gateway refused as malformed for the exchange (an unsolicited 101, a body before a head).
    package let protocolErrors: Counter
    /// 1 while the server receives traffic; 0 while health checks or passive ejection keep it out.
    package let healthy: Gauge
    package let ejections: Counter

    package init(backend: String, server: String, factory: PrometheusMetricsFactory) {
        let labels = [("backend", backend), ("server", server)]
        connectErrors = Counter(label: "gateway_backend_connect_errors_total", dimensions: labels, factory: factory)
        connectTimeouts = Counter(label: "gateway_backend_connect_timeouts_total", dimensions: labels, factory: factory)
        responseTimeouts = Counter(label: "gateway_backend_response_timeouts_total", dimensions: labels, factory: factory)
        protocolErrors = Counter(label: "gateway_backend_protocol_errors_total", dimensions: labels, factory: factory)
        healthy = Gauge(label: "gateway_backend_server_healthy", dimensions: labels, factory: factory)
        ejections = Counter(label: "gateway_backend_ejections_total", dimensions: labels, factory: factory)
        healthy.record(1)
    }

    /// Takes the series out of the registry.
    package func destroy() {
        for counter in [connectErrors, connectTimeouts, responseTimeouts, protocolErrors, ejections] { counter.destroy() }
        healthy.destroy()
    }
}
