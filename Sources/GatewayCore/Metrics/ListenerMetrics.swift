import CoreMetrics
import NIOCore
import Prometheus

/// One listener's metric handles. Every label set is created up front, so the request path only increments.
package final class ListenerMetrics: Sendable {
    package let connectionsAccepted: Counter
    /// The console's record of clients and refusals (shared by every listener).
    package let console: ConsoleJournal
    package let connectionsActive: Meter
    /// WebSocket tunnels open now, and opened in all (`gateway_tunnels_active`, `gateway_tunnels_total`).
    package let tunnelsActive: Meter
    package let tunnelsOpened: Counter
    /// HTTP/2: streams open now and opened in all; connections closed for the peer's misbehaviour, by reason
    /// (`HTTP2Connection.closeReasons`).
    package let http2StreamsActive: Meter
    package let http2StreamsOpened: Counter
    private let http2Closed: [String: Counter]
    /// Accepted connections whose set-up failed, by stage (`SetupStage`): each is also logged with the peer.
    private let setupFailures: [Counter]
    package let handshakesSucceeded: Counter
    /// Failed handshakes by rejection reason (the stable `HandshakeRejection.Code` names).
    private let handshakesFailed: [String: Counter]
    private let handshakesFailedOther: Counter
    /// Requests by status class: index 0 for 1xx ... 4 for 5xx.
    private let requests: [Counter]
    package let requestDuration: CoreMetrics.Timer
    /// Clients closed for being too slow, by kind (`ClientTimeout`).
    private let clientTimeouts: [Counter]
    /// Connections closed at accept for a limit, by `RefusalReason`.
    private let connectionsRefused: [Counter]
    /// PROXY protocol outcomes, by `ProxyProtocolOutcome` (0 on listeners without `proxy_protocol`).
    private let proxyProtocol: [Counter]
    /// Requests the HTTP/1 parser refused, by `HTTP1ParseError.Reason`.
    private let parseErrors: [Counter]
    /// Handshakes checked against configured CRL files (`tls.crl`): good, revoked, unavailable (expired or
    /// invalid CRL), as `gateway_revocation_checks_total{source="crl_file"}`.
    private let crlFileChecks: [Counter]

    package static let rejectionCodes: [HandshakeRejection.Code] = [
        .noCertificate, .unknownCA, .selfSigned, .expired, .notYetValid, .revoked, .crlExpired, .crlInvalid, .revocationUnavailable, .badSignature,
        .usage, .chainTooLong, .invalidCA, .nameConstraints, .malformed, .pinMismatch, .sanMismatch, .ja4Denied, .ja4NotAllowed, .protocolVersion,
        .handshakeTimeout, .tlsError,
    ]

    package init(listener: String, factory: PrometheusMetricsFactory, console: ConsoleJournal = ConsoleJournal()) {
        self.console = console
        let l = ("listener", listener)
        connectionsAccepted = Counter(label: "gateway_connections_accepted_total", dimensions: [l], factory: factory)
        connectionsActive = Meter(label: "gateway_connections_active", dimensions: [l], factory: factory)
        tunnelsActive = Meter(label: "gateway_tunnels_active", dimensions: [l], factory: factory)
        tunnelsOpened = Counter(label: "gateway_tunnels_total", dimensions: [l], factory: factory)
        http2StreamsActive = Meter(label: "gateway_http2_streams_active", dimensions: [l], factory: factory)
        http2StreamsOpened = Counter(label: "gateway_http2_streams_total", dimensions: [l], factory: factory)
        var closed: [String: Counter] = [:]
        for reason in HTTP2Connection.closeReasons {
            closed[reason] = Counter(label: "gateway_http2_connections_closed_total", dimensions: [l, ("reason", reason)], factory: factory)
        }
        http2Closed = closed
        setupFailures = SetupStage.allCases.map { stage in
            Counter(label: "gateway_connection_setup_failures_total", dimensions: [l, ("stage", stage.rawValue)], factory: factory)
        }
        handshakesSucceeded = Counter(
            label: "gateway_tls_handshakes_total", dimensions: [l, ("result", "success"), ("reason", "none")], factory: factory
        )
        var failed: [String: Counter] = [:]
        for code in Self.rejectionCodes {
            failed[code.name] = Counter(
                label: "gateway_tls_handshakes_total", dimensions: [l, ("result", "failure"), ("reason", code.name)], factory: factory
            )
        }
        handshakesFailed = failed
        handshakesFailedOther = Counter(
            label: "gateway_tls_handshakes_total", dimensions: [l, ("result", "failure"), ("reason", "other")], factory: factory
        )
        requests = (1...5).map { digit in
            Counter(label: "gateway_requests_total", dimensions: [l, ("status_class", "\(digit)xx")], factory: factory)
        }
        requestDuration = CoreMetrics.Timer(label: "gateway_request_duration_seconds", dimensions: [l], factory: factory)
        crlFileChecks = ["good", "revoked", "unavailable"].map { result in
            Counter(label: "gateway_revocation_checks_total", dimensions: [l, ("source", "crl_file"), ("result", result)], factory: factory)
        }
        connectionsRefused = RefusalReason.allCases.map { reason in
            Counter(label: "gateway_connections_refused_total", dimensions: [l, ("reason", reason.rawValue)], factory: factory)
        }
        proxyProtocol = ProxyProtocolOutcome.allCases.map { outcome in
            Counter(label: "gateway_proxy_protocol_total", dimensions: [l, ("outcome", outcome.rawValue)], factory: factory)
        }
        parseErrors = HTTP1ParseError.Reason.requestReasons.map { reason in
            Counter(label: "gateway_request_parse_errors_total", dimensions: [l, ("reason", reason.rawValue)], factory: factory)
        }
        clientTimeouts = ClientTimeout.allCases.map { kind in
            Counter(label: "gateway_client_timeouts_total", dimensions: [l, ("kind", kind.rawValue)], factory: factory)
        }
    }

    /// Why a connection was closed at accept.
    package enum RefusalReason: String, CaseIterable {
        /// The listener had `max_connections` open.
        case listenerLimit = "listener_limit"
        /// The client's IP address had `max_connections_per_ip` open.
        case clientLimit = "client_limit"
    }

    package func connectionRefused(_ reason: RefusalReason) {
        connectionsRefused[RefusalReason.allCases.firstIndex(of: reason)!].increment()
    }

    /// What became of a connection on a listener with `proxy_protocol`, before its first own byte.
    package enum ProxyProtocolOutcome: String, CaseIterable, Sendable {
        /// A v1 or v2 header with the client's address, which the connection now carries.
        case v1, v2
        /// A v2 LOCAL command, a v1 UNKNOWN line, or a v2 family without IP addresses: served with the
        /// socket's addresses (a balancer's health check).
        case local
        /// `optional` mode, a connection without a header: served with the socket's addresses.
        case absent
        /// Closed: a header from a peer outside `trusted`, or (`required`) any connection from one.
        case untrusted
        /// Closed: `required` mode and the connection did not start with a header.
        case missing
        /// Closed: the header breaks the specification (each reason is logged at debug level).
        case malformed
        /// Closed: the peer ended the connection in the middle of the header.
        case truncated
        /// Closed: the header did not arrive within the listener's `handshake_timeout`.
        case timeout
    }

    package func proxyProtocol(_ outcome: ProxyProtocolOutcome) {
        proxyProtocol[ProxyProtocolOutcome.allCases.firstIndex(of: outcome)!].increment()
    }

    package func requestRefusedByParser(_ reason: HTTP1ParseError.Reason) {
        guard let index = HTTP1ParseError.Reason.requestReasons.firstIndex(of: reason) else { return }
        parseErrors[index].increment()
    }

    /// Why a slow client was closed.
    package enum ClientTimeout: String, CaseIterable {
        /// Its request body came slower than `min_body_rate` over a `body_timeout` window.
        case body
        /// It read nothing of its response for `send_timeout`.
        case send
    }

    package func clientTimedOut(_ kind: ClientTimeout) {
        clientTimeouts[ClientTimeout.allCases.firstIndex(of: kind)!].increment()
    }

    /// Where the set-up of an accepted connection can fail before it serves anything.
    package enum SetupStage: String, CaseIterable {
        /// The channel pipeline could not be built; the connection is closed.
        case pipeline
        /// The TLS handler for the ClientHello's server name could not be installed; the connection is closed.
        case tls
    }

    package func connectionSetupFailed(_ stage: SetupStage) {
        setupFailures[SetupStage.allCases.firstIndex(of: stage)!].increment()
    }

    /// A verification by a client policy with configured CRLs: what it decided.
    package func crlFileCheck(_ outcome: ClientCertificateVerifier.Outcome) {
        switch outcome {
        case .verified: crlFileChecks[0].increment()
        case .rejected(let rejection, _) where rejection.code == .revoked: crlFileChecks[1].increment()
        case .rejected(let rejection, _) where rejection.code == .crlExpired || rejection.code == .crlInvalid: crlFileChecks[2].increment()
        case .rejected: break
        }
    }

    package func handshakeFailed(_ code: HandshakeRejection.Code) {
        (handshakesFailed[code.name] ?? handshakesFailedOther).increment()
    }

    /// An HTTP/2 connection closed for the client's misbehaviour (`HTTP2Connection.closeReasons`).
    package func http2ConnectionClosed(_ reason: String) {
        http2Closed[reason]?.increment()
    }

    /// A request counted by its status without its duration (a tunnel's, whose duration is its life).
    package func requestCounted(status: Int) {
        requests[min(max(status / 100, 1), 5) - 1].increment()
    }

    /// Counts one answered request and its duration (head received to response end written).
    package func requestCompleted(status: Int, started: NIODeadline, now: NIODeadline = .now()) {
        let index = min(max(status / 100, 1), 5) - 1
        requests[index].increment()
        requestDuration.recordNanoseconds((now - started).nanoseconds)
    }
}
