/// Why the verifier's verdict on an x509-limbo testcase differs from limbo's expectation without weakening
/// client authentication, as Go's x509 test keeps its list of allowed differences. Each entry pins the verdict it
/// explains (and, for a refusal, its reason code), so an entry whose testcase now ends otherwise explains
/// nothing and the disagreement shows as not explained (`gateway limbo` then exits 2, and
/// `LimboHarnessTests` fails). Read by the summary only: the verdict itself is always the verifier's.
package struct LimboExplanation: Sendable {
    package enum Pinned: Sendable, Equatable {
        case success
        /// Refused, with this `HandshakeRejection` code (or a `config:` refusal when the code is "config").
        case failure(String)
    }

    package let pinned: Pinned
    package let why: String

    init(_ pinned: Pinned, _ why: String) {
        self.pinned = pinned
        self.why = why
    }

    /// `why`, when `verdict` is the one this entry pins.
    func explains(_ verdict: LimboHarness.Verdict) -> String? {
        switch (pinned, verdict) {
        case (.success, .success): return why
        case (.failure(let code), .failure(let reason)) where reason.hasPrefix(code + ":"): return why
        default: return nil
        }
    }

    package static let known: [String: LimboExplanation] = [
        "crl::crlnumber-missing": .init(.success,
            "CRL profile: RFC 5280 5.2.3 asks CRL issuers for a non-critical CRL number; the gateway reads the number nowhere (it keeps the freshest CRL by thisUpdate) and takes CRLs without one, as OpenSSL and rustls-webpki do"),
        "crl::crlnumber-critical": .init(.success,
            "CRL profile: RFC 5280 5.2.3 asks CRL issuers for a non-critical CRL number; the gateway reads the number nowhere (it keeps the freshest CRL by thisUpdate) and takes CRLs without one, as OpenSSL and rustls-webpki do"),
        "pathlen::validation-ignores-pathlen-in-leaf": .init(.failure("unsupported_certificate_purpose"),
            "A client signs TLS CertificateVerify with this key: a leaf whose key usage leaves out digitalSignature cannot authenticate a TLS client, so it is refused (deliberate)"),
        "rfc5280::ca-as-leaf": .init(.failure("unsupported_certificate_purpose"),
            "A client signs TLS CertificateVerify with this key: a leaf whose key usage leaves out digitalSignature cannot authenticate a TLS client, so it is refused (deliberate)"),
        "pathlen::max-chain-depth-1-self-issued": .init(.failure("chain_too_long"),
            "verify_depth counts every CA certificate above the leaf, self-issued ones too, because it also bounds what one handshake costs (deliberate; RFC 5280 exempts self-issued certificates from pathLenConstraint, which the verifier follows)"),
        "rfc5280::validity::notafter-fractional": .init(.failure("certificate_expired"),
            "Validity is compared to the instant: 5 ms after notAfter the certificate has expired (limbo marks the testcase ambiguous; it expects the whole second to count)"),
        "rfc5280::aki::leaf-missing-aki": .init(.success,
            "Certificate profile (RFC 5280 4.2.1.1/4.2.1.2): conforming CAs MUST include key identifiers, but a missing one does not make a path unsafe; accepted, as OpenSSL without X509_V_FLAG_X509_STRICT (nginx's mode; limbo runs OpenSSL strict) and rustls-webpki accept them. Key identifiers are used to skip candidate issuers when present"),
        "rfc5280::aki::intermediate-missing-aki": .init(.success,
            "Certificate profile (RFC 5280 4.2.1.1/4.2.1.2): conforming CAs MUST include key identifiers, but a missing one does not make a path unsafe; accepted, as OpenSSL without X509_V_FLAG_X509_STRICT (nginx's mode; limbo runs OpenSSL strict) and rustls-webpki accept them. Key identifiers are used to skip candidate issuers when present"),
        "rfc5280::aki::cross-signed-root-missing-aki": .init(.success,
            "Certificate profile (RFC 5280 4.2.1.1/4.2.1.2): conforming CAs MUST include key identifiers, but a missing one does not make a path unsafe; accepted, as OpenSSL without X509_V_FLAG_X509_STRICT (nginx's mode; limbo runs OpenSSL strict) and rustls-webpki accept them. Key identifiers are used to skip candidate issuers when present"),
        "rfc5280::ski::root-missing-ski": .init(.success,
            "Certificate profile (RFC 5280 4.2.1.1/4.2.1.2): conforming CAs MUST include key identifiers, but a missing one does not make a path unsafe; accepted, as OpenSSL without X509_V_FLAG_X509_STRICT (nginx's mode; limbo runs OpenSSL strict) and rustls-webpki accept them. Key identifiers are used to skip candidate issuers when present"),
        "rfc5280::ski::intermediate-missing-ski": .init(.success,
            "Certificate profile (RFC 5280 4.2.1.1/4.2.1.2): conforming CAs MUST include key identifiers, but a missing one does not make a path unsafe; accepted, as OpenSSL without X509_V_FLAG_X509_STRICT (nginx's mode; limbo runs OpenSSL strict) and rustls-webpki accept them. Key identifiers are used to skip candidate issuers when present"),
        "rfc5280::nc::permitted-dns-match-noncritical": .init(.success,
            "Name constraints are enforced whether the extension is critical or not (docs/threat-model.md), and a non-critical one is not refused for its criticality, as OpenSSL"),
        "rfc5280::nc::invalid-dnsname-leading-period": .init(.success,
            "A DNS constraint with a leading period is read as 'the names below it', as OpenSSL reads it; the names it admits are a subset of what the constraint without the period admits"),
        "rfc5280::nc::nc-forbids-alternate-chain-ica": .init(.failure("bad_signature"),
            "Path building takes the first presented issuer whose signature verifies (trust anchors first) and does not backtrack to another path when a later check fails; a client that presents two certificates for one intermediate may be refused although another path exists. Known limit (docs/x509-limbo.md)"),
        "rfc5280::nc::nc-forbids-same-chain-ica": .init(.failure("name_constraints"),
            "Path building takes the first presented issuer whose signature verifies (trust anchors first) and does not backtrack to another path when a later check fails; a client that presents two certificates for one intermediate may be refused although another path exists. Known limit (docs/x509-limbo.md)"),
        "rfc5280::pc::ica-noncritical-pc": .init(.success,
            "Certificate policies and policy constraints are not enforced (as in OpenSSL's default verification; docs/threat-model.md)"),
        "rfc5280::san::noncritical-with-empty-subject": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::san::underscore-dns": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::serial::too-long": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::serial::zero": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::ca-empty-subject": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::root-non-critical-basic-constraints": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "webpki::san::san-critical-with-nonempty-subject": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "webpki::malformed-aia": .init(.success,
            "Certificate profile rules about criticality, serial numbers, subjects and SAN syntax that do not change which key is trusted for which name; accepted, as OpenSSL and Go accept most of them"),
        "rfc5280::leaf-ku-keycertsign": .init(.success,
            "A leaf with keyCertSign but cA false is accepted as a client; it can still never issue, because an issuer needs basicConstraints cA"),
        "webpki::aki::root-with-aki-missing-keyidentifier": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::aki::root-with-aki-authoritycertissuer": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::aki::root-with-aki-authoritycertserialnumber": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::aki::root-with-aki-all-fields": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::aki::root-with-aki-ski-mismatch": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::eku::ee-anyeku": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::eku::ee-critical-eku": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::eku::ee-without-eku": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::eku::root-has-eku": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::nc::intermediate-permitted-excluded-subtrees-both-empty-sequences": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::forbidden-rsa-not-divisible-by-8-in-root": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::ee-basicconstraints-ca": .init(.success,
            "CA/Browser Forum Baseline Requirements for public TLS server certificates (web PKI profile); a private client PKI is not held to them, as OpenSSL and Go do not hold one"),
        "webpki::cn::ipv4-hex-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::ipv4-leading-zeros-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::ipv6-uppercase-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::ipv6-uncompressed-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::ipv6-non-rfc5952-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::punycode-not-in-san": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::utf8-vs-punycode-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::not-in-san": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::cn::case-mismatch": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::san::public-suffix-wildcard-san": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::san::public-suffix-multi-label-wildcard-san": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "webpki::san::public-suffix-private-namespace-wildcard-san": .init(.success,
            "Server-name matching (common name versus SAN, IP and IDNA forms, public-suffix wildcards): the harness's generous SAN check let the testcase count, but the expected failure is about matching a server name, which a client-certificate verifier never does"),
        "pathological::nc-dos-3": .init(.success,
            "The 2,048 names are attributes of the subject: name constraints compare the subject as one directory name with each of the CA's subtrees (within the 65,536-comparison bound), so there is no quadratic work to refuse; limbo expects it refused for that cost"),
        "webpki::san::no-san": .init(.success,
            "A client certificate needs no subjectAltName (its identity is the subject, and the SANs when present); the CA/Browser Forum requires one of public TLS server certificates"),
        "webpki::v1-cert": .init(.success,
            "A leaf of version 1 or 2 (no extensions) is accepted as a client, as OpenSSL accepts it: it has no usage to check and cannot issue, since an issuer needs basicConstraints cA; the CA/Browser Forum requires v3 of public TLS server certificates"),
    ]
}
