/// The ordered routes of a listener: the first match wins; no match means 404 from the gateway.
package struct Router: Sendable {
    package struct Route: Sendable {
        package var matcher: RouteMatcher
        package var backend: BackendGroup
    }

    package var routes: [Route]

    /// `hostHeader` is the raw Host header (any case, maybe with a port); `uri` the request target.
    package func route(hostHeader: String?, uri: String, method: String) -> BackendGroup? {
        let host = Self.normaliseHost(hostHeader ?? "")
        let path = Self.path(of: uri)
        for route in routes where route.matcher.matches(host: host, path: path, method: method) {
            return route.backend
        }
        return nil
    }

    /// Lowercases and strips the port: `API.Example.com:8443` -> `api.example.com`, `[::1]:443` -> `[::1]`.
    package static func normaliseHost(_ raw: String) -> Substring {
        var host = Substring(raw)
        if host.hasPrefix("[") {
            if let end = host.firstIndex(of: "]") { host = host[...end] }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        if host.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) { return Substring(host.lowercased()) }
        return host
    }

    /// The path part of a request target: `/a/b?x=1` -> `/a/b`; absolute-form targets are reduced to their path.
    package static func path(of uri: String) -> Substring {
        var target = Substring(uri)
        if !target.hasPrefix("/"), let scheme = target.range(of: "://") {
            let rest = target[scheme.upperBound...]
            target = rest.firstIndex(of: "/").map { rest[$0...] } ?? "/"
        }
        if let q = target.firstIndex(where: { $0 == "?" || $0 == "#" }) { target = target[..<q] }
        return target
    }
}
