/// Why a client's TLS handshake was refused; `code` is stable (logs, metrics labels, the plugin ABI).
public struct HandshakeRejection: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public static let noCertificate = Code("no_certificate")
        public static let unknownCA = Code("unknown_ca")
        public static let selfSigned = Code("self_signed")
        public static let expired = Code("certificate_expired")
        public static let notYetValid = Code("certificate_not_yet_valid")
        public static let revoked = Code("certificate_revoked")
        public static let crlExpired = Code("crl_expired")
        /// A CRL configured for an issuer of the path is not signed by (or may not be signed by) that issuer:
        /// revocation cannot be checked, and the client is refused.
        public static let crlInvalid = Code("crl_invalid")
        /// `tls.revocation` is on and a certificate's status could not be learnt (no URL, fetch failed, a bad or
        /// stale answer, OCSP "unknown"), and `revocation.unknown` is deny.
        public static let revocationUnavailable = Code("revocation_unavailable")
        public static let badSignature = Code("bad_signature")
        public static let usage = Code("unsupported_certificate_purpose")
        public static let chainTooLong = Code("chain_too_long")
        public static let invalidCA = Code("invalid_ca")
        public static let nameConstraints = Code("name_constraints")
        public static let malformed = Code("malformed_certificate")
        /// The chain verifies, but the leaf matches none of the listener's `client_allow` pins.
        public static let pinMismatch = Code("pin_mismatch")
        /// The chain verifies, but no subjectAltName of the leaf matches the listener's `client_allow` matchers.
        public static let sanMismatch = Code("san_mismatch")
        /// The ClientHello's JA4 fingerprint is in the listener's `ja4_deny`.
        public static let ja4Denied = Code("ja4_denied")
        /// The listener has a `ja4_allow` list, and the ClientHello's JA4 fingerprint is not in it.
        public static let ja4NotAllowed = Code("ja4_not_allowed")
        public static let protocolVersion = Code("protocol_version")
        public static let handshakeTimeout = Code("handshake_timeout")
        public static let tlsError = Code("tls_error")
        public var description: String { name }
    }

    public var code: Code
    /// A precise, human-readable reason naming the certificate concerned.
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}
