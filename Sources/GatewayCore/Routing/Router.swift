import NIOHTTP1

/// The ordered routes of a listener: the first match wins; no match means 404 from the gateway.
package struct Router: Sendable {
    package struct Route: Sendable {
        package var matcher: RouteMatcher
        package var backend: BackendGroup

        package init(matcher: RouteMatcher, backend: BackendGroup) {
            self.matcher = matcher
            self.backend = backend
        }
    }

    package var routes: [Route]

    package init(routes: [Route]) {
        self.routes = routes
    }

    /// `hostHeader` is the raw Host header (any case, maybe with a port); `uri` the request target.
    package func route(hostHeader: String?, uri: String, method: String) -> BackendGroup? {
        let host = Self.normaliseHost(hostHeader ?? "")
        let path = Self.path(of: uri)
        for route in routes where route.matcher.matches(host: host, path: path, method: method) {
            return route.backend
        }
        return nil
    }

    /// `route` over bytes: `host` is a Host value the validator passed (ASCII; nil if none), `target` an
    /// origin-form request target (what the validator leaves): no Substring or String made unless the host
    /// has an upper-case letter. Only ASCII letters are lowercased, which is what the String routing does
    /// for any host the validator lets through.
    package func route(host: UnsafeRawBufferPointer?, target: UnsafeRawBufferPointer, method: HTTPMethod) -> BackendGroup? {
        let path = UnsafeRawBufferPointer(rebasing: target[0..<Self.pathLength(target)])
        let (end, upper) = host.map { Self.hostEnd($0) } ?? (0, false)
        func first(_ host: UnsafeRawBufferPointer) -> BackendGroup? {
            routes.withUnsafeBufferPointer { routes in
                for index in routes.indices where routes[index].matcher.matches(host: host, path: path, method: method) {
                    return routes[index].backend
                }
                return nil
            }
        }
        guard let host, end > 0 else { return first(UnsafeRawBufferPointer(start: nil, count: 0)) }
        guard upper else { return first(UnsafeRawBufferPointer(rebasing: host[0..<end])) }
        var lowered = Array(host[0..<end])
        for i in lowered.indices where lowered[i] >= 65 && lowered[i] <= 90 { lowered[i] |= 0x20 }
        return lowered.withUnsafeBytes { first($0) }
    }

    /// Lowercases and strips the port: `API.Example.com:8443` -> `api.example.com`, `[::1]:443` -> `[::1]`.
    /// Works on the UTF-8 bytes (every delimiter is ASCII): Character-level search runs grapheme breaking
    /// over every byte of every request's Host.
    package static func normaliseHost(_ raw: String) -> Substring {
        // Over the string's own bytes (a native string lends them; NIO's always are): stepping a UTF-8 view's
        // indices was ~900 instructions for a `localhost:8443` on every request.
        if let (end, upper) = raw.utf8.withContiguousStorageIfAvailable({ hostEnd(UnsafeRawBufferPointer($0)) }) {
            let host = raw[raw.utf8.startIndex..<raw.utf8.index(raw.utf8.startIndex, offsetBy: end)]
            return upper ? Substring(host.lowercased()) : host
        }
        let utf8 = raw.utf8
        var end = utf8.endIndex
        if utf8.first == UInt8(ascii: "[") {
            if let close = utf8.firstIndex(of: UInt8(ascii: "]")) { end = utf8.index(after: close) }
        } else if let colon = utf8.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > utf8.startIndex, utf8[utf8.index(before: end)] == UInt8(ascii: ".") { end = utf8.index(before: end) }
        let host = raw[utf8.startIndex..<end]
        if host.utf8.contains(where: { $0 >= 65 && $0 <= 90 }) { return Substring(host.lowercased()) }
        return host
    }

    /// Where the host of `raw` ends (before the port and a trailing dot), and whether it has an upper-case
    /// letter before that.
    private static func hostEnd(_ raw: UnsafeRawBufferPointer) -> (end: Int, upper: Bool) {
        var end = raw.count
        if raw.first == UInt8(ascii: "[") {
            if let close = raw.firstIndex(of: UInt8(ascii: "]")) { end = close + 1 }
        } else if let colon = raw.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > 0, raw[end - 1] == UInt8(ascii: ".") { end -= 1 }
        var upper = false
        for i in 0..<end where raw[i] >= 65 && raw[i] <= 90 { upper = true }
        return (end, upper)
    }

    /// How many bytes of an origin-form target are its path: up to its query or fragment.
    @inline(__always)
    package static func pathLength(_ target: UnsafeRawBufferPointer) -> Int {
        var end = 0
        while end < target.count, target[end] != UInt8(ascii: "?"), target[end] != UInt8(ascii: "#") { end += 1 }
        return end
    }

    /// The path part of a request target: `/a/b?x=1` -> `/a/b`; absolute-form targets are reduced to their path.
    package static func path(of uri: String) -> Substring {
        // An origin-form target (all but a few) over its own bytes, as `normaliseHost`.
        if let end = uri.utf8.withContiguousStorageIfAvailable({ bytes -> Int? in
            guard bytes.first == UInt8(ascii: "/") else { return nil }
            return pathLength(UnsafeRawBufferPointer(bytes))
        }), let end {
            return uri[uri.utf8.startIndex..<uri.utf8.index(uri.utf8.startIndex, offsetBy: end)]
        }
        let utf8 = uri.utf8
        var start = utf8.startIndex
        if utf8.first != UInt8(ascii: "/") {
            if let authority = authorityStart(utf8) {
                guard let slash = utf8[authority...].firstIndex(of: UInt8(ascii: "/")) else { return "/" }
                start = slash
            }
        }
        let end = utf8[start...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        return uri[start..<end]
    }

    /// Where the authority of an absolute-form target starts (after the first `://`), if it has one.
    private static func authorityStart(_ utf8: String.UTF8View) -> String.Index? {
        var index = utf8.startIndex
        while index < utf8.endIndex {
            if utf8[index] == UInt8(ascii: ":") {
                let slash1 = utf8.index(after: index)
                if slash1 < utf8.endIndex, utf8[slash1] == UInt8(ascii: "/") {
                    let slash2 = utf8.index(after: slash1)
                    if slash2 < utf8.endIndex, utf8[slash2] == UInt8(ascii: "/") { return utf8.index(after: slash2) }
                }
            }
            index = utf8.index(after: index)
        }
        return nil
    }
}
