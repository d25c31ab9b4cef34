/// One compiled route condition: host (exact or `*.` wildcard, case-insensitive, port ignored), path prefix or
/// exact path, and methods. An absent part matches everything.
struct RouteMatcher: Sendable {
    enum HostPattern: Sendable, Equatable {
        case any
        case exact(String)
        /// `*.example.com` matches `a.example.com` (one or more labels) but not `example.com`.
        case suffix(String)
    }

    var host: HostPattern = .any
    var pathPrefix: String?
    var pathExact: String?
    var methods: Set<String>?

    /// `host` is the request's Host header already lowercased and stripped of its port.
    func matches(host requestHost: Substring, path: Substring, method: String) -> Bool {
        switch host {
        case .any: break
        case .exact(let name): guard requestHost == name else { return false }
        case .suffix(let dotSuffix):
            guard requestHost.count > dotSuffix.count, requestHost.hasSuffix(dotSuffix) else { return false }
        }
        if let pathExact, path != pathExact { return false }
        if let pathPrefix, !path.hasPrefix(pathPrefix) { return false }
        if let methods, !methods.contains(method) { return false }
        return true
    }
}
