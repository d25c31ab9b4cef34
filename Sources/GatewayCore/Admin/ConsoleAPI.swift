import Foundation
import NIOCore

/// The JSON endpoints behind the operator's console (`GET /api/...`), for scripts as much as for the page:
/// - `/api/overview`: per listener, totals and the last 15 minutes of request rate, errors, latency, connections
///   and handshakes (`ConsoleSeries`);
/// - `/api/identities?listener=&q=&order=recent|active&limit=`: verified clients (`ConsoleJournal`);
/// - `/api/refusals?limit=`: refused handshakes and denied requests, latest first, and counts by reason;
/// - `/api/expiry`: every certificate and CRL the running configuration uses, soonest first;
/// - `/api/plugins`: each listener's chain with calls, denials, failures and time per call;
/// - `/api/backends`: each backend's servers and their health;
/// - `/api/reloads`: the reload history.
package struct ConsoleAPI: Sendable {
    package let server: GatewayServer
    package let series: ConsoleSeries

    package static let paths: Set<String> = [
        "/api/overview", "/api/identities", "/api/refusals", "/api/expiry", "/api/plugins", "/api/backends", "/api/reloads",
    ]

    package func answer(path: String, query: [String: String], now: Date = Date()) -> AdminEndpoints.Response {
        let runtime = server.runtime
        let journal = runtime.metrics.console
        switch path {
        case "/api/overview": return .json(.ok, overview(runtime, now: now))
        case "/api/identities":
            let order = query["order"].flatMap(ConsoleJournal.Order.init(rawValue:)) ?? .recent
            let limit = min(max(Int(query["limit"] ?? "") ?? 100, 1), 10_000)
            let (clients, matched) = journal.clients(listener: query["listener"].flatMap { $0.isEmpty ? nil : $0 }, search: query["q"], order: order, limit: limit)
            return .json(.ok, ["matched": matched, "capacity": journal.config.identities, "order": order.rawValue, "clients": clients.map(Self.json)])
        case "/api/refusals":
            let limit = min(max(Int(query["limit"] ?? "") ?? 100, 1), 100_000)
            let (latest, counts) = journal.refusals(limit: limit)
            return .json(.ok, [
                "capacity": journal.config.refusals,
                "counts": counts.map { ["stage": $0.stage, "reason": $0.reason, "listener": $0.listener, "count": $0.count] },
                "latest": latest.map(Self.json),
            ])
        case "/api/expiry": return .json(.ok, expiry(runtime, warningDays: journal.config.expiryWarningDays, now: now))
        case "/api/plugins": return .json(.ok, plugins(runtime))
        case "/api/backends": return .json(.ok, backends(runtime))
        default:
            return .json(.ok, ["reloads": journal.reloads().map { ["time": Self.time($0.time), "success": $0.success, "errors": $0.errors] as [String: Any] }])
        }
    }

    // MARK: views

    private func overview(_ runtime: GatewayRuntime, now: Date) -> [String: Any] {
        let listeners: [[String: Any]] = runtime.listeners.map { listener in
            let totals = series.totals(listener.name)
            return [
                "name": listener.name, "protocol": listener.tls == nil ? "http" : "https",
                "client_auth": listener.tls?.clientAuth.rawValue ?? "none",
                "active_connections": totals?.active ?? 0,
                "requests": totals?.requests.values.reduce(0, +) ?? 0,
                "handshakes_accepted": totals?.handshakes ?? 0, "handshakes_refused": totals?.refusedHandshakes ?? 0,
                "series": series.points(listener.name).map { point -> [String: Any] in
                    [
                        "t": point.time.timeIntervalSince1970, "rps": point.requestsPerSecond,
                        "errors_4xx_ps": point.clientErrorsPerSecond, "errors_5xx_ps": point.serverErrorsPerSecond,
                        "p50_ms": point.p50.map { $0 * 1000 } ?? NSNull(), "p99_ms": point.p99.map { $0 * 1000 } ?? NSNull(),
                        "active": point.activeConnections, "handshakes_ps": point.handshakesPerSecond,
                        "refused_handshakes_ps": point.refusedHandshakesPerSecond,
                    ]
                },
            ]
        }
        return [
            "now": now.timeIntervalSince1970, "interval_seconds": AdminServer.sampleInterval, "version": GatewayVersion.number,
            "started": Self.time(runtime.metrics.started), "config_loaded": Self.time(runtime.loadedAt), "listeners": listeners,
        ]
    }

    private func expiry(_ runtime: GatewayRuntime, warningDays: Int, now: Date) -> [String: Any] {
        var items = runtime.expiring
        if runtime.listeners.contains(where: { $0.tls?.revocation != nil }) {
            for crl in RevocationStore.shared.snapshot().crls {
                guard let next = crl.nextUpdate else { continue }
                items.append(.init(kind: .fetchedCRL, subject: "fetched \(Self.time(crl.fetchedAt))", file: crl.url, keyPath: "tls.revocation", expires: next))
            }
        }
        let names = runtime.config.listeners.map(\.name)
        let backendNames = runtime.config.backends.map(\.name)
        let rows: [[String: Any]] = items.sorted { $0.expires < $1.expires }.map { item in
            let days = item.expires.timeIntervalSince(now) / 86_400
            var listener = "admin"
            if let index = Self.index(in: item.keyPath, under: "listeners"), names.indices.contains(index) {
                listener = names[index]
            } else if let index = Self.index(in: item.keyPath, under: "backends"), backendNames.indices.contains(index) {
                listener = "backend \(backendNames[index])"
            } else if item.kind == .fetchedCRL {
                listener = "revocation"
            }
            return [
                "kind": item.kind.rawValue, "subject": item.subject, "file": item.file, "key_path": item.keyPath, "listener": listener,
                "expires": Self.time(item.expires), "days_left": (days * 10).rounded() / 10, "warning": days < Double(warningDays),
            ]
        }
        return ["warning_days": warningDays, "items": rows]
    }

    private func plugins(_ runtime: GatewayRuntime) -> [String: Any] {
        let chains: [[String: Any]] = runtime.listeners.map { listener in
            let entries: [[String: Any]] = (listener.plugins?.entries ?? []).map { entry in
                let stats = entry.stats.snapshot
                return [
                    "plugin": entry.name, "version": entry.library.version, "library": entry.library.path, "on_error": entry.onError.rawValue,
                    "calls": stats.calls, "denials": stats.denials, "failures": stats.failures,
                    "mean_us": stats.meanMicroseconds.map { ($0 * 100).rounded() / 100 } ?? NSNull(),
                    "ready": PluginRegistry.shared.unready(among: [entry.tag]).isEmpty,
                ]
            }
            return ["listener": listener.name, "since": Self.time(runtime.loadedAt), "chain": entries]
        }
        return ["listeners": chains]
    }

    private func backends(_ runtime: GatewayRuntime) -> [String: Any] {
        let now = NIODeadline.now()
        return ["backends": runtime.backends.sorted { $0.name < $1.name }.map { backend -> [String: Any] in
            let servers = backend.servers.map { server -> [String: Any] in
                let checked = server.checkedHealthy.load(ordering: .relaxed)
                let ejected = server.ejectedUntil.load(ordering: .relaxed) > Int64(now.uptimeNanoseconds)
                return [
                    "server": server.name, "address": server.address, "in_rotation": server.isAvailable(now: now),
                    "health": !checked ? "failing_checks" : ejected ? "ejected" : "healthy", "active_requests": server.activeRequests.load(ordering: .relaxed),
                ]
            }
            return ["name": backend.name, "tls": backend.tlsContext != nil, "health_check": backend.healthCheck != nil, "servers": servers]
        }]
    }

    /// The index of a key path's first component in list `list` (`listeners[2].tls.crl[0]` under `listeners`: 2).
    private static func index(in keyPath: String, under list: String) -> Int? {
        guard keyPath.hasPrefix(list + "["), let close = keyPath.firstIndex(of: "]") else { return nil }
        return Int(keyPath[keyPath.index(keyPath.startIndex, offsetBy: list.count + 1)..<close])
    }

    // MARK: encoding

    private static func json(_ client: ConsoleJournal.Client) -> [String: Any] {
        var row: [String: Any] = [
            "listener": client.listener, "subject": client.subject, "issuer": client.issuer, "serial": client.serial, "sha256": client.sha256,
            "sans": client.sans, "not_after": time(client.notAfter), "first_seen": time(client.firstSeen), "last_seen": time(client.lastSeen),
            "last_address": client.lastAddress, "connections": client.connections, "requests": client.requests, "denials": client.denials,
        ]
        if let plugin = client.deniedBy { row["denied_by"] = plugin }
        if let reason = client.denialReason { row["denial_reason"] = reason }
        return row
    }

    private static func json(_ refusal: ConsoleJournal.Refusal) -> [String: Any] {
        var row: [String: Any] = [
            "time": time(refusal.time), "listener": refusal.listener, "client": refusal.client, "stage": refusal.stage.rawValue,
            "reason": refusal.reason, "detail": refusal.detail,
        ]
        if let subject = refusal.subject { row["subject"] = subject }
        if let issuer = refusal.issuer { row["issuer"] = issuer }
        if let serial = refusal.serial { row["serial"] = serial }
        if let plugin = refusal.plugin { row["plugin"] = plugin }
        if let status = refusal.status { row["status"] = status }
        return row
    }

    private static func time(_ date: Date) -> String {
        date.formatted(.iso8601)
    }
}
