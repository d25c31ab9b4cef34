/// The admin listener: plain HTTP (or HTTPS with `tls`) for probes, scrapes and the operator's console (`/`,
/// `/api/...`, `/healthz`, `/readyz`, `/metrics`, `/config`, `/plugins`, `POST /reload`).
///
/// Who may use it: with `tls.client_ca`, only clients with a certificate from that bundle (mutual TLS); with
/// `token_file`, requests that carry `Authorization: Bearer <token>` (`/healthz`, `/readyz` and the console's
/// static page stay open for probes). Without either it must stay on a loopback address: the gateway refuses to
/// start with a non-loopback `address` and no protection.
public struct AdminConfig: Codable, Sendable {
    public var address: String
    /// A file whose first line is the bearer token (at least 16 characters; readable by the service user only).
    public var tokenFile: String?
    /// HTTPS on the admin listener, and mutual TLS with `client_ca`.
    public var tls: AdminTLSConfig?
    public var console: ConsoleConfig

    package enum CodingKeys: String, CodingKey {
        case address
        case tokenFile = "token_file"
        case tls, console
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        address = c.value(.address, default: "127.0.0.1:9901")
        tokenFile = c.optional(.tokenFile)
        tls = c.optional(.tls)
        console = c.value(.console, default: ConsoleConfig())
    }
}

/// `admin.tls`: the admin listener's own certificate, and the CAs whose clients it admits.
public struct AdminTLSConfig: Codable, Sendable {
    public var cert: String
    public var key: String
    /// PEM bundles of the CAs that issue operators' certificates; without it the listener is HTTPS only.
    public var clientCA: [String]

    package enum CodingKeys: String, CodingKey {
        case cert, key
        case clientCA = "client_ca"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        cert = c.required(.cert) ?? ""
        key = c.required(.key) ?? ""
        clientCA = c.value(.clientCA, default: [])
    }
}

/// `admin.console`: what the console keeps in memory.
public struct ConsoleConfig: Codable, Sendable {
    /// Client identities remembered (over all listeners); the least recently seen go first.
    public var identities: Int
    /// Refused handshakes and denied requests remembered (newest kept).
    public var refusals: Int
    /// Certificates and CRLs with fewer days left than this are highlighted.
    public var expiryWarningDays: Int

    package enum CodingKeys: String, CodingKey {
        case identities, refusals
        case expiryWarningDays = "expiry_warning_days"
    }

    public init() {
        identities = 1000
        refusals = 500
        expiryWarningDays = 30
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        let defaults = ConsoleConfig()
        identities = c.value(.identities, default: defaults.identities)
        refusals = c.value(.refusals, default: defaults.refusals)
        expiryWarningDays = c.value(.expiryWarningDays, default: defaults.expiryWarningDays)
    }
}
