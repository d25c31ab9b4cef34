import Foundation

/// One testcase of x509-limbo's `limbo.json` (C2SP/x509-limbo, schema version 1): the fields the gateway's
/// verifier can be driven with. Certificates and CRLs are PEM texts.
package struct LimboTestcase: Decodable, Sendable {
    package enum Kind: String, Decodable, Sendable {
        case server = "SERVER"
        case client = "CLIENT"
    }

    package enum Expected: String, Decodable, Sendable {
        case success = "SUCCESS"
        case failure = "FAILURE"
    }

    package struct PeerName: Decodable, Sendable {
        package var kind: String
        package var value: String
    }

    package var id: String
    package var features: [String]
    package var validationKind: Kind
    package var trustedCerts: [String]
    package var untrustedIntermediates: [String]
    package var peerCertificate: String
    /// RFC 3339 (`2024-01-01T00:00:00+00:00`); nil means now.
    package var validationTime: String?
    package var signatureAlgorithms: [String]
    package var keyUsage: [String]
    package var extendedKeyUsage: [String]
    package var expectedResult: Expected
    package var expectedPeerName: PeerName?
    package var maxChainDepth: Int?
    package var crls: [String]

    /// The category x509-limbo's result pages group by: the id up to its first `::`.
    package var category: String { id.components(separatedBy: "::").first ?? id }

    enum CodingKeys: String, CodingKey {
        case id, features, crls
        case validationKind = "validation_kind"
        case trustedCerts = "trusted_certs"
        case untrustedIntermediates = "untrusted_intermediates"
        case peerCertificate = "peer_certificate"
        case validationTime = "validation_time"
        case signatureAlgorithms = "signature_algorithms"
        case keyUsage = "key_usage"
        case extendedKeyUsage = "extended_key_usage"
        case expectedResult = "expected_result"
        case expectedPeerName = "expected_peer_name"
        case maxChainDepth = "max_chain_depth"
    }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        features = try c.decodeIfPresent([String].self, forKey: .features) ?? []
        validationKind = try c.decode(Kind.self, forKey: .validationKind)
        trustedCerts = try c.decode([String].self, forKey: .trustedCerts)
        untrustedIntermediates = try c.decode([String].self, forKey: .untrustedIntermediates)
        peerCertificate = try c.decode(String.self, forKey: .peerCertificate)
        validationTime = try c.decodeIfPresent(String.self, forKey: .validationTime)
        signatureAlgorithms = try c.decodeIfPresent([String].self, forKey: .signatureAlgorithms) ?? []
        keyUsage = try c.decodeIfPresent([String].self, forKey: .keyUsage) ?? []
        extendedKeyUsage = try c.decodeIfPresent([String].self, forKey: .extendedKeyUsage) ?? []
        expectedResult = try c.decode(Expected.self, forKey: .expectedResult)
        expectedPeerName = try c.decodeIfPresent(PeerName.self, forKey: .expectedPeerName)
        maxChainDepth = try c.decodeIfPresent(Int.self, forKey: .maxChainDepth)
        crls = try c.decodeIfPresent([String].self, forKey: .crls) ?? []
    }
}
