/// One compiled route condition: host (exact or `*.` wildcard, case-insensitive, port ignored), path prefix or
/// exact path, and methods. An absent part matches everything.
package struct RouteMatcher: Sendable {
    package enum HostPattern: Sendable, Equatable {
        case any
        case exact(String)
        /// `*.example.com` matches `a.example.com` (one or more labels) but not `example.com`.
        case suffix(String)
    }

    package var host: HostPattern = .any
    package var pathPrefix: String?
    package var pathExact: String?
    package var methods: Set<String>?

    /// Matches every request; set the fields that narrow it.
    package init() {}

    /// `host` is the request's Host header already lowercased and stripped of its port.
    package func matches(host requestHost: Substring, path: Substring, method: String) -> Bool {
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
