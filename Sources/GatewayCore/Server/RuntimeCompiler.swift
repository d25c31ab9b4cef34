import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// Turns a decoded `GatewayConfig` into a `GatewayRuntime`: resolves files against the config's directory,
/// parses every certificate, key, CA bundle and CRL, checks that keys match certificates and that CRLs are
/// signed by the CAs they name, and reports every problem by key path.
package struct RuntimeCompiler {
    package let baseDirectory: String
    package let source: String
    package let metrics: GatewayMetrics
    package var now = Date()
    private let issues = ConfigIssueCollector()
    /// Every file this generation was built from (resolved path), stamped before it was read: what `watch` looks at.
    private let files = StampedFiles()

    package final class StampedFiles {
        package var stamps: [String: FileStamp] = [:]
    }
    /// Every certificate and CRL file this generation uses, with its expiry (the console's expiry view).
    private let expiring = ExpiringItems()

    package final class ExpiringItems {
        package var items: [ExpiringItem] = []
    }
    /// Plugin instances created so far: destroyed again if the configuration turns out invalid.
    private let created = CreatedPlugins()

    package final class CreatedPlugins {
        package var instances: [PluginInstance] = []
        package var pool: NIOThreadPool?
    }

    package init(baseDirectory: String, source: String, metrics: GatewayMetrics = GatewayMetrics()) {
        self.baseDirectory = baseDirectory
        self.source = source
        self.metrics = metrics
    }

    package func compile(_ config: GatewayConfig) throws -> GatewayRuntime {
        let searchPaths = (config.pluginPaths ?? [Self.executableDirectory]).map(resolve)
        let backends = compileBackends(config.backends)
        let hostResolver = config.resolver.flatMap { compileResolver($0) }
        var listeners: [CompiledListener] = []
        var names = Set<String>()
        if config.listeners.isEmpty { issues.add("listeners", "at least one listener is required") }
        if config.watchInterval.nanoseconds < 100_000_000 { issues.add("watch_interval", "must be at least 100ms, got \(config.watchInterval)") }
        if let admin = config.admin, let address = parseListenAddress(admin.address, path: "admin.address"),
           config.listeners.contains(where: { $0.address == admin.address }), address.port != 0 {
            issues.add("admin.address", "'\(admin.address)' is also a listener's address")
        }
        let admin = config.admin.flatMap { compileAdmin($0) }
        for (i, listener) in config.listeners.enumerated() {
            let path = "listeners[\(i)]"
            if listener.name.isEmpty { issues.add("\(path).name", "must not be empty") }
            if !names.insert(listener.name).inserted { issues.add("\(path).name", "duplicate listener name '\(listener.name)'") }
            if let compiled = compileListener(listener, path: path, backends: backends, pluginPaths: searchPaths) { listeners.append(compiled) }
        }
        guard issues.issues.isEmpty else {
            for instance in created.instances { instance.destroy() }
            try? created.pool?.syncShutdownGracefully()
            throw ConfigValidationError(source: source, issues: issues.issues)
        }
        return GatewayRuntime(
            listeners: listeners, backends: Array(backends.values), config: config, metrics: metrics, fileStamps: files.stamps,
            hostResolver: hostResolver ?? SystemHostResolver(), admin: admin, expiring: expiring.items
        )
    }

    // MARK: listeners

    private func compileListener(_ config: ListenerConfig, path: String, backends: [String: BackendGroup], pluginPaths: [String]) -> CompiledListener? {
        let address = parseListenAddress(config.address, path: "\(path).address")
        let alpn = compileALPN(config, path: path)
        var tls: ListenerTLS?
        switch (config.protocol, config.tls) {
        case (.https, nil):
            issues.add("\(path).tls", "required for protocol https")
        case (.http, .some):
            issues.add("\(path).tls", "not allowed for protocol http (use protocol: https)")
        case (.https, .some(let tlsConfig)):
            tls = compileTLS(tlsConfig, path: "\(path).tls", listener: config.name, alpn: alpn)
        case (.http, nil):
            break
        }
        let router = compileRoutes(config.routes, path: "\(path).routes", backends: backends)
        let limits = config.limits
        if limits.maxHeaderBytes < 1024 || limits.maxHeaderBytes > 1 << 20 { issues.add("\(path).limits.max_header_bytes", "must be between 1024 and 1048576") }
        if limits.maxHeaderCount < 8 || limits.maxHeaderCount > 10_000 { issues.add("\(path).limits.max_header_count", "must be between 8 and 10000") }
        if limits.maxBodyBytes < 0 { issues.add("\(path).limits.max_body_bytes", "must not be negative") }
        if limits.chunkedBufferBytes < 0 || limits.chunkedBufferBytes > 16 << 20 {
            issues.add("\(path).limits.chunked_buffer_bytes", "must be between 0 (always stream) and 16777216")
        }
        if limits.headerTimeout.nanoseconds <= 0 { issues.add("\(path).limits.header_timeout", "must be positive") }
        if limits.idleTimeout.nanoseconds <= 0 { issues.add("\(path).limits.idle_timeout", "must be positive") }
        if limits.bodyTimeout.nanoseconds <= 0 { issues.add("\(path).limits.body_timeout", "must be positive") }
        if limits.minBodyRate < 0 { issues.add("\(path).limits.min_body_rate", "must be 0 or more (bytes per second)") }
        if limits.sendTimeout.nanoseconds <= 0 { issues.add("\(path).limits.send_timeout", "must be positive") }
        if limits.handshakeTimeout.nanoseconds <= 0 { issues.add("\(path).limits.handshake_timeout", "must be positive") }
        if limits.maxConnections < 0 { issues.add("\(path).limits.max_connections", "must be 0 (no limit) or more") }
        if limits.maxConnectionsPerIP < 0 { issues.add("\(path).limits.max_connections_per_ip", "must be 0 (no limit) or more") }
        if config.websocket.idleTimeout.nanoseconds <= 0 { issues.add("\(path).websocket.idle_timeout", "must be positive") }
        let http2 = compileHTTP2(config, path: path)
        let plugins = compilePlugins(config.plugins, path: "\(path).plugins", listener: config.name, searchPaths: pluginPaths)
        let proxyProtocol = config.proxyProtocol.flatMap { ProxyProtocolPolicy.compile($0, path: "\(path).proxy_protocol", issues: issues) }
        guard let address, let router, config.protocol == .http || tls != nil, proxyProtocol != nil || config.proxyProtocol == nil else { return nil }
        return CompiledListener(
            name: config.name, address: address, tls: tls, router: router, limits: limits, plugins: plugins,
            proxyProtocol: proxyProtocol, reusePort: config.reusePort,
            websocket: config.websocket.enabled ? config.websocket : nil, http2: http2, metrics: metrics.listener(config.name)
        )
    }

    // MARK: plugins

    /// The directory of the running executable: the default plugin path (SwiftPM builds plugins beside it).
    package static var executableDirectory: String {
        (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).deletingLastPathComponent().path
    }

    private func compilePlugins(_ entries: [PluginEntryConfig], path: String, listener: String, searchPaths: [String]) -> PluginChain? {
        guard !entries.isEmpty else { return nil }
        var instances: [PluginInstance] = []
        for (i, entry) in entries.enumerated() {
            let keyPath = "\(path)[\(i)]"
            if !(1...600_000).contains(entry.timeoutMs) { issues.add("\(keyPath).timeout_ms", "must be between 1 and 600000, got \(entry.timeoutMs)") }
            guard let file = locatePlugin(entry.library, searchPaths: searchPaths, path: "\(keyPath).library") else { continue }
            do {
                let library = try PluginRegistry.shared.library(at: file)
                if library.isBlocking && created.pool == nil {
                    let pool = NIOThreadPool(numberOfThreads: 4)
                    pool.start()
                    created.pool = pool
                }
                let instance = try PluginInstance(
                    library: library, listener: listener, configJSON: entry.config?.json ?? "{}", onError: entry.onError,
                    timeout: .milliseconds(Int64(entry.timeoutMs))
                )
                created.instances.append(instance)
                instances.append(instance)
            } catch {
                issues.add(keyPath, "\(error)")
            }
        }
        return PluginChain(entries: instances, pool: created.pool)
    }

    private func locatePlugin(_ library: String, searchPaths: [String], path: String) -> String? {
        if library.isEmpty { return nil }
        if library.contains("/") {
            // Normalised (no `.` or `..`), so that one file has one name in every message and in the registry.
            let file = URL(fileURLWithPath: resolve(library)).standardized.path
            stamp(file)
            guard FileManager.default.fileExists(atPath: file) else {
                issues.add(path, "plugin library '\(library)' not found")
                return nil
            }
            return file
        }
        for directory in searchPaths {
            let file = URL(fileURLWithPath: directory).appendingPathComponent(library).standardized.path
            if FileManager.default.fileExists(atPath: file) {
                stamp(file)
                return file
            }
        }
        issues.add(path, "plugin library '\(library)' not found in plugin_paths \(searchPaths)")
        return nil
    }

    private func parseListenAddress(_ text: String, path: String) -> SocketAddress? {
        guard let (host, port) = Self.splitHostPort(text) else {
            issues.add(path, "'\(text)' is not an address of the form IP:port or [IPv6]:port")
            return nil
        }
        do {
            return try SocketAddress(ipAddress: host, port: port)
        } catch {
            issues.add(path, "'\(host)' is not an IP address (listeners bind to IP literals, e.g. 0.0.0.0 or [::])")
            return nil
        }
    }

    /// Splits `host:port` / `[v6]:port`; nil when malformed or the port is out of range.
    package static func splitHostPort(_ text: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    // MARK: TLS

    /// A client policy's settings, each with the key path it came from (the listener's, or a certificate's own).
    private struct ClientPolicySource {
        var clientAuth: (ClientAuthMode, String)
        var clientCA: ([String], String)
        var crl: ([String], String)
        var verifyDepth: (Int, String)
        var clientAllow: (ClientAllowConfig?, String)

        init(_ config: ListenerTLSConfig, path: String) {
            clientAuth = (config.clientAuth, "\(path).client_auth")
            clientCA = (config.clientCA, "\(path).client_ca")
            crl = (config.crl, "\(path).crl")
            verifyDepth = (config.verifyDepth, "\(path).verify_depth")
            clientAllow = (config.clientAllow, "\(path).client_allow")
        }

        /// `certificate`'s own keys over these. A certificate with `client_auth: none` inherits no CAs, CRLs or
        /// allow-list (only those it sets itself, which are then errors).
        func overridden(by certificate: ServerCertificateConfig, path: String) -> ClientPolicySource {
            var source = self
            if let value = certificate.clientAuth { source.clientAuth = (value, "\(path).client_auth") }
            if certificate.clientAuth == ClientAuthMode.none {
                source.clientCA = ([], "\(path).client_ca")
                source.crl = ([], "\(path).crl")
                source.clientAllow = (nil, "\(path).client_allow")
            }
            if let value = certificate.clientCA { source.clientCA = (value, "\(path).client_ca") }
            if let value = certificate.crl { source.crl = (value, "\(path).crl") }
            if let value = certificate.verifyDepth { source.verifyDepth = (value, "\(path).verify_depth") }
            if let value = certificate.clientAllow { source.clientAllow = (value, "\(path).client_allow") }
            return source
        }
    }

    private struct CompiledClientPolicy {
        var policy: ListenerTLS.ClientPolicy
        /// Sent in the CertificateRequest of the contexts that use this policy.
        var anchorsNIO: [NIOSSLCertificate]
        var earliestAnchorExpiry: Date?
    }

    /// Client CAs, CRLs, the allow-list and the verifier of one client policy.
    private func compileClientPolicy(_ source: ClientPolicySource) -> CompiledClientPolicy {
        let (clientAuth, clientAuthPath) = source.clientAuth
        let (clientCA, clientCAPath) = source.clientCA
        let (crlFiles, crlPath) = source.crl
        let (verifyDepth, verifyDepthPath) = source.verifyDepth
        if !(1...16).contains(verifyDepth) { issues.add(verifyDepthPath, "must be between 1 and 16, got \(verifyDepth)") }
        var anchors: [Certificate] = []
        var anchorsNIO: [NIOSSLCertificate] = []
        if clientAuth != .none && clientCA.isEmpty {
            issues.add(clientCAPath, "required when client_auth is \(clientAuth.rawValue) (\(clientAuthPath))")
        }
        if clientAuth == .none && !clientCA.isEmpty {
            issues.add(clientCAPath, "set, but client_auth is none: set client_auth to optional or required")
        }
        for (i, file) in clientCA.enumerated() {
            let keyPath = "\(clientCAPath)[\(i)]"
            guard let certs = loadCertificates(file, path: keyPath) else { continue }
            for (cert, nio) in certs {
                if let problem = ClientCertificateVerifier.anchorProblem(cert) {
                    issues.add(keyPath, "'\(file)' contains '\(cert.subject)', which \(problem)")
                    continue
                }
                if cert.notValidAfter < now { issues.add(keyPath, "CA certificate '\(cert.subject)' in '\(file)' expired at \(cert.notValidAfter)") }
                expiring.items.append(.init(kind: .clientCA, subject: "\(cert.subject)", file: file, keyPath: keyPath, expires: cert.notValidAfter))
                anchors.append(cert)
                anchorsNIO.append(nio)
            }
        }
        var crls: [CertificateRevocationList] = []
        // CRLs of CAs that are not trust anchors (issuing intermediates): checked against the issuer certificate a
        // client presents, at verification time.
        var pathCRLs: [CertificateRevocationList] = []
        for (i, file) in crlFiles.enumerated() {
            let keyPath = "\(crlPath)[\(i)]"
            guard let data = readFile(file, path: keyPath) else { continue }
            do {
                for crl in try CertificateRevocationList.parseFile(data) {
                    if let next = crl.nextUpdate, next < now {
                        issues.add(keyPath, "CRL in '\(file)' from '\(crl.issuer)' expired at \(next) (nextUpdate)")
                        continue
                    }
                    if let next = crl.nextUpdate {
                        expiring.items.append(.init(kind: .crl, subject: "\(crl.issuer)", file: file, keyPath: keyPath, expires: next))
                    }
                    switch ClientCertificateVerifier.place(crl, anchors: anchors) {
                    case .anchor: crls.append(crl)
                    case .path: pathCRLs.append(crl)
                    case .refused(let reason): issues.add(keyPath, "CRL in '\(file)' \(reason)")
                    }
                }
            } catch {
                issues.add(keyPath, "cannot parse CRL '\(file)': \(error)")
            }
        }
        if clientAuth == .none && !crlFiles.isEmpty { issues.add(crlPath, "set, but client_auth is none") }
        var allow: ClientAllowList?
        if case (let allowConfig?, let allowPath) = source.clientAllow {
            if clientAuth == .none {
                issues.add(allowPath, "set, but client_auth is none: set client_auth to optional or required")
            } else {
                allow = ClientAllowList(allowConfig, path: allowPath, issues: issues)
            }
        }
        let verifier = clientAuth == .none
            ? nil : ClientCertificateVerifier(anchors: anchors, crls: crls, pathCRLs: pathCRLs, maxDepth: verifyDepth, allow: allow)
        return CompiledClientPolicy(
            policy: .init(clientAuth: clientAuth, verifier: verifier), anchorsNIO: anchorsNIO, earliestAnchorExpiry: anchors.map(\.notValidAfter).min()
        )
    }

    /// The listener's `alpn`, checked: `h2` and `http/1.1` only, each once, on https listeners.
    private func compileALPN(_ config: ListenerConfig, path: String) -> [String] {
        guard let alpn = config.alpn else { return ["http/1.1"] }
        if config.protocol == .http {
            issues.add("\(path).alpn", "not allowed for protocol http (protocols are negotiated in the TLS handshake; use protocol: https)")
        }
        if alpn.isEmpty { issues.add("\(path).alpn", "must list at least one protocol: h2 | http/1.1") }
        var seen: Set<String> = []
        for (i, name) in alpn.enumerated() {
            if name != "h2" && name != "http/1.1" { issues.add("\(path).alpn[\(i)]", "'\(name)' is not one of: h2 | http/1.1") }
            if !seen.insert(name).inserted { issues.add("\(path).alpn[\(i)]", "'\(name)' is listed twice") }
        }
        return alpn
    }

    /// The listener's HTTP/2 limits when its `alpn` offers h2 (nil otherwise), checked.
    private func compileHTTP2(_ config: ListenerConfig, path: String) -> HTTP2Config? {
        let h2 = config.http2
        if !(1...100_000).contains(h2.maxConcurrentStreams) { issues.add("\(path).http2.max_concurrent_streams", "must be between 1 and 100000") }
        if !(65_535...(1 << 31) - 1).contains(h2.initialWindowSize) {
            issues.add("\(path).http2.initial_window_size", "must be between 65535 and 2147483647")
        }
        if !(0...1 << 20).contains(h2.headerTableSize) { issues.add("\(path).http2.header_table_size", "must be between 0 and 1048576") }
        if h2.maxStreamsPerConnection < 1 { issues.add("\(path).http2.max_streams_per_connection", "must be at least 1") }
        if h2.maxResetsPer30s < 1 { issues.add("\(path).http2.max_resets_per_30s", "must be at least 1") }
        guard config.protocol == .https, config.alpn?.contains("h2") == true else { return nil }
        return h2
    }

    private func compileTLS(_ config: ListenerTLSConfig, path: String, listener: String, alpn: [String]) -> ListenerTLS? {
        if config.certificates.isEmpty { issues.add("\(path).certificates", "at least one server certificate is required") }

        // The listener's client policy first: every server context sends its CA names. A certificate with
        // client keys of its own gets a policy of its own.
        let listenerSource = ClientPolicySource(config, path: path)
        let listenerPolicy = compileClientPolicy(listenerSource)
        var policies = [listenerPolicy.policy]
        var anchorExpiries = [listenerPolicy.earliestAnchorExpiry].compactMap { $0 }

        var entries: [ListenerTLS.Entry] = []
        var serverExpiries: [Date] = []
        for (i, certConfig) in config.certificates.enumerated() {
            let keyPath = "\(path).certificates[\(i)]"
            var policy = listenerPolicy
            var policyIndex = 0
            if certConfig.hasClientPolicy {
                policy = compileClientPolicy(listenerSource.overridden(by: certConfig, path: keyPath))
                policies.append(policy.policy)
                policyIndex = policies.count - 1
                if let expiry = policy.earliestAnchorExpiry { anchorExpiries.append(expiry) }
            }
            guard let chain = loadCertificates(certConfig.cert, path: "\(keyPath).cert"), let leaf = chain.first else { continue }
            guard let key = loadPrivateKey(certConfig.key, path: "\(keyPath).key", matching: leaf.0, certFile: certConfig.cert,
                                           passwordFile: certConfig.keyPasswordFile, passwordPath: "\(keyPath).key_password_file") else { continue }
            serverExpiries.append(leaf.0.notValidAfter)
            expiring.items.append(.init(kind: .serverCertificate, subject: "\(leaf.0.subject)", file: certConfig.cert, keyPath: "\(keyPath).cert", expires: leaf.0.notValidAfter))
            if leaf.0.notValidAfter < now {
                issues.add("\(keyPath).cert", "certificate '\(leaf.0.subject)' in '\(certConfig.cert)' expired at \(leaf.0.notValidAfter)")
            }
            var names = certConfig.sni ?? []
            if certConfig.sni == nil, let sans = try? leaf.0.extensions.subjectAlternativeNames {
                for case .dnsName(let name) in sans { names.append(name) }
            }
            for (j, name) in names.enumerated() where !Self.isValidServerName(name) {
                issues.add("\(keyPath).sni[\(j)]", "'\(name)' is not a host name or *.wildcard")
            }
            do {
                let context = try ListenerTLS.makeContext(
                    chain: chain.map(\.1), key: key, clientAuth: policy.policy.clientAuth, clientCAs: policy.anchorsNIO, minVersion: config.minVersion,
                    alpn: alpn
                )
                entries.append(.init(names: names, context: context, policy: policyIndex))
            } catch {
                issues.add(keyPath, "TLS context cannot be built: \(error)")
            }
        }
        if config.ja4Allow?.isEmpty == true {
            issues.add("\(path).ja4_allow", "must list at least one fingerprint (leave it out to admit every fingerprint)")
        }
        for (key, list) in [("ja4_deny", config.ja4Deny), ("ja4_allow", config.ja4Allow ?? [])] {
            for (index, fingerprint) in list.enumerated() where !JA4Fingerprint.isWellFormed(fingerprint) {
                issues.add("\(path).\(key)[\(index)]", "'\(fingerprint)' is not a JA4 fingerprint (e.g. t13d1516h2_8daaf6152771_b186095e22b6, lowercase)")
            }
        }
        let revocation = config.revocation.flatMap {
            compileRevocation($0, path: "\(path).revocation", listener: listener, clientAuth: policies.contains { $0.clientAuth != .none })
        }
        guard !entries.isEmpty else { return nil }
        return ListenerTLS(
            entries: entries, policies: policies, serverCertificateExpiry: serverExpiries.min(), clientCAExpiry: anchorExpiries.min(),
            ja4Deny: Set(config.ja4Deny), ja4Allow: Set(config.ja4Allow ?? []), revocation: revocation
        )
    }

    /// `tls.revocation`: checked by key path; nil when nothing is checked online.
    private func compileRevocation(_ config: RevocationConfig, path: String, listener: String, clientAuth: Bool) -> RevocationChecker? {
        if !clientAuth && config.isEnabled { issues.add(path, "set, but client_auth is none: set client_auth to optional or required") }
        if let responder = config.ocspResponder {
            if let problem = RevocationLocations.problem(url: responder) { issues.add("\(path).ocsp_responder", problem) }
            if config.ocsp == .off { issues.add("\(path).ocsp_responder", "set, but ocsp is off: set ocsp to leaf or chain") }
        }
        if config.refreshInterval.nanoseconds < 1_000_000_000 { issues.add("\(path).refresh_interval", "must be at least 1s, got \(config.refreshInterval)") }
        if config.fetchTimeout.nanoseconds < 100_000_000 || config.fetchTimeout.nanoseconds > 60_000_000_000 {
            issues.add("\(path).fetch_timeout", "must be between 100ms and 60s, got \(config.fetchTimeout)")
        }
        if config.maxCRLBytes < 1024 || config.maxCRLBytes > 256 << 20 {
            issues.add("\(path).max_crl_bytes", "must be between 1024 and 268435456, got \(config.maxCRLBytes)")
        }
        var cacheDirectory: String?
        if let directory = config.cacheDir {
            let resolved = resolve(directory)
            var isDirectory: ObjCBool = false
            if !config.crlFetch {
                issues.add("\(path).cache_dir", "set, but crl_fetch is false (only fetched CRLs are cached)")
            } else if !FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory) || !isDirectory.boolValue {
                issues.add("\(path).cache_dir", "'\(directory)' is not a directory")
            } else if access(resolved, W_OK | X_OK) != 0 {
                issues.add("\(path).cache_dir", "'\(directory)' is not writable by this process (uid \(getuid()))")
            }
            cacheDirectory = resolved
        }
        guard config.isEnabled else { return nil }
        let settings = RevocationStore.FetchSettings(
            timeout: .nanoseconds(config.fetchTimeout.nanoseconds), maxBytes: config.maxCRLBytes,
            refreshInterval: TimeInterval(config.refreshInterval.nanoseconds) / 1e9, cacheDirectory: cacheDirectory, metrics: metrics,
            logger: Logger(label: "gateway.revocation")
        )
        return RevocationChecker(config: config, settings: settings, listener: listener)
    }

    /// A backend host name: labels of letters, digits, `-` and `_` (1–63 bytes each, not starting or ending
    /// with `-`), up to 253 bytes, an optional final dot.
    package static func isValidHostName(_ name: String) -> Bool {
        var text = Substring(name)
        if text.hasSuffix(".") { text = text.dropLast() }
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            let bytes = label.utf8
            guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
            return bytes.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7A) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
            }
        }
    }

    package static func isValidServerName(_ name: String) -> Bool {
        var labels = name.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        if labels.first == "*" { labels.removeFirst() }
        guard !labels.isEmpty else { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
        }
    }

    // MARK: routes

    private func compileRoutes(_ routes: [RouteConfig], path: String, backends: [String: BackendGroup]) -> Router? {
        var compiled: [Router.Route] = []
        var ok = true
        if routes.isEmpty { issues.add(path, "at least one route is required") }
        for (i, route) in routes.enumerated() {
            let keyPath = "\(path)[\(i)]"
            var matcher = RouteMatcher()
            if let match = route.match {
                if let host = match.host {
                    let lower = host.lowercased()
                    if !Self.isValidServerName(lower) {
                        issues.add("\(keyPath).match.host", "'\(host)' is not a host name or *.wildcard")
                        ok = false
                    }
                    matcher.host = lower.hasPrefix("*.") ? .suffix(String(lower.dropFirst(1))) : .exact(lower)
                }
                if match.pathPrefix != nil && match.pathExact != nil {
                    issues.add("\(keyPath).match", "path_prefix and path_exact are mutually exclusive")
                    ok = false
                }
                for (key, value) in [("path_prefix", match.pathPrefix), ("path_exact", match.pathExact)] {
                    if let value, !value.hasPrefix("/") {
                        issues.add("\(keyPath).match.\(key)", "'\(value)' must start with '/'")
                        ok = false
                    }
                }
                matcher.pathPrefix = match.pathPrefix
                matcher.pathExact = match.pathExact
                if let methods = match.methods {
                    for (j, m) in methods.enumerated() where m.isEmpty || !m.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) {
                        issues.add("\(keyPath).match.methods[\(j)]", "'\(m)' is not an upper-case HTTP method")
                        ok = false
                    }
                    matcher.methods = Set(methods)
                }
            }
            guard let backend = backends[route.backend] else {
                issues.add("\(keyPath).backend", "no backend named '\(route.backend)'")
                ok = false
                continue
            }
            compiled.append(.init(matcher: matcher, backend: backend))
        }
        return ok ? Router(routes: compiled) : nil
    }

    // MARK: backends

    private func compileBackends(_ configs: [BackendConfig]) -> [String: BackendGroup] {
        var groups: [String: BackendGroup] = [:]
        for (i, config) in configs.enumerated() {
            let path = "backends[\(i)]"
            if config.name.isEmpty { issues.add("\(path).name", "must not be empty") }
            if groups[config.name] != nil { issues.add("\(path).name", "duplicate backend name '\(config.name)'") }
            var entries: [BackendServerEntry] = []
            for (j, server) in config.servers.enumerated() {
                guard let (host, port) = Self.splitHostPort(server.address), port > 0 else {
                    issues.add("\(path).servers[\(j)].address", "'\(server.address)' is not host:port")
                    continue
                }
                let ip = try? SocketAddress(ipAddress: host, port: port)
                if ip == nil, !Self.isValidHostName(host) {
                    issues.add("\(path).servers[\(j)].address", "'\(host)' is neither an IP address nor a host name")
                    continue
                }
                if !(1...1000).contains(server.weight) { issues.add("\(path).servers[\(j)].weight", "must be between 1 and 1000, got \(server.weight)") }
                entries.append(BackendServerEntry(address: server.address, host: host, port: port, weight: max(1, min(server.weight, 1000)), ipAddress: ip))
            }
            if config.resolveInterval.nanoseconds < BackendDiscovery.minimumInterval.nanoseconds {
                issues.add("\(path).resolve_interval", "must be at least 1s, got \(config.resolveInterval)")
            }
            if let check = config.healthCheck {
                let keyPath = "\(path).health_check"
                if !check.path.hasPrefix("/") || check.path.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
                    issues.add("\(keyPath).path", "'\(check.path)' must start with '/' and contain no spaces or control characters")
                }
                if check.interval.nanoseconds < 100_000_000 { issues.add("\(keyPath).interval", "must be at least 100ms") }
                if check.timeout.nanoseconds <= 0 { issues.add("\(keyPath).timeout", "must be positive") }
                if check.timeout.nanoseconds > check.interval.nanoseconds { issues.add("\(keyPath).timeout", "must not be longer than interval (\(check.interval))") }
                if !(1...100).contains(check.healthy) { issues.add("\(keyPath).healthy", "must be between 1 and 100, got \(check.healthy)") }
                if !(1...100).contains(check.unhealthy) { issues.add("\(keyPath).unhealthy", "must be between 1 and 100, got \(check.unhealthy)") }
                if let host = check.host, host.isEmpty || host.utf8.contains(where: { $0 <= 32 || $0 == 127 }) {
                    issues.add("\(keyPath).host", "'\(host)' is not a valid Host header value")
                }
            }
            if let passive = config.passiveHealth {
                if !(1...1000).contains(passive.consecutiveFailures) {
                    issues.add("\(path).passive_health.consecutive_failures", "must be between 1 and 1000, got \(passive.consecutiveFailures)")
                }
                if passive.ejectFor.nanoseconds < 1_000_000 { issues.add("\(path).passive_health.eject_for", "must be at least 1ms") }
            }
            if config.connectTimeout.nanoseconds <= 0 { issues.add("\(path).connect_timeout", "must be positive") }
            if config.responseTimeout.nanoseconds <= 0 { issues.add("\(path).response_timeout", "must be positive") }
            if config.maxIdleConnections < 0 { issues.add("\(path).max_idle_connections", "must not be negative") }
            var tlsContext: NIOSSLContext?
            switch (config.protocol, config.tls) {
            case (.http, .some): issues.add("\(path).tls", "not allowed for protocol http")
            case (.https, let tls): tlsContext = compileBackendTLS(tls, path: "\(path).tls")
            case (.http, nil): break
            }
            groups[config.name] = BackendGroup(
                name: config.name, entries: entries, balance: config.balance, tlsContext: tlsContext,
                serverName: config.tls?.serverName, connectTimeout: config.connectTimeout.timeAmount, responseTimeout: config.responseTimeout.timeAmount,
                healthCheck: config.healthCheck, maxIdle: config.maxIdleConnections, passive: config.passiveHealth, metrics: metrics,
                resolveInterval: config.resolveInterval.timeAmount, dnsFamily: config.dnsFamily
            )
        }
        return groups
    }

    /// The `resolver`: DNS servers as `IP` or `IP:port` (port 53 when omitted).
    private func compileResolver(_ config: ResolverConfig) -> DNSHostResolver? {
        if config.servers.isEmpty { issues.add("resolver.servers", "must name at least one DNS server") }
        if config.timeout.nanoseconds < 10_000_000 { issues.add("resolver.timeout", "must be at least 10ms, got \(config.timeout)") }
        var servers: [SocketAddress] = []
        for (i, text) in config.servers.enumerated() {
            if let address = try? SocketAddress(ipAddress: text, port: 53) {
                servers.append(address)
            } else if let (host, port) = Self.splitHostPort(text), port > 0, let address = try? SocketAddress(ipAddress: host, port: port) {
                servers.append(address)
            } else {
                issues.add("resolver.servers[\(i)]", "'\(text)' is not an IP address with an optional port (e.g. 10.0.0.2 or 10.0.0.2:53)")
            }
        }
        return servers.isEmpty ? nil : DNSHostResolver(servers: servers, timeout: config.timeout.timeAmount)
    }

    private func compileBackendTLS(_ config: BackendTLSConfig?, path: String) -> NIOSSLContext? {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = ["http/1.1"]
        if let config {
            var roots: [NIOSSLCertificate] = []
            for (i, file) in config.ca.enumerated() {
                for (cert, nio) in loadCertificates(file, path: "\(path).ca[\(i)]") ?? [] {
                    expiring.items.append(.init(kind: .backendCA, subject: "\(cert.subject)", file: file, keyPath: "\(path).ca[\(i)]", expires: cert.notValidAfter))
                    roots.append(nio)
                }
            }
            if !roots.isEmpty { tls.trustRoots = .certificates(roots) }
            // Always check the name: server_name when set, else the server's host name or IP address.
            tls.certificateVerification = config.verify ? .fullVerification : .none
            switch (config.cert, config.key) {
            case (let cert?, let key?):
                if let chain = loadCertificates(cert, path: "\(path).cert"), let leaf = chain.first,
                    let privateKey = loadPrivateKey(key, path: "\(path).key", matching: leaf.0, certFile: cert,
                                                    passwordFile: config.keyPasswordFile, passwordPath: "\(path).key_password_file")
                {
                    expiring.items.append(.init(kind: .backendClientCertificate, subject: "\(leaf.0.subject)", file: cert, keyPath: "\(path).cert", expires: leaf.0.notValidAfter))
                    tls.certificateChain = chain.map { .certificate($0.1) }
                    tls.privateKey = .privateKey(privateKey)
                }
            case (nil, nil):
                if config.keyPasswordFile != nil { issues.add("\(path).key_password_file", "set, but there is no key") }
            case (nil, _?): issues.add("\(path).cert", "required when key is set")
            case (_?, nil): issues.add("\(path).key", "required when cert is set")
            }
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            issues.add(path, "TLS context cannot be built: \(error)")
            return nil
        }
    }

    // MARK: files

    /// Notes a file this generation depends on, stamped before it is read: a change between the stamp and the
    /// read shows as a change later (one reload too many), never as none.
    package func stamp(_ resolvedPath: String, as stamp: FileStamp) { files.stamps[resolvedPath] = stamp }

    private func stamp(_ resolvedPath: String) {
        if files.stamps[resolvedPath] == nil { files.stamps[resolvedPath] = FileStamp(path: resolvedPath) }
    }

    private func resolve(_ file: String) -> String {
        file.hasPrefix("/") ? file : URL(fileURLWithPath: baseDirectory).appendingPathComponent(file).path
    }

    // MARK: admin

    /// The admin listener's protection: its bearer token and its TLS context. A non-loopback address needs one
    /// of mutual TLS or a token.
    private func compileAdmin(_ config: AdminConfig) -> AdminAccess? {
        let console = config.console
        if !(1...100_000).contains(console.identities) { issues.add("admin.console.identities", "must be between 1 and 100000, got \(console.identities)") }
        if !(1...100_000).contains(console.refusals) { issues.add("admin.console.refusals", "must be between 1 and 100000, got \(console.refusals)") }
        if !(0...3650).contains(console.expiryWarningDays) {
            issues.add("admin.console.expiry_warning_days", "must be between 0 and 3650, got \(console.expiryWarningDays)")
        }
        var token: [UInt8]?
        if let file = config.tokenFile {
            if isPrivate(file, path: "admin.token_file", what: "token file"), let data = readFile(file, path: "admin.token_file") {
                let line = Array(data.prefix { $0 != 10 && $0 != 13 })
                if line.count < 16 {
                    issues.add("admin.token_file", "'\(file)' must hold a token of at least 16 characters on its first line (e.g. openssl rand -hex 32), got \(line.count)")
                } else if !line.allSatisfy({ $0 > 32 && $0 < 127 }) {
                    issues.add("admin.token_file", "'\(file)': the token must be printable ASCII without spaces")
                } else {
                    token = line
                }
            }
        }
        var context: NIOSSLContext?
        var expiringCert: ExpiringItem?
        if let tls = config.tls {
            var anchors: [NIOSSLCertificate] = []
            for (i, file) in tls.clientCA.enumerated() {
                let keyPath = "admin.tls.client_ca[\(i)]"
                for (cert, nio) in loadCertificates(file, path: keyPath) ?? [] {
                    expiring.items.append(.init(kind: .clientCA, subject: "\(cert.subject)", file: file, keyPath: keyPath, expires: cert.notValidAfter))
                    anchors.append(nio)
                }
            }
            if tls.cert.isEmpty || tls.key.isEmpty {
                // `required` already reported the missing key.
            } else if let chain = loadCertificates(tls.cert, path: "admin.tls.cert"), let leaf = chain.first,
                let key = loadPrivateKey(tls.key, path: "admin.tls.key", matching: leaf.0, certFile: tls.cert, passwordFile: nil, passwordPath: "")
            {
                expiringCert = .init(kind: .serverCertificate, subject: "\(leaf.0.subject)", file: tls.cert, keyPath: "admin.tls.cert", expires: leaf.0.notValidAfter)
                do {
                    context = try ListenerTLS.makeContext(
                        chain: chain.map(\.1), key: key, clientAuth: anchors.isEmpty ? .none : .required, clientCAs: anchors, minVersion: .tls12
                    )
                } catch {
                    issues.add("admin.tls", "cannot make a TLS context: \(error)")
                }
            }
        }
        if let expiringCert { expiring.items.append(expiringCert) }
        let mutualTLS = !(config.tls?.clientCA.isEmpty ?? true)
        if let (host, _) = Self.splitHostPort(config.address), !Self.isLoopback(host), config.tokenFile == nil, !mutualTLS {
            issues.add("admin.address", "'\(config.address)' is not a loopback address, and the admin listener has no protection: "
                + "set admin.tls.client_ca (mutual TLS) or admin.token_file (a bearer token), or bind it to 127.0.0.1")
        }
        return AdminAccess(token: token, tls: context, mutualTLS: mutualTLS, console: console)
    }

    /// Whether `host` (an IP literal, in any spelling) is a loopback address: 127.0.0.0/8, ::1, or 127.0.0.0/8
    /// mapped into IPv6.
    package static func isLoopback(_ host: String) -> Bool {
        guard let address = try? SocketAddress(ipAddress: host, port: 0) else { return false }
        switch address {
        case .v4(let v4): return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6(let v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes == [UInt8](repeating: 0, count: 15) + [1] { return true }
            return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
        default: return false
        }
    }

    private func readFile(_ file: String, path: String) -> Data? {
        let resolved = resolve(file)
        stamp(resolved)
        do {
            return try Data(contentsOf: URL(fileURLWithPath: resolved))
        } catch {
            issues.add(path, "cannot read '\(file)': \(FileErrors.describe(error))")
            return nil
        }
    }

    /// Every certificate of a PEM file, parsed by both swift-certificates (checks) and NIOSSL (the TLS stack).
    private func loadCertificates(_ file: String, path: String) -> [(Certificate, NIOSSLCertificate)]? {
        guard let data = readFile(file, path: path) else { return nil }
        do {
            let text = String(decoding: data, as: UTF8.self)
            let documents = try PEMDocument.parseMultiple(pemString: text).filter { $0.discriminator == "CERTIFICATE" }
            guard !documents.isEmpty else {
                issues.add(path, "'\(file)' contains no PEM certificate ('-----BEGIN CERTIFICATE-----')")
                return nil
            }
            return try documents.map { doc in
                (try Certificate(derEncoded: doc.derBytes), try NIOSSLCertificate(bytes: doc.derBytes, format: .der))
            }
        } catch {
            issues.add(path, "cannot parse certificates in '\(file)': \(error)")
            return nil
        }
    }

    /// A private key, or the file holding its passphrase, that every user of the machine can read (or write)
    /// is refused, as OpenSSH refuses an unprotected key: a config that leaks the listener's identity is a
    /// mistake to fix, not to warn about. Group access is allowed (Debian's `ssl-cert` group reads
    /// /etc/ssl/private). A file that cannot be stat'ed is reported by the read that follows.
    private func isPrivate(_ file: String, path: String, what: String) -> Bool {
        var info = stat()
        guard stat(resolve(file), &info) == 0 else { return true }
        let mode = info.st_mode & 0o777
        guard mode & 0o006 == 0 else {
            issues.add(path, "\(what) '\(file)' can be read by every user of this machine (mode \(String(mode, radix: 8))): make it private (chmod o-rwx)")
            return false
        }
        return true
    }

    private func loadPrivateKey(
        _ file: String, path: String, matching leaf: Certificate, certFile: String, passwordFile: String?, passwordPath: String
    ) -> NIOSSLPrivateKey? {
        guard isPrivate(file, path: path, what: "private key") else { return nil }
        if let passwordFile, !isPrivate(passwordFile, path: passwordPath, what: "passphrase file") { return nil }
        guard let data = readFile(file, path: path) else { return nil }
        let encrypted = String(decoding: data, as: UTF8.self).contains("ENCRYPTED")
        if let passwordFile {
            guard let secret = readFile(passwordFile, path: passwordPath) else { return nil }
            // The first line, without its line ending (as nginx's ssl_password_file, one passphrase).
            let passphrase = Array(secret.prefix { $0 != 10 && $0 != 13 })
            guard !passphrase.isEmpty else {
                issues.add(passwordPath, "'\(passwordFile)' has no passphrase on its first line")
                return nil
            }
            do {
                // BoringSSL checks that the key belongs to the certificate when the TLS context is built.
                return try NIOSSLPrivateKey(bytes: Array(data), format: .pem) { setter in setter(passphrase) }
            } catch {
                issues.add(path, "cannot decrypt private key '\(file)' with the passphrase in '\(passwordFile)' (\(encrypted ? "wrong passphrase?" : "not an encrypted PEM key?")): \(error)")
                return nil
            }
        }
        if encrypted {
            issues.add(path, "private key '\(file)' is encrypted: set key_password_file to a file holding its passphrase")
            return nil
        }
        do {
            let key = try NIOSSLPrivateKey(bytes: Array(data), format: .pem)
            if let parsed = try? Certificate.PrivateKey(pemEncoded: String(decoding: data, as: UTF8.self)), parsed.publicKey != leaf.publicKey {
                issues.add(path, "key in '\(file)' does not match the certificate in '\(certFile)'")
                return nil
            }
            return key
        } catch {
            issues.add(path, "cannot parse private key '\(file)' (PEM expected): \(error)")
            return nil
        }
    }
}
