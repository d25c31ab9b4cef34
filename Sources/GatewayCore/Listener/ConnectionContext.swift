import NIOCore
import NIOSSL
import Atomics

/// Everything known about one client connection, filled in during the handshake and then read-only for the
/// connection's requests (and, through the plugin host, for plugins). Confined to the channel's event loop.
public final class ConnectionContext {
    private static let nextID = ManagedAtomic<UInt64>(1)
    /// What the revocation store had learnt when this connection's client was last checked (online revocation
    /// only): when it learns more, the next request (on HTTP/2: of any stream) checks the client again.
    package var revocationEpoch = 0

    public enum Verification: Sendable {
        /// No certificate was requested, or none was presented under `optional`.
        case none
        case success
        case failed(HandshakeRejection)
    }

    public let id: UInt64
    public let listenerName: String
    public let isTLS: Bool
    public let remoteAddress: SocketAddress?
    public let localAddress: SocketAddress?
    /// The client IP as text, computed once (X-Forwarded-For, logs).
    public let remoteIP: String
    public package(set) var serverName: String?
    /// The client policy (index in `ListenerTLS.policies`) of the certificate the server name selected.
    package var clientPolicy = 0
    public package(set) var offeredCipherSuites: [UInt16] = []
    /// The ClientHello's JA4 fingerprint (FoxIO), computed once when the hello is read; nil without TLS.
    public package(set) var ja4: String?
    /// The ClientHello's JA3 fingerprint (Salesforce; an MD5 in hex), computed with `ja4`; nil without TLS.
    public package(set) var ja3: String?
    public package(set) var cipherSuite: UInt16?
    public package(set) var negotiatedALPN: String?
    public package(set) var tlsVersion: TLSVersion?
    public package(set) var clientCertificate: ClientIdentity?
    public package(set) var verification: Verification = .none
    public package(set) var handshakeCompleted = false
    /// What plugins keep for this connection (ABI 1.4 `set_connection_data`), released when it ends.
    package var pluginData = PluginConnectionData()

    package init(listenerName: String, isTLS: Bool, remoteAddress: SocketAddress?, localAddress: SocketAddress?) {
        self.id = Self.nextID.loadThenWrappingIncrement(ordering: .relaxed)
        self.listenerName = listenerName
        self.isTLS = isTLS
        self.remoteAddress = remoteAddress
        self.localAddress = localAddress
        self.remoteIP = remoteAddress?.ipAddress ?? "unknown"
    }

    /// Releases what plugins kept for this connection (ABI 1.4): when it ends, or moves on to other instances.
    package func releasePluginData() {
        guard !pluginData.isEmpty else { return }
        pluginData.takeAll().run()
    }

    /// The last guard: the proxy handler releases plugins' data when the connection ends (before it stops
    /// counting for its configuration); this finds it empty unless something kept the context past that.
    deinit { releasePluginData() }

    public var tlsVersionName: String? {
        switch tlsVersion {
        case .tlsv13: return "TLSv1.3"
        case .tlsv12: return "TLSv1.2"
        case .tlsv11: return "TLSv1.1"
        case .tlsv1: return "TLSv1"
        case .none: return nil
        }
    }

    public var cipherName: String? { cipherSuite.map(CipherSuiteNames.name) }

    /// nginx's $ssl_client_verify: SUCCESS, FAILED:<reason code>, or NONE.
    public var clientVerifyText: String {
        switch verification {
        case .none: return "NONE"
        case .success: return "SUCCESS"
        case .failed(let rejection): return "FAILED:\(rejection.code)"
        }
    }
}
