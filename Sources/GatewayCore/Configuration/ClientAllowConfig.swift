/// Which verified client certificates a listener admits beyond chain verification (`tls.client_allow`): pins of
/// the leaf certificate or of its public key, and matchers of its subjectAltNames. Checked in the handshake.
public struct ClientAllowConfig: Codable, Sendable {
    /// SHA-256 of the leaf certificate's DER (hex, colons allowed, as `openssl x509 -fingerprint -sha256`).
    public var certSHA256: [String]
    /// SHA-256 of the leaf's DER SubjectPublicKeyInfo (hex or base64, as HPKP and Envoy's `verify_certificate_spki`).
    public var spkiSHA256: [String]
    /// DNS subjectAltNames, compared exactly (without case).
    public var dns: [String]
    /// URI subjectAltName prefixes, such as a SPIFFE trust domain `spiffe://prod.example.org/`.
    public var uriPrefix: [String]
    /// Email subjectAltNames (rfc822Name), compared exactly (without case).
    public var email: [String]

    package enum CodingKeys: String, CodingKey {
        case certSHA256 = "cert_sha256"
        case spkiSHA256 = "spki_sha256"
        case dns
        case uriPrefix = "uri_prefix"
        case email
    }

    public init(from decoder: any Decoder) throws {
        let c = try ConfigContainer(decoder, keys: CodingKeys.self)
        certSHA256 = c.optional(.certSHA256, StringOrList.self)?.values ?? []
        spkiSHA256 = c.optional(.spkiSHA256, StringOrList.self)?.values ?? []
        dns = c.optional(.dns, StringOrList.self)?.values ?? []
        uriPrefix = c.optional(.uriPrefix, StringOrList.self)?.values ?? []
        email = c.optional(.email, StringOrList.self)?.values ?? []
    }
}
