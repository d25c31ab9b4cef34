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
    /// `crlURLs` and `ocspURLs` become the CRL distribution points and authorityInfoAccess OCSP entries.
    public static func makeCA(
        _ subject: DistinguishedName, issuer: IssuedCertificate? = nil, pathLength: Int? = nil,
        notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(365 * 86400),
        crlURLs: [String] = [], ocspURLs: [String] = [], keyUsage: KeyUsage = KeyUsage(keyCertSign: true, cRLSign: true)
    ) throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: pathLength))
            Critical(keyUsage)
            SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            if !crlURLs.isEmpty { crlDistributionPoints(crlURLs) }
            if !ocspURLs.isEmpty { AuthorityInformationAccess(ocspURLs.map { .init(method: .ocspServer, location: .uniformResourceIdentifier($0)) }) }
        }
        return try sign(subject: subject, key: key, issuer: issuer, notBefore: notBefore, notAfter: notAfter, extensions: extensions)
    }

    /// A leaf certificate. `usages` nil leaves out the extended key usage extension entirely.
    public static func makeLeaf(
        _ subject: DistinguishedName, issuer: IssuedCertificate?, dnsNames: [String] = [], ipAddresses: [String] = [],
        uris: [String] = [], emails: [String] = [], usages: [ExtendedKeyUsage.Usage]? = [.clientAuth],
        notBefore: Date = Date().addingTimeInterval(-3600), notAfter: Date = Date().addingTimeInterval(90 * 86400),
        crlURLs: [String] = [], ocspURLs: [String] = []
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
            if !crlURLs.isEmpty { crlDistributionPoints(crlURLs) }
            if !ocspURLs.isEmpty { AuthorityInformationAccess(ocspURLs.map { .init(method: .ocspServer, location: .uniformResourceIdentifier($0)) }) }
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

    /// A CRL distribution points extension with one distribution point per URL (its fullName). swift-certificates
    /// has no type for it, so its DER is written here: SEQUENCE { SEQUENCE { [0] { [0] { [6] url } } } ... }.
    public static func crlDistributionPoints(_ urls: [String]) -> Certificate.Extension {
        func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
            precondition(content.count < 0x10000)
            if content.count < 0x80 { return [tag, UInt8(content.count)] + content }
            if content.count < 0x100 { return [tag, 0x81, UInt8(content.count)] + content }
            return [tag, 0x82, UInt8(content.count >> 8), UInt8(content.count & 0xFF)] + content
        }
        let points = urls.map { tlv(0x30, tlv(0xA0, tlv(0xA0, tlv(0x86, Array($0.utf8))))) }
        return Certificate.Extension(oid: [2, 5, 29, 31], critical: false, value: ArraySlice(tlv(0x30, points.flatMap { $0 })))
    }

    /// Parses dotted IPv4 text into four bytes.
    private static func IPv4Address(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".").compactMap { UInt8($0) }
        return parts.count == 4 ? parts : nil
    }
}
