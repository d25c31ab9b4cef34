import NIOHTTP1

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

    /// `host` is the request's Host header already lowercased and stripped of its port. Compares bytes: a
    /// route names exact bytes (no Unicode equivalence), and this runs for every request.
    package func matches(host requestHost: Substring, path: Substring, method: String) -> Bool {
        switch host {
        case .any: break
        case .exact(let name): guard requestHost.utf8.elementsEqual(name.utf8) else { return false }
        case .suffix(let dotSuffix):
            let hostBytes = requestHost.utf8, suffixBytes = dotSuffix.utf8
            guard hostBytes.count > suffixBytes.count else { return false }
            let start = hostBytes.index(hostBytes.endIndex, offsetBy: -suffixBytes.count)
            guard hostBytes[start...].elementsEqual(suffixBytes) else { return false }
        }
        if let pathExact, !path.utf8.elementsEqual(pathExact.utf8) { return false }
        if let pathPrefix, !path.utf8.starts(with: pathPrefix.utf8) { return false }
        if let methods, !methods.contains(method) { return false }
        return true
    }

    /// `matches` over bytes (the same comparisons, byte for byte; the method's name made only when a route
    /// names methods).
    package func matches(host requestHost: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer, method: HTTPMethod) -> Bool {
        switch host {
        case .any: break
        case .exact(let name): guard Self.equal(requestHost, name) else { return false }
        case .suffix(let dotSuffix):
            let count = dotSuffix.utf8.count
            guard requestHost.count > count, Self.equal(UnsafeRawBufferPointer(rebasing: requestHost[(requestHost.count - count)...]), dotSuffix) else {
                return false
            }
        }
        if let pathExact, !Self.equal(path, pathExact) { return false }
        if let pathPrefix {
            let count = pathPrefix.utf8.count
            guard path.count >= count, Self.equal(UnsafeRawBufferPointer(rebasing: path[0..<count]), pathPrefix) else { return false }
        }
        if let methods, !methods.contains(method.rawValue) { return false }
        return true
    }

    private static func equal(_ bytes: UnsafeRawBufferPointer, _ text: String) -> Bool {
        guard bytes.count == text.utf8.count else { return false }
        if let equal = text.utf8.withContiguousStorageIfAvailable({ bytes.elementsEqual(UnsafeRawBufferPointer($0)) }) { return equal }
        return bytes.elementsEqual(text.utf8)
    }
}
