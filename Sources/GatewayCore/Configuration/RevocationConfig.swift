/// A listener's online revocation checks (`tls.revocation`): CRLs fetched from the distribution points named in
/// the clients' certificates, and OCSP. Both are opt-in; configured CRL files (`tls.crl`) are checked either way.
public struct RevocationConfig: Codable, Sendable {
    public enum OCSPMode: String, ConfigEnum, Sendable {
        case off
        /// The client's own certificate only.
        case leaf
        /// Every certificate of the verified path below the trust anchor.
        case chain
    }

    public enum UnknownPolicy: String, ConfigEnum, Sendable {
        /// Refuse the handshake (`revocation_unavailable`).
        case deny
        /// Admit the client; the reason is logged and counted all the same.
        case allow
    }

    /// Fetch the CRLs named in the CRL distribution points of the path's certificates (http URLs only).
    public var crlFetch: Bool
    public var ocsp: OCSPMode
    /// Ask this responder (an http URL) instead of the one named in each certificate's authorityInfoAccess.
    public var ocspResponder: String?
    /// What happens when the status of a certificate cannot be learnt: no answer, a bad answer, OCSP "unknown".
    public var unknown: UnknownPolicy
    /// A fetched CRL is fetched again after this long, and before its nextUpdate in any case.
    public var refreshInterval: ConfigDuration
    /// The longest one fetch or query may take, connection included.
    public var fetchTimeout: ConfigDuration
    /// The largest CRL read; a bigger answer is refused (`too_large`).
    public var maxCRLBytes: Int
    /// Fetched CRLs are also kept here, so that a restart does not start cold (optional; must be writable).
    public var cacheDir: String?

    package enum CodingKeys: String, CodingKey {
        case crlFetch = "crl_fetch"
        case ocsp
        case ocspResponder = "ocsp_responder"
        case unknown
        case refreshInterval = "refresh_interval"
        case fetchTimeout = "fetch_timeout"
        case maxCRLBytes = "max_crl_bytes"
        case cacheDir = "cache_dir"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        crlFetch = c.value(.crlFetch, default: false)
        ocsp = c.value(.ocsp, default: .off)
        ocspResponder = c.optional(.ocspResponder)
        unknown = c.value(.unknown, default: .deny)
        refreshInterval = c.value(.refreshInterval, default: .seconds(3600))
        fetchTimeout = c.value(.fetchTimeout, default: .seconds(5))
        maxCRLBytes = c.value(.maxCRLBytes, default: 10 * 1024 * 1024)
        cacheDir = c.optional(.cacheDir)
    }

    /// Whether anything is checked online.
    public var isEnabled: Bool { crlFetch || ocsp != .off }
}
