import Foundation
import NIOConcurrencyHelpers

/// The console's live charts: every few seconds, per listener, the request rate, the 4xx and 5xx rates, p50 and
/// p99 latency, open connections and TLS handshakes accepted and refused, for the last 15 minutes. Each sample
/// reads the same Prometheus registry `/metrics` is made from (on the admin thread), so the request path does
/// nothing for it: rates and percentiles come from the differences between two readings of the counters and of
/// the `gateway_request_duration_seconds` histogram.
package final class ConsoleSeries: Sendable {
    package struct Point: Sendable {
        package var time: Date
        package var requestsPerSecond: Double
        package var clientErrorsPerSecond: Double
        package var serverErrorsPerSecond: Double
        /// Latency percentiles over the interval, in seconds (nil when no request completed in it).
        package var p50: Double?
        package var p99: Double?
        package var activeConnections: Double
        package var handshakesPerSecond: Double
        package var refusedHandshakesPerSecond: Double
    }

    /// One reading of a listener's counters.
    package struct Totals: Sendable {
        package var requests: [String: Double] = [:]
        /// Cumulative histogram counts by upper bound (`le`, +inf last).
        package var buckets: [Double: Double] = [:]
        package var active: Double = 0
        package var handshakes: Double = 0
        package var refusedHandshakes: Double = 0
    }

    private struct State {
        var last: [String: Totals] = [:]
        var lastTime: Date?
        var points: [String: [Point]] = [:]
    }

    package let capacity: Int
    private let state = NIOLockedValueBox(State())

    /// `capacity` points per listener: 180 at one sample every 5 s is 15 minutes.
    package init(capacity: Int = 180) {
        self.capacity = capacity
    }

    /// Adds one point per listener from a Prometheus text exposition read at `now`.
    package func sample(exposition: [UInt8], now: Date = Date()) {
        let totals = Self.totals(from: exposition)
        state.withLockedValue { state in
            defer {
                state.last = totals
                state.lastTime = now
            }
            guard let lastTime = state.lastTime else { return }
            let seconds = max(now.timeIntervalSince(lastTime), 0.001)
            for (listener, current) in totals {
                let previous = state.last[listener] ?? Totals()
                func rate(_ a: Double, _ b: Double) -> Double { max(0, a - b) / seconds }
                let requests = rate(current.requests.values.reduce(0, +), previous.requests.values.reduce(0, +))
                let point = Point(
                    time: now, requestsPerSecond: requests,
                    clientErrorsPerSecond: rate(current.requests["4xx"] ?? 0, previous.requests["4xx"] ?? 0),
                    serverErrorsPerSecond: rate(current.requests["5xx"] ?? 0, previous.requests["5xx"] ?? 0),
                    p50: Self.quantile(0.5, current: current.buckets, previous: previous.buckets),
                    p99: Self.quantile(0.99, current: current.buckets, previous: previous.buckets),
                    activeConnections: current.active,
                    handshakesPerSecond: rate(current.handshakes, previous.handshakes),
                    refusedHandshakesPerSecond: rate(current.refusedHandshakes, previous.refusedHandshakes)
                )
                var points = state.points[listener] ?? []
                points.append(point)
                if points.count > capacity { points.removeFirst(points.count - capacity) }
                state.points[listener] = points
            }
        }
    }

    /// The points of `listener`, oldest first.
    package func points(_ listener: String) -> [Point] { state.withLockedValue { $0.points[listener] ?? [] } }

    /// The last reading's totals of `listener` (counters since start).
    package func totals(_ listener: String) -> Totals? { state.withLockedValue { $0.last[listener] } }

    /// The `q` quantile of the requests completed between two readings of a histogram, interpolated linearly
    /// inside the bucket it falls in (as Prometheus' histogram_quantile); the last finite bound when it falls
    /// in the +Inf bucket.
    package static func quantile(_ q: Double, current: [Double: Double], previous: [Double: Double]) -> Double? {
        let bounds = current.keys.sorted()
        guard let total = bounds.last.map({ (current[$0] ?? 0) - (previous[$0] ?? 0) }), total > 0 else { return nil }
        let rank = q * total
        var lower = 0.0
        var below = 0.0
        for bound in bounds {
            let count = (current[bound] ?? 0) - (previous[bound] ?? 0)
            if count >= rank {
                guard bound.isFinite else { return lower }
                guard count > below else { return bound }
                return lower + (bound - lower) * (rank - below) / (count - below)
            }
            lower = bound.isFinite ? bound : lower
            below = count
        }
        return lower
    }

    /// The per-listener counters in a Prometheus text exposition (the gateway's own: one sample a line).
    package static func totals(from exposition: [UInt8]) -> [String: Totals] {
        var result: [String: Totals] = [:]
        let text = String(decoding: exposition, as: UTF8.self)
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let brace = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}") else { continue }
            let name = line[..<brace]
            guard name == "gateway_requests_total" || name == "gateway_request_duration_seconds_bucket" || name == "gateway_connections_active"
                || name == "gateway_tls_handshakes_total"
            else { continue }
            let labels = parseLabels(line[line.index(after: brace)..<close])
            guard let listener = labels["listener"], let value = Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)) else { continue }
            var totals = result[listener] ?? Totals()
            switch name {
            case "gateway_requests_total":
                totals.requests[labels["status_class"] ?? "?", default: 0] += value
            case "gateway_request_duration_seconds_bucket":
                guard let le = labels["le"], let bound = le == "+Inf" ? Double.infinity : Double(le) else { continue }
                totals.buckets[bound, default: 0] += value
            case "gateway_connections_active":
                totals.active += value
            default:
                if labels["result"] == "success" { totals.handshakes += value } else { totals.refusedHandshakes += value }
            }
            result[listener] = totals
        }
        return result
    }

    /// `a="x",b="y\"z"` as a dictionary (Prometheus escapes `\\`, `\"` and `\n` in label values).
    package static func parseLabels(_ text: Substring) -> [String: String] {
        var labels: [String: String] = [:]
        var index = text.startIndex
        while index < text.endIndex {
            guard let equals = text[index...].firstIndex(of: "=") else { break }
            let key = text[index..<equals].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
            var cursor = text.index(after: equals)
            guard cursor < text.endIndex, text[cursor] == "\"" else { break }
            cursor = text.index(after: cursor)
            var value = ""
            while cursor < text.endIndex, text[cursor] != "\"" {
                if text[cursor] == "\\", text.index(after: cursor) < text.endIndex {
                    cursor = text.index(after: cursor)
                    value.append(text[cursor] == "n" ? "\n" : text[cursor])
                } else {
                    value.append(text[cursor])
                }
                cursor = text.index(after: cursor)
            }
            labels[key] = value
            index = cursor < text.endIndex ? text.index(after: cursor) : cursor
        }
        return labels
    }
}
