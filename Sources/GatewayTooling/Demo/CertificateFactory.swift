import Crypto
import Foundation
import GatewayCore
import SwiftASN1
import X509

/// A certificate with its private key, as used by `gateway demo` and by the tests to make throw-away PKIs.
public struct IssuedCertificate: Sendable {
    public var certificate: Certificate
    public var privateKey: P256.Signing.PrivateKey

    public init(certificate: Certificate, privateKey: P256.Signing.PrivateKey) {
        self.certificate = certificate
        self.privateKey = privateKey
    }

    public var certificatePEM: String { (try? certificate.serializeAsPEM().pemString).map { $0 + "\n" } ?? "" }
    public var privateKeyPEM: String { privateKey.pemRepresentation + "\n" }
    public var name: DistinguishedName { certificate.subject }
}

/// Makes CA, intermediate, server and client certificates with swift-certificates (no openssl CLI needed).
public enum CertificateFactory {
    public static func name(commonName: String, organization: String? = nil, organizationalUnit: String? = nil) -> DistinguishedName {
        (try? DistinguishedName {
            CountryName("US")
            if let organization { OrganizationName(organization) }
            if let organizationalUnit { OrganizationalUnitName(organizationalUnit) }
            CommonName(commonName)
        }) ?? DistinguishedName()
    }

    /// A CA; self-signed when `issuer` is nil, otherwise an intermediate signed by it.
    public static func makeCA(
        _ subject: DistinguishedName, issuer: IssuedCertificate? = nil, pathLength: Int? = nil,
        notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(365 * 86400)
    ) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: pathLength))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
        }
        return try sign(subject: subject, key: key, issuer: issuer, notBefore: notBefore, notAfter: notAfter, extensions: extensions)
    }

    /// A leaf certificate. `usages` nil leaves out the extended key usage extension entirely.
    public static func makeLeaf(
        _ subject: DistinguishedName, issuer: IssuedCertificate?, dnsNames: [String] = [], ipAddresses: [String] = [],
        uris: [String] = [], emails: [String] = [], usages: [ExtendedKeyUsage.Usage]? = [.clientAuth],
        notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(90 * 86400)
    ) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        var names: [GeneralName] = dnsNames.map { .dnsName($0) } + uris.map { .uniformResourceIdentifier($0) } + emails.map { .rfc822Name($0) }
        for ip in ipAddresses {
            if let v4 = IPv4Address(ip) { names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(v4)))) }
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            if let usages { try ExtendedKeyUsage(usages) }
            if !names.isEmpty { SubjectAlternativeNames(names) }
        }
        return try sign(subject: subject, key: key, issuer: issuer, notBefore: notBefore, notAfter: notAfter, extensions: extensions)
    }

    private static func sign(
        subject: DistinguishedName, key: P256.Signing.PrivateKey, issuer: IssuedCertificate?,
        notBefore: Date, notAfter: Date, extensions: Certificate.Extensions
    ) throws -> IssuedCertificate {
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: notBefore,
            notValidAfter: notAfter,
            issuer: issuer?.name ?? subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(issuer?.privateKey ?? key)
        )
        return IssuedCertificate(certificate: certificate, privateKey: key)
    }

    /// Parses dotted IPv4 text into four bytes.
    private static func IPv4Address(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".").compactMap { UInt8($0) }
        return parts.count == 4 ? parts : nil
    }
}
