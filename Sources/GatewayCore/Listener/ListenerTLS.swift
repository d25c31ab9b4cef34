import Foundation
import NIOCore
import NIOSSL
import X509

/// A listener's compiled TLS state: one `NIOSSLContext` per server certificate, the SNI lookup tables, and the
/// client-certificate verifier. Built once from the configuration; shared by all connections of the listener.
package final class ListenerTLS: Sendable {
    package struct Entry: Sendable {
        package var names: [String]
        package var context: NIOSSLContext
    }

    package let clientAuth: ClientAuthMode
    package let verifier: ClientCertificateVerifier?
    package let defaultContext: NIOSSLContext
    private let exact: [String: NIOSSLContext]
    /// Keyed by the part after `*.`: `*.example.com` is stored as `example.com`.
    private let wildcard: [String: NIOSSLContext]

    /// Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD only. TLS 1.3 suites are always enabled.
    package static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// The earliest expiry among the server certificates, and among the client CAs (for the expiry metrics).
    package let serverCertificateExpiry: Date?
    package let clientCAExpiry: Date?

    package init(entries: [Entry], clientAuth: ClientAuthMode, verifier: ClientCertificateVerifier?, serverCertificateExpiry: Date? = nil, clientCAExpiry: Date? = nil) {
        precondition(!entries.isEmpty)
        self.serverCertificateExpiry = serverCertificateExpiry
        self.clientCAExpiry = clientCAExpiry
        self.clientAuth = clientAuth
        self.verifier = verifier
        self.defaultContext = entries[0].context
        var exact: [String: NIOSSLContext] = [:]
        var wildcard: [String: NIOSSLContext] = [:]
        for entry in entries {
            for name in entry.names {
                let lower = name.lowercased()
                if lower.hasPrefix("*.") {
                    if wildcard[String(lower.dropFirst(2))] == nil { wildcard[String(lower.dropFirst(2))] = entry.context }
                } else if exact[lower] == nil {
                    exact[lower] = entry.context
                }
            }
        }
        self.exact = exact
        self.wildcard = wildcard
    }

    /// Picks the certificate for a ClientHello's server name: exact, then `*.` wildcard (one label), then default.
    package func context(forServerName name: String?) -> NIOSSLContext {
        guard var name = name?.lowercased(), !name.isEmpty else { return defaultContext }
        if name.hasSuffix(".") { name.removeLast() }
        if let context = exact[name] { return context }
        if let dot = name.firstIndex(of: "."), let context = wildcard[String(name[name.index(after: dot)...])] {
            return context
        }
        return defaultContext
    }

    package static func makeContext(
        chain: [NIOSSLCertificate],
        key: NIOSSLPrivateKey,
        clientAuth: ClientAuthMode,
        clientCAs: [NIOSSLCertificate],
        minVersion: TLSMinimumVersion
    ) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = minVersion == .tls13 ? .tlsv13 : .tlsv12
        tls.cipherSuites = cipherSuites
        tls.applicationProtocols = ["http/1.1"]
        switch clientAuth {
        case .none:
            tls.certificateVerification = .none
        case .optional:
            tls.certificateVerification = .optionalVerification
        case .required:
            tls.certificateVerification = .noHostnameVerification
        }
        if clientAuth != .none {
            // Sent as the CertificateRequest's CA list so that clients with several certificates pick the right one.
            tls.trustRoots = .certificates(clientCAs)
            tls.sendCANameList = true
        }
        return try NIOSSLContext(configuration: tls)
    }
}
