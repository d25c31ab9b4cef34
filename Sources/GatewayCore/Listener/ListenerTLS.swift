import Foundation
import NIOCore
import NIOSSL
import X509

/// A listener's compiled TLS state: one `NIOSSLContext` per server certificate, the SNI lookup tables, and the
/// client policies (the listener's, and one per certificate that sets its own). Built once from the
/// configuration; shared by all connections of the listener.
package final class ListenerTLS: Sendable {
    /// Who may connect: the client-auth mode and the verifier (CAs, CRLs, depth, allow-list) behind it.
    package struct ClientPolicy: Sendable {
        package var clientAuth: ClientAuthMode
        package var verifier: ClientCertificateVerifier?

        package init(clientAuth: ClientAuthMode, verifier: ClientCertificateVerifier?) {
            self.clientAuth = clientAuth
            self.verifier = verifier
        }
    }

    package struct Entry: Sendable {
        package var names: [String]
        package var context: NIOSSLContext
        /// Index in `policies`: 0 is the listener's.
        package var policy: Int

        package init(names: [String], context: NIOSSLContext, policy: Int = 0) {
            self.names = names
            self.context = context
            self.policy = policy
        }
    }

    package let entries: [Entry]
    package let policies: [ClientPolicy]
    /// Keyed by lowercased name, the index of the entry.
    private let exact: [String: Int]
    /// Keyed by the part after `*.`: `*.example.com` is stored as `example.com`.
    private let wildcard: [String: Int]

    /// The listener's own client policy (that of certificates without one of their own).
    package var clientAuth: ClientAuthMode { policies[0].clientAuth }
    package var verifier: ClientCertificateVerifier? { policies[0].verifier }
    /// More than one client policy: a request's Host must select the policy its connection's server name did.
    package var hasSeveralPolicies: Bool { policies.count > 1 }
    package var defaultContext: NIOSSLContext { entries[0].context }

    /// Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD only. TLS 1.3 suites are always enabled.
    package static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// The earliest expiry among the server certificates, and among the client CAs (for the expiry metrics).
    package let serverCertificateExpiry: Date?
    package let clientCAExpiry: Date?
    /// The earliest nextUpdate among the CRLs of every client policy of the listener.
    package var crlNextUpdate: Date? { policies.compactMap { $0.verifier?.earliestCRLNextUpdate }.min() }

    /// `ja4_deny`: clients with these JA4 fingerprints are refused at their ClientHello.
    package let ja4Deny: Set<String>
    /// `ja4_allow`: when not empty, only clients with these JA4 fingerprints pass their ClientHello.
    package let ja4Allow: Set<String>

    /// `revocation`: online checks (fetched CRLs, OCSP) after a chain verifies, for every client policy.
    package let revocation: RevocationChecker?

    package init(entries: [Entry], policies: [ClientPolicy], serverCertificateExpiry: Date? = nil, clientCAExpiry: Date? = nil, ja4Deny: Set<String> = [],
                 ja4Allow: Set<String> = [], revocation: RevocationChecker? = nil) {
        precondition(!entries.isEmpty && !policies.isEmpty)
        self.revocation = revocation
        self.ja4Deny = ja4Deny
        self.ja4Allow = ja4Allow
        self.serverCertificateExpiry = serverCertificateExpiry
        self.clientCAExpiry = clientCAExpiry
        self.entries = entries
        self.policies = policies
        var exact: [String: Int] = [:]
        var wildcard: [String: Int] = [:]
        for (index, entry) in entries.enumerated() {
            for name in entry.names {
                let lower = name.lowercased()
                if lower.hasPrefix("*.") {
                    if wildcard[String(lower.dropFirst(2))] == nil { wildcard[String(lower.dropFirst(2))] = index }
                } else if exact[lower] == nil {
                    exact[lower] = index
                }
            }
        }
        self.exact = exact
        self.wildcard = wildcard
    }

    /// One listener-wide client policy (tests and simple listeners).
    package convenience init(entries: [Entry], clientAuth: ClientAuthMode, verifier: ClientCertificateVerifier?,
                             serverCertificateExpiry: Date? = nil, clientCAExpiry: Date? = nil) {
        self.init(entries: entries, policies: [ClientPolicy(clientAuth: clientAuth, verifier: verifier)],
                  serverCertificateExpiry: serverCertificateExpiry, clientCAExpiry: clientCAExpiry)
    }

    /// Picks the certificate for a server name (a ClientHello's SNI, or a request's Host without its port):
    /// exact, then `*.` wildcard (one label), then the first certificate.
    package func entry(forServerName name: String?) -> Entry {
        guard var name = name?.lowercased(), !name.isEmpty else { return entries[0] }
        if name.hasSuffix(".") { name.removeLast() }
        if let index = exact[name] { return entries[index] }
        if let dot = name.firstIndex(of: "."), let index = wildcard[String(name[name.index(after: dot)...])] {
            return entries[index]
        }
        return entries[0]
    }

    package func context(forServerName name: String?) -> NIOSSLContext { entry(forServerName: name).context }

    /// The client policy a request's Host (without its port) belongs to: the certificate named exactly, else the
    /// nearest `*.` wildcard at any depth (routes match `*.x` at any depth, so `a.b.internal.example.com` is
    /// under `*.internal.example.com`'s policy, though TLS would not select that certificate for it), else
    /// the first certificate's.
    package func policy(forHost host: String) -> Int {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        if let index = exact[name] { return entries[index].policy }
        var rest = Substring(name)
        while let dot = rest.firstIndex(of: ".") {
            rest = rest[rest.index(after: dot)...]
            if let index = wildcard[String(rest)] { return entries[index].policy }
        }
        return entries[0].policy
    }

    package static func makeContext(
        chain: [NIOSSLCertificate],
        key: NIOSSLPrivateKey,
        clientAuth: ClientAuthMode,
        clientCAs: [NIOSSLCertificate],
        minVersion: TLSMinimumVersion,
        alpn: [String] = ["http/1.1"]
    ) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = minVersion == .tls13 ? .tlsv13 : .tlsv12
        tls.cipherSuites = cipherSuites
        tls.applicationProtocols = alpn
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
