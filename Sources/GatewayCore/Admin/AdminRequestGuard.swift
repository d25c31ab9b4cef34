#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1

/// Keeps web pages away from the admin listener, which has no authentication: a page visited on the gateway's
/// host could otherwise POST /reload (a "simple" cross-origin request needs no preflight), and through DNS
/// rebinding read /config and /metrics. So, as local development servers and Docker's and Consul's APIs do:
/// - `Host` must name the listener by IP literal, `localhost` or this machine's host name (with the listener's
///   port, or none): a rebinding attack always arrives with its own DNS name;
/// - a state change (`POST`) from a browser context is refused: an `Origin` that is not the admin listener's
///   own, or `Sec-Fetch-Site: cross-site` / `same-site`.
/// A request without `Host` (HTTP/1.0 tools) or without `Origin` (curl, Prometheus, scripts) passes.
package struct AdminRequestGuard: Sendable {
    package let port: Int?
    package let hostName: String?
    /// The IP address the admin listener is bound to (an Origin must name it, a loopback address, localhost or
    /// the host name, with the listener's port).
    package let boundIP: String?

    package init(port: Int?, boundIP: String? = nil, hostName: String? = AdminRequestGuard.systemHostName()) {
        self.port = port
        self.boundIP = boundIP?.lowercased()
        self.hostName = hostName?.lowercased()
    }

    /// The refusal for `head`, or nil when it may go on.
    package func refusal(for head: HTTPRequestHead) -> AdminEndpoints.Response? {
        let hosts = head.headers["host"]
        guard hosts.count <= 1 else { return .text(.badRequest, "repeated Host header\n") }
        if let host = hosts.first, !isOwn(authority: host) {
            return .text(.misdirectedRequest, "Host '\(host)' is not this admin listener: use its IP address, localhost or the machine's host name\n")
        }
        guard head.method != .GET, head.method != .HEAD else { return nil }
        for origin in head.headers["origin"] where origin != "null" {
            guard isOwn(origin: origin) else {
                return .text(.forbidden, "cross-origin \(head.method) refused (Origin: \(origin))\n")
            }
        }
        if head.headers["origin"].contains("null") { return .text(.forbidden, "cross-origin \(head.method) refused (Origin: null)\n") }
        if let site = head.headers.first(name: "sec-fetch-site")?.lowercased(), site == "cross-site" || site == "same-site" {
            return .text(.forbidden, "cross-site \(head.method) refused (Sec-Fetch-Site: \(site))\n")
        }
        return nil
    }

    /// Whether `authority` (host[:port]) names this listener.
    package func isOwn(authority: String) -> Bool {
        var host = Substring(authority.lowercased())
        var givenPort: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") { givenPort = after.dropFirst() } else if !after.isEmpty { return false }
            host = host[host.index(after: host.startIndex)..<close]
            guard (try? SocketAddress(ipAddress: String(host), port: 0)) != nil else { return false }
        } else {
            if let colon = host.lastIndex(of: ":") {
                givenPort = host[host.index(after: colon)...]
                host = host[..<colon]
            }
            let isIPv4 = (try? SocketAddress(ipAddress: String(host), port: 0)) != nil && !host.contains(":")
            guard isIPv4 || host == "localhost" || host == "localhost." || (hostName.map { host == $0 || host == $0 + "." } ?? false) else { return false }
        }
        if let givenPort, let port { return Int(givenPort) == port }
        return true
    }

    /// Whether `origin` ("http://127.0.0.1:9901") is the admin listener itself: its scheme's effective port
    /// (80 or 443 when absent) is the listener's, and its host is the bound address, a loopback address,
    /// localhost or this machine's host name. Stricter than the Host check: any other IP literal (another
    /// machine's page) is foreign.
    package func isOwn(origin: String) -> Bool {
        let lower = origin.lowercased()
        let rest: Substring
        let defaultPort: Int
        if lower.hasPrefix("http://") {
            rest = lower.dropFirst(7)
            defaultPort = 80
        } else if lower.hasPrefix("https://") {
            rest = lower.dropFirst(8)
            defaultPort = 443
        } else {
            return false
        }
        guard !rest.isEmpty, !rest.contains("/") else { return false }
        var host = rest
        var effectivePort = defaultPort
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("]") {
            guard let parsed = Int(rest[rest.index(after: colon)...]) else { return false }
            effectivePort = parsed
            host = rest[..<colon]
        }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard port == nil || effectivePort == port else { return false }
        let name = String(host)
        return name == "localhost" || name == "127.0.0.1" || name == "::1" || name == boundIP || name == hostName
    }

    package static func systemHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name
    }
}
