#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix

/// Resolves with `getaddrinfo` (/etc/hosts, then the servers of /etc/resolv.conf, as every program of the
/// machine does) on NIO's blocking-I/O thread pool, never on an event loop. It reports no TTL.
package struct SystemHostResolver: HostResolver {
    package init() {}

    package func resolve(_ host: String, family: DNSFamily, on eventLoop: any EventLoop) -> EventLoopFuture<ResolvedHost> {
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try Self.lookUp(host, family: family)
        }
    }

    package static func lookUp(_ host: String, family: DNSFamily) throws -> ResolvedHost {
        var hints = addrinfo()
        switch family {
        case .all: hints.ai_family = AF_UNSPEC
        case .ipv4: hints.ai_family = AF_INET
        case .ipv6: hints.ai_family = AF_INET6
        }
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else {
            throw HostResolutionError(host: host, reason: gai_strerror(status).map { String(validatingCString: $0) ?? "" } ?? "error \(status)")
        }
        defer { freeaddrinfo(list) }
        var addresses: [String] = []
        var entry = list
        while let info = entry?.pointee {
            entry = info.ai_next
            var text = [UInt8](repeating: 0, count: Int(NI_MAXHOST))
            let written = text.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars in
                    info.ai_addr.map { getnameinfo($0, info.ai_addrlen, chars.baseAddress, socklen_t(chars.count), nil, 0, NI_NUMERICHOST) } ?? -1
                }
            }
            guard written == 0 else { continue }
            let address = String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw HostResolutionError(host: host, reason: "no addresses") }
        return ResolvedHost(addresses: addresses, ttl: nil)
    }
}
