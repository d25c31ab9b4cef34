import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import SwiftASN1
import X509
import XCTest

/// The identity strings, byte for byte against what `openssl x509` prints (and so what nginx's $ssl_client_*
/// variables hold), for a corpus of awkward certificates generated here.
final class IdentityFormatTests: XCTestCase {
    private func name(_ rdns: [[(ASN1ObjectIdentifier, String)]]) -> DistinguishedName {
        DistinguishedName(rdns.map { attributes in
            RelativeDistinguishedName(attributes.map { RelativeDistinguishedName.Attribute(type: $0.0, utf8String: $0.1) })
        })
    }

    private func certificate(subject: DistinguishedName, serial: [UInt8], issuer: IssuedCertificate) throws -> Certificate {
        let key = P256.Signing.PrivateKey()
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial), publicKey: .init(key.publicKey),
            notValidBefore: Date(timeIntervalSince1970: 1_700_000_000), notValidAfter: Date(timeIntervalSince1970: 1_800_000_005),
            issuer: issuer.name, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                SubjectAlternativeNames([.dnsName("a.example"), .uniformResourceIdentifier("spiffe://corp/ns/x"), .rfc822Name("x@example.org")])
            },
            issuerPrivateKey: .init(issuer.privateKey)
        )
    }

    /// One attribute per RDN, each value DER-encoded with the given string tag.
    private func encoded(_ attributes: [(ASN1ObjectIdentifier, UInt8, [UInt8])]) throws -> DistinguishedName {
        DistinguishedName(try attributes.map { type, tag, content in
            let der = [tag, UInt8(content.count)] + content
            let value = RelativeDistinguishedName.Attribute.Value(asn1Any: try ASN1Any(derEncoded: der))
            return RelativeDistinguishedName([RelativeDistinguishedName.Attribute(type: type, value: value)])
        })
    }

    func testSubjectIssuerSerialFingerprintAndDatesMatchOpenSSL() throws {
        let type = ASN1ObjectIdentifier.RDNAttributeType.self
        let email: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 9, 1]
        let issuer = try CertificateFactory.makeCA(name([[(type.countryName, "DE")], [(type.organizationName, "Müller & Söhne, GmbH")], [(type.commonName, "Issuing CA #1")]]))
        let corpus: [(DistinguishedName, [UInt8])] = [
            (name([[(type.commonName, "plain")]]), [0x01]),
            (name([[(type.countryName, "US")], [(type.organizationName, "Org, Inc.")], [(type.organizationalUnitName, "a+b"), (type.commonName, "multi")]]), [0x00, 0x00, 0x7F]),
            (name([[(type.commonName, "quote \"here\" and \\ back;slash<>")]]), [0x80, 0x01, 0x02]),
            (name([[(type.commonName, " leading and trailing ")]]), [0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0x01, 0x02, 0x03, 0x04]),
            (name([[(type.commonName, "#hash first")]]), [0x00, 0x80]),
            (name([[(type.organizationName, "東京大学")], [(type.commonName, "Zoë Ångström")]]), [0x12, 0x34]),
            (name([[(type.commonName, "with email")], [(email, "someone@example.org")]]), [0x05]),
            (name([[(type.domainComponent, "org")], [(type.domainComponent, "example")], [(type.commonName, "dc=style")]]), [0x06]),
            // BMPString (Windows CAs) and UniversalString values: before, any of them crashed the process
            // (the decoder indexed a slice from 0), from a certificate a client merely presents.
            (try encoded([(type.organizationName, 0x1E, Array("Ünïcode BMP".utf16).flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }),
                          (type.commonName, 0x1C, Array("UCS4 ✓".unicodeScalars).flatMap { s in [24, 16, 8, 0].map { UInt8((s.value >> UInt32($0)) & 0xFF) } })]), [0x07]),
        ]
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-dn-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (index, (subject, serial)) in corpus.enumerated() {
            let cert = try certificate(subject: subject, serial: serial, issuer: issuer)
            let der = try cert.serializeAsPEM().derBytes
            let identity = ClientIdentity(presented: [cert], der: [der])
            let file = "\(directory)/\(index).pem"
            try cert.serializeAsPEM().pemString.write(toFile: file, atomically: true, encoding: .utf8)
            let result = try GatewayProcess.runCommand("/usr/bin/openssl", [
                "x509", "-in", file, "-noout", "-nameopt", "RFC2253", "-subject", "-issuer", "-serial", "-fingerprint", "-sha1", "-startdate", "-enddate",
            ])
            XCTAssertEqual(result.status, 0, result.stderr)
            var printed: [String: String] = [:]
            for line in result.stdout.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                printed[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
            XCTAssertEqual(identity.subject, printed["subject"], "subject of #\(index)")
            XCTAssertEqual(identity.issuer, printed["issuer"], "issuer of #\(index)")
            XCTAssertEqual(identity.serialHex, printed["serial"], "serial of #\(index)")
            XCTAssertEqual(identity.sha1Fingerprint, (printed["sha1 Fingerprint"] ?? printed["SHA1 Fingerprint"])?.replacingOccurrences(of: ":", with: "").lowercased(), "fingerprint of #\(index)")
            XCTAssertEqual(identity.notBeforeText, printed["notBefore"], "notBefore of #\(index)")
            XCTAssertEqual(identity.notAfterText, printed["notAfter"], "notAfter of #\(index)")
        }
    }
}
