import Foundation
import NIOCore
import NIOHTTP1
import PluginAPI

/// What the admin listener answers. Kept apart from the channel handler so each endpoint is a plain function.
///
/// - `GET /`: the operator's console (`ConsoleAssets`), and `GET /api/...` the JSON behind it (`ConsoleAPI`).
/// - `GET /healthz`: the process is alive and its event loops answer.
/// - `GET /readyz`: every listener is bound, every backend has a server in rotation, and no plugin instance said
///   it cannot work (503 lists what is not).
/// - `GET /metrics`: Prometheus text format.
/// - `GET /config`: the effective configuration of the current generation (defaults filled in) as JSON,
///   with plugin settings that look like secrets redacted.
/// - `GET /plugins`: loaded plugin libraries and each listener's chain.
/// - `POST /reload`: reloads the configuration file like SIGHUP and reports the result.
/// - `POST /connections/close?sha256=<hex>` (or `?serial=<hex>`): closes every open connection whose client
///   certificate has that SHA-256 fingerprint (or serial) and lists them.
package struct AdminEndpoints: Sendable {
    package let server: GatewayServer
    package let console: ConsoleAPI

    package init(server: GatewayServer, series: ConsoleSeries) {
        self.server = server
        self.console = ConsoleAPI(server: server, series: series)
    }

    package struct Response: Sendable {
        package var status: HTTPResponseStatus
        package var contentType: String
        package var body: [UInt8]
        /// Headers beyond content-type and content-length (the console's Content-Security-Policy).
        package var headers: [(String, String)] = []

        package static func text(_ status: HTTPResponseStatus, _ text: String) -> Response {
            Response(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
        }

        package static func json(_ status: HTTPResponseStatus, _ value: Any) -> Response {
            let data = (try? JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])) ?? Data("{}".utf8)
            return Response(status: status, contentType: "application/json", body: Array(data) + [10])
        }
    }

    package static let paths = ["/healthz", "/readyz", "/metrics", "/config", "/plugins", "/reload", "/connections/close"]

    /// What needs no token (`admin.token_file`): the probes, and the console's static files (no data in them).
    package static func isPublic(_ path: String) -> Bool {
        path == "/healthz" || path == "/readyz" || ConsoleAssets.asset(for: path) != nil
    }

    /// The path of `uri`, without its query.
    package static func path(of uri: String) -> String {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
    }

    /// The query of `uri` as name/value pairs (percent-decoded; the last of a repeated name wins).
    package static func query(of uri: String) -> [String: String] {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return [:] }
        var result: [String: String] = [:]
        for pair in parts[1].split(separator: "&") {
            let nameValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            result[nameValue[0]] = nameValue.count > 1 ? nameValue[1] : ""
        }
        return result
    }

    /// The endpoints that run off the admin event loop (`answer` returns nil for them).
    package static let asynchronousPaths: Set<String> = ["/reload", "/connections/close"]

    /// The answer for every endpoint but `POST /reload` (nil: call `reload`).
    package func answer(method: HTTPMethod, uri: String) -> Response? {
        let path = Self.path(of: uri)
        if let asset = ConsoleAssets.asset(for: path) {
            guard method == .GET || method == .HEAD else { return .text(.methodNotAllowed, "use GET \(path)\n") }
            return asset
        }
        if ConsoleAPI.paths.contains(path) {
            guard method == .GET || method == .HEAD else { return .text(.methodNotAllowed, "use GET \(path)\n") }
            return console.answer(path: path, query: Self.query(of: uri))
        }
        guard Self.paths.contains(path) else {
            return .text(.notFound, "not found; endpoints: / (the console) \(ConsoleAPI.paths.sorted().joined(separator: " ")) \(Self.paths.joined(separator: " "))\n")
        }
        if Self.asynchronousPaths.contains(path) { return method == .POST ? nil : .text(.methodNotAllowed, "use POST \(path)\n") }
        guard method == .GET || method == .HEAD else { return .text(.methodNotAllowed, "use GET \(path)\n") }
        let runtime = server.runtime
        switch path {
        case "/healthz":
            return .text(.ok, "ok\n")
        case "/readyz":
            return readiness(runtime)
        case "/metrics":
            return Response(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: runtime.metrics.exposition(runtime: runtime))
        case "/config":
            return Response(status: .ok, contentType: "application/json", body: EffectiveConfig.json(runtime.config))
        default:
            return plugins(runtime)
        }
    }

    /// The endpoints `answer` left: `POST /reload` and `POST /connections/close`.
    package func answerAsynchronously(method: HTTPMethod, uri: String) async -> Response {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.first == "/connections/close" else { return await reload(method: method) }
        return await closeConnections(query: parts.count > 1 ? String(parts[1]) : "")
    }

    private func closeConnections(query: String) async -> Response {
        let pairs = query.split(separator: "&").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
        guard pairs.count == 1, pairs[0].count == 2, let hex = GatewayServer.IdentityMatch.normalise(pairs[0][1].removingPercentEncoding ?? pairs[0][1]) else {
            return .text(.badRequest, "give one of sha256=<hex> or serial=<hex>, e.g. POST /connections/close?sha256=5a9f...\n")
        }
        let match: GatewayServer.IdentityMatch
        switch pairs[0][0] {
        case "sha256":
            guard hex.count == 64 else { return .text(.badRequest, "sha256 needs 64 hex digits, got \(hex.count)\n") }
            match = .sha256(hex)
        case "serial":
            match = .serial(hex)
        default:
            return .text(.badRequest, "give one of sha256=<hex> or serial=<hex>\n")
        }
        let closed = await server.closeConnections(of: match)
        server.logger.warning("closed the connections of a client certificate on request (POST /connections/close)", metadata: [
            "match": "\(pairs[0][0])=\(hex)", "closed": "\(closed.count)",
            "subjects": "\(Set(closed.map(\.subject)).sorted().joined(separator: "; "))",
        ])
        return .json(.ok, ["closed": closed.count, "connections": closed.map { ["listener": $0.listener, "client": $0.client, "subject": $0.subject] }])
    }

    package func reload(method: HTTPMethod) async -> Response {
        let outcome = await server.reload()
        return .json(outcome.success ? .ok : .unprocessableEntity, ["success": outcome.success, "errors": outcome.errors])
    }

    private func readiness(_ runtime: GatewayRuntime) -> Response {
        var problems: [String] = []
        if server.isShuttingDown {
            problems.append("shutting down")
        } else if !server.listenersBound {
            problems.append("not every listener is bound")
        }
        let now = NIODeadline.now()
        for backend in runtime.backends where !backend.servers.contains(where: { $0.isAvailable(now: now) }) {
            problems.append("backend '\(backend.name)' has no server in rotation")
        }
        // Plugin instances of the running configuration that said they cannot work (set_ready, ABI 1.3): an
        // Audit instance whose file cannot be written, which denies its listener's requests meanwhile.
        let tags = Set(runtime.listeners.flatMap { $0.plugins?.entries.map(\.tag) ?? [] })
        problems.append(contentsOf: PluginRegistry.shared.unready(among: tags))
        return problems.isEmpty ? .text(.ok, "ready\n") : .text(.serviceUnavailable, "not ready:\n" + problems.map { "- \($0)\n" }.joined())
    }

    private func plugins(_ runtime: GatewayRuntime) -> Response {
        var libraries: [String: [String: Any]] = [:]
        var chains: [String: [[String: Any]]] = [:]
        for listener in runtime.listeners {
            let entries = listener.plugins?.entries ?? []
            chains[listener.name] = entries.map { instance in
                libraries[instance.library.path] = [
                    "name": instance.library.name, "version": instance.library.version, "path": instance.library.path,
                    "abi": "\(GW_PLUGIN_ABI_MAJOR).\(instance.library.abiMinor)", "hooks": instance.library.hookNames,
                    "blocking": instance.library.isBlocking,
                ]
                return ["plugin": instance.name, "version": instance.library.version, "library": instance.library.path,
                        "on_error": instance.onError.rawValue]
            }
        }
        return .json(.ok, ["libraries": Array(libraries.values).sorted { "\($0["name"]!)" < "\($1["name"]!)" }, "listeners": chains])
    }
}
