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

    private static let names: [[UInt8]] = [
        "gateway_requests_total{", "gateway_request_duration_seconds_bucket{", "gateway_connections_active{", "gateway_tls_handshakes_total{",
    ].map { Array($0.utf8) }

    /// The per-listener counters in a Prometheus text exposition (the gateway's own: one sample a line). Read as
    /// bytes: the lines of other metrics are passed over after a prefix comparison.
    package static func totals(from exposition: [UInt8]) -> [String: Totals] {
        var result: [String: Totals] = [:]
        exposition.withUnsafeBufferPointer { bytes in
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != 10 { lineEnd += 1 }
                defer { lineStart = lineEnd + 1 }
                guard lineEnd - lineStart > 8, bytes[lineStart] == UInt8(ascii: "g"),
                      let kind = names.firstIndex(where: { name in
                          name.count < lineEnd - lineStart && name.indices.allSatisfy { bytes[lineStart + $0] == name[$0] }
                      })
                else { continue }
                let line = UnsafeBufferPointer(rebasing: bytes[(lineStart + names[kind].count)..<lineEnd])
                guard let close = line.lastIndex(of: UInt8(ascii: "}")) else { continue }
                let labels = parseLabels(UnsafeBufferPointer(rebasing: line[..<close]))
                let valueText = String(decoding: line[(close + 1)...], as: UTF8.self).trimmingCharacters(in: .whitespaces)
                guard let listener = labels["listener"], let value = Double(valueText) else { continue }
                var totals = result[listener] ?? Totals()
                switch kind {
                case 0:
                    totals.requests[labels["status_class"] ?? "?", default: 0] += value
                case 1:
                    guard let le = labels["le"], let bound = le == "+Inf" ? Double.infinity : Double(le) else { continue }
                    totals.buckets[bound, default: 0] += value
                case 2:
                    totals.active += value
                default:
                    if labels["result"] == "success" { totals.handshakes += value } else { totals.refusedHandshakes += value }
                }
                result[listener] = totals
            }
        }
        return result
    }

    /// `a="x",b="y\"z"` as a dictionary (Prometheus escapes `\\`, `\"` and `\n` in label values).
    package static func parseLabels(_ text: UnsafeBufferPointer<UInt8>) -> [String: String] {
        var labels: [String: String] = [:]
        var index = 0
        while index < text.count {
            while index < text.count, text[index] == UInt8(ascii: ",") || text[index] == UInt8(ascii: " ") { index += 1 }
            let keyStart = index
            while index < text.count, text[index] != UInt8(ascii: "=") { index += 1 }
            guard index + 1 < text.count, text[index + 1] == UInt8(ascii: "\"") else { break }
            let key = String(decoding: UnsafeBufferPointer(rebasing: text[keyStart..<index]), as: UTF8.self)
            index += 2
            var value: [UInt8] = []
            while index < text.count, text[index] != UInt8(ascii: "\"") {
                if text[index] == UInt8(ascii: "\\"), index + 1 < text.count {
                    index += 1
                    value.append(text[index] == UInt8(ascii: "n") ? 10 : text[index])
                } else {
                    value.append(text[index])
                }
                index += 1
            }
            labels[key] = String(decoding: value, as: UTF8.self)
            index += 1
        }
        return labels
    }
}
