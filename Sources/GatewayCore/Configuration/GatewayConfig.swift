/// The whole configuration file, decoded once at start-up and then compiled into `GatewayRuntime`.
public struct GatewayConfig: Codable, Sendable {
    public var listeners: [ListenerConfig]
    public var backends: [BackendConfig]
    /// How long a graceful shutdown waits for in-flight requests before closing connections.
    public var shutdownTimeout: ConfigDuration
    /// On SIGTERM, how long the listeners keep accepting (every response with `Connection: close`, `/readyz`
    /// answering 503) before they close, so that load balancers' health checks take the instance out first.
    public var drainDelay: ConfigDuration = .seconds(0)
    /// Directories searched, in order, for a plugin `library` given as a bare file name.
    public var pluginPaths: [String]?
    /// The admin HTTP listener (health, readiness, metrics, effective config); off when absent.
    public var admin: AdminConfig?
    /// Reload when the configuration file or a file it names changes (as on SIGHUP).
    public var watch: Bool = false
    /// How often watched files are looked at; a change is acted on once it has held still for one interval.
    public var watchInterval: ConfigDuration = .seconds(2)
    /// DNS servers asked for backend host names (honouring TTLs); the system resolver when absent.
    public var resolver: ResolverConfig?

    package enum CodingKeys: String, CodingKey {
        case listeners, backends, admin, watch, resolver
        case shutdownTimeout = "shutdown_timeout"
        case drainDelay = "drain_delay"
        case pluginPaths = "plugin_paths"
        case watchInterval = "watch_interval"
    }

    public init(listeners: [ListenerConfig], backends: [BackendConfig], shutdownTimeout: ConfigDuration = .seconds(30)) {
        self.listeners = listeners
        self.backends = backends
        self.shutdownTimeout = shutdownTimeout
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        listeners = c.required(.listeners) ?? []
        backends = c.value(.backends, default: [])
        shutdownTimeout = c.value(.shutdownTimeout, default: .seconds(30))
        drainDelay = c.value(.drainDelay, default: .seconds(0))
        pluginPaths = c.optional(.pluginPaths, StringOrList.self)?.values
        admin = c.optional(.admin)
        watch = c.value(.watch, default: false)
        watchInterval = c.value(.watchInterval, default: .seconds(2))
        resolver = c.optional(.resolver)
    }
}

public enum ListenerProtocol: String, ConfigEnum, Sendable {
    case https, http
}

/// One listening socket with its TLS policy and its routes.
public struct ListenerConfig: Codable, Sendable {
    public var name: String
    public var address: String
    public var `protocol`: ListenerProtocol
    public var tls: ListenerTLSConfig?
    public var routes: [RouteConfig]
    public var limits: HTTPLimitsConfig
    /// The plugin chain, run in this order for every request of the listener.
    public var plugins: [PluginEntryConfig]
    /// The PROXY protocol header that a load balancer in front sends (nil: none is expected).
    public var proxyProtocol: ProxyProtocolConfig?
    /// SO_REUSEPORT: a new gateway process (of the same user) can bind the same address while this one drains.
    public var reusePort: Bool
    /// WebSocket tunnelling (HTTP/1.1 `Upgrade: websocket`).
    public var websocket: WebSocketConfig
    /// The application protocols offered in the TLS handshake, in order of preference (`h2`, `http/1.1`); nil:
    /// `http/1.1` alone. https listeners only.
    public var alpn: [String]?
    /// HTTP/2 limits (on listeners whose `alpn` offers `h2`).
    public var http2: HTTP2Config

    package enum CodingKeys: String, CodingKey {
        case name, address, `protocol`, tls, routes, limits, plugins, websocket, alpn, http2
        case proxyProtocol = "proxy_protocol"
        case reusePort = "reuse_port"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        name = c.required(.name) ?? ""
        address = c.required(.address) ?? ""
        `protocol` = c.value(.protocol, default: .https)
        tls = c.optional(.tls)
        routes = c.value(.routes, default: [])
        limits = c.value(.limits, default: HTTPLimitsConfig())
        plugins = c.value(.plugins, default: [])
        proxyProtocol = c.optional(.proxyProtocol)
        reusePort = c.value(.reusePort, default: false)
        websocket = c.value(.websocket, default: WebSocketConfig())
        alpn = c.optional(.alpn)
        http2 = c.value(.http2, default: HTTP2Config())
    }
}

public enum ClientAuthMode: String, ConfigEnum, Sendable {
    case none, optional, required
}

public enum TLSMinimumVersion: String, ConfigEnum, Sendable {
    case tls12 = "tls1.2"
    case tls13 = "tls1.3"
}

/// Server certificates and the client-certificate policy of an HTTPS listener.
public struct ListenerTLSConfig: Codable, Sendable {
    public var certificates: [ServerCertificateConfig]
    public var clientAuth: ClientAuthMode
    public var clientCA: [String]
    public var crl: [String]
    public var verifyDepth: Int
    public var minVersion: TLSMinimumVersion
    public var clientAllow: ClientAllowConfig?
    /// JA4 fingerprints of clients refused at their ClientHello, before any cryptography (`ja4_deny`).
    public var ja4Deny: [String]
    /// When not empty, only clients with one of these JA4 fingerprints get past their ClientHello (`ja4_allow`).
    /// Absent: every fingerprint passes. An empty list is refused at load (it would admit no one, or, read as
    /// absent, everyone).
    public var ja4Allow: [String]?
    /// Online revocation checks: CRLs from the certificates' distribution points, OCSP (`revocation`).
    public var revocation: RevocationConfig?

    package enum CodingKeys: String, CodingKey {
        case certificates
        case revocation
        case clientAuth = "client_auth"
        case clientCA = "client_ca"
        case crl
        case verifyDepth = "verify_depth"
        case minVersion = "min_version"
        case clientAllow = "client_allow"
        case ja4Deny = "ja4_deny"
        case ja4Allow = "ja4_allow"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        certificates = c.required(.certificates) ?? []
        clientAuth = c.value(.clientAuth, default: .none)
        clientCA = c.optional(.clientCA, StringOrList.self)?.values ?? []
        crl = c.optional(.crl, StringOrList.self)?.values ?? []
        verifyDepth = c.value(.verifyDepth, default: 4)
        minVersion = c.value(.minVersion, default: .tls12)
        clientAllow = c.optional(.clientAllow)
        ja4Deny = c.optional(.ja4Deny, StringOrList.self)?.values ?? []
        ja4Allow = c.optional(.ja4Allow, StringOrList.self)?.values
        revocation = c.optional(.revocation)
    }
}

/// A certificate chain and its key; `sni` names default to the certificate's DNS SANs. The client-policy keys,
/// when given, replace the listener's for connections whose server name selects this certificate.
public struct ServerCertificateConfig: Codable, Sendable {
    public var cert: String
    public var key: String
    /// A file whose first line is the passphrase of an encrypted `key` (as nginx's ssl_password_file).
    public var keyPasswordFile: String?
    public var sni: [String]?
    public var clientAuth: ClientAuthMode?
    public var clientCA: [String]?
    public var crl: [String]?
    public var verifyDepth: Int?
    public var clientAllow: ClientAllowConfig?

    package enum CodingKeys: String, CodingKey {
        case cert, key, sni, crl
        case keyPasswordFile = "key_password_file"
        case clientAuth = "client_auth"
        case clientCA = "client_ca"
        case verifyDepth = "verify_depth"
        case clientAllow = "client_allow"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        cert = c.required(.cert) ?? ""
        key = c.required(.key) ?? ""
        keyPasswordFile = c.optional(.keyPasswordFile)
        sni = c.optional(.sni, StringOrList.self)?.values
        clientAuth = c.optional(.clientAuth)
        clientCA = c.optional(.clientCA, StringOrList.self)?.values
        crl = c.optional(.crl, StringOrList.self)?.values
        verifyDepth = c.optional(.verifyDepth)
        clientAllow = c.optional(.clientAllow)
    }

    /// This certificate sets a client policy of its own.
    public var hasClientPolicy: Bool { clientAuth != nil || clientCA != nil || crl != nil || verifyDepth != nil || clientAllow != nil }
}

/// A route: the first whose `match` fits the request sends it to `backend`.
public struct RouteConfig: Codable, Sendable {
    public var match: RouteMatchConfig?
    public var backend: String

    package enum CodingKeys: String, CodingKey { case match, backend }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        match = c.optional(.match)
        backend = c.required(.backend) ?? ""
    }
}

public struct RouteMatchConfig: Codable, Sendable {
    public var host: String?
    public var pathPrefix: String?
    public var pathExact: String?
    public var methods: [String]?

    package enum CodingKeys: String, CodingKey {
        case host
        case pathPrefix = "path_prefix"
        case pathExact = "path_exact"
        case methods
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        host = c.optional(.host)
        pathPrefix = c.optional(.pathPrefix)
        pathExact = c.optional(.pathExact)
        methods = c.optional(.methods, StringOrList.self)?.values
    }
}

/// Limits that protect the gateway from slow or oversized clients.
public struct HTTPLimitsConfig: Codable, Sendable {
    public var maxHeaderBytes: Int = 32 * 1024
    /// Most header fields in a request head (and in a chunked body's trailer section); beyond: 431.
    public var maxHeaderCount: Int = 100
    public var maxBodyBytes: Int64 = 16 * 1024 * 1024
    /// A chunked request body up to this many bytes is read whole (its chunk framing checked to the end)
    /// before any byte of the request goes to a backend: a request the gateway refuses for broken framing
    /// never reaches one. A longer body is streamed once this many bytes are buffered (0: always stream).
    public var chunkedBufferBytes: Int = 64 * 1024
    public var headerTimeout: ConfigDuration = .seconds(10)
    public var idleTimeout: ConfigDuration = .seconds(60)
    /// A request body is read in windows of this length: a window with no byte, or fewer than
    /// `minBodyRate` bytes per second, ends the request (408, or a close once the response started).
    public var bodyTimeout: ConfigDuration = .seconds(30)
    /// Bytes per second a request body must average over each `bodyTimeout` window (0: any progress will do).
    public var minBodyRate: Int = 256
    /// How long the client may leave the gateway unable to write (it reads nothing of a response) before the
    /// exchange is ended and both connections closed.
    public var sendTimeout: ConfigDuration = .seconds(60)
    /// A TLS handshake must complete within this of connecting (a connection that sends nothing included).
    public var handshakeTimeout: ConfigDuration = .seconds(10)
    /// Open connections on this listener at most; more are closed at accept (0: no limit).
    public var maxConnections: Int = 20_000
    /// Open connections from one client IP address at most; more are closed at accept (0: no limit).
    public var maxConnectionsPerIP: Int = 1_000

    package enum CodingKeys: String, CodingKey {
        case maxHeaderBytes = "max_header_bytes"
        case maxHeaderCount = "max_header_count"
        case maxBodyBytes = "max_body_bytes"
        case chunkedBufferBytes = "chunked_buffer_bytes"
        case headerTimeout = "header_timeout"
        case idleTimeout = "idle_timeout"
        case bodyTimeout = "body_timeout"
        case minBodyRate = "min_body_rate"
        case sendTimeout = "send_timeout"
        case handshakeTimeout = "handshake_timeout"
        case maxConnections = "max_connections"
        case maxConnectionsPerIP = "max_connections_per_ip"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        maxHeaderBytes = c.value(.maxHeaderBytes, default: maxHeaderBytes)
        maxHeaderCount = c.value(.maxHeaderCount, default: maxHeaderCount)
        maxBodyBytes = c.value(.maxBodyBytes, default: maxBodyBytes)
        chunkedBufferBytes = c.value(.chunkedBufferBytes, default: chunkedBufferBytes)
        headerTimeout = c.value(.headerTimeout, default: headerTimeout)
        idleTimeout = c.value(.idleTimeout, default: idleTimeout)
        bodyTimeout = c.value(.bodyTimeout, default: bodyTimeout)
        minBodyRate = c.value(.minBodyRate, default: minBodyRate)
        sendTimeout = c.value(.sendTimeout, default: sendTimeout)
        handshakeTimeout = c.value(.handshakeTimeout, default: handshakeTimeout)
        maxConnections = c.value(.maxConnections, default: maxConnections)
        maxConnectionsPerIP = c.value(.maxConnectionsPerIP, default: maxConnectionsPerIP)
    }
}

public enum BackendProtocol: String, ConfigEnum, Sendable {
    case http, https
}

public enum BalanceStrategy: String, ConfigEnum, Sendable {
    case roundRobin = "round_robin"
    case leastConnections = "least_connections"
    case sourceIPHash = "source_ip_hash"
}

/// A group of backend servers that routes send requests to.
public struct BackendConfig: Codable, Sendable {
    public var name: String
    public var `protocol`: BackendProtocol
    public var tls: BackendTLSConfig?
    public var balance: BalanceStrategy
    public var servers: [BackendServerConfig]
    public var connectTimeout: ConfigDuration
    public var responseTimeout: ConfigDuration
    public var maxIdleConnections: Int
    /// Active health checks: servers that fail them receive no traffic until they pass again.
    public var healthCheck: HealthCheckConfig?
    /// Passive ejection: a server whose connections keep failing is taken out of rotation for a while.
    public var passiveHealth: PassiveHealthConfig?
    /// How often server host names are resolved again (with a `resolver`: when the answer's TTL runs out, but
    /// no later than this).
    public var resolveInterval: ConfigDuration
    /// Which of a host name's addresses become servers.
    public var dnsFamily: DNSFamily

    package enum CodingKeys: String, CodingKey {
        case name, `protocol`, tls, balance, servers
        case resolveInterval = "resolve_interval"
        case dnsFamily = "dns_family"
        case connectTimeout = "connect_timeout"
        case responseTimeout = "response_timeout"
        case maxIdleConnections = "max_idle_connections"
        case healthCheck = "health_check"
        case passiveHealth = "passive_health"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        name = c.required(.name) ?? ""
        `protocol` = c.value(.protocol, default: .http)
        tls = c.optional(.tls)
        balance = c.value(.balance, default: .roundRobin)
        servers = c.required(.servers) ?? []
        connectTimeout = c.value(.connectTimeout, default: .seconds(5))
        responseTimeout = c.value(.responseTimeout, default: .seconds(60))
        maxIdleConnections = c.value(.maxIdleConnections, default: 64)
        healthCheck = c.optional(.healthCheck)
        passiveHealth = c.optional(.passiveHealth)
        resolveInterval = c.value(.resolveInterval, default: .seconds(10))
        dnsFamily = c.value(.dnsFamily, default: .all)
    }
}

public struct BackendServerConfig: Codable, Sendable {
    public var address: String
    public var weight: Int

    package enum CodingKeys: String, CodingKey { case address, weight }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        address = c.required(.address) ?? ""
        weight = c.value(.weight, default: 1)
    }
}

/// TLS towards an HTTPS backend: whom to trust, which name to expect, and an optional client certificate.
public struct BackendTLSConfig: Codable, Sendable {
    public var ca: [String]
    public var serverName: String?
    public var cert: String?
    public var key: String?
    /// A file whose first line is the passphrase of an encrypted `key`.
    public var keyPasswordFile: String?
    public var verify: Bool

    package enum CodingKeys: String, CodingKey {
        case ca
        case serverName = "server_name"
        case cert, key, verify
        case keyPasswordFile = "key_password_file"
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        ca = c.optional(.ca, StringOrList.self)?.values ?? []
        serverName = c.optional(.serverName)
        cert = c.optional(.cert)
        key = c.optional(.key)
        keyPasswordFile = c.optional(.keyPasswordFile)
        verify = c.value(.verify, default: true)
    }
}

/// Accepts `key: a.pem` as well as `key: [a.pem, b.pem]`.
package struct StringOrList: Decodable {
    package var values: [String]
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let one = try? container.decode(String.self) {
            values = [one]
        } else {
            values = try container.decode([String].self)
        }
    }
}
