import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import SwiftASN1
import X509
import XCTest

/// Name constraints are enforced whether the extension is critical or not. Before: a CA with a
/// non-critical nameConstraints extension was not enforced (a leaf outside its permitted subtrees was
/// accepted and its SANs reached the backend as identity), and a critical one refused every client.
final class NameConstraintsTests: XCTestCase {
    private func constrainedCA(critical: Bool, _ constraints: NameConstraints, name: String = "Constrained CA") throws -> IssuedCertificate {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            CountryName("US")
            OrganizationName("Corp")
            CommonName(name)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            if critical { Critical(constraints) } else { constraints }
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(3600),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256, extensions: extensions,
            issuerPrivateKey: .init(key)
        )
        return IssuedCertificate(certificate: certificate, privateKey: key)
    }

    private func verify(_ ca: IssuedCertificate, dns: [String] = [], uris: [String] = [], emails: [String] = [], ips: [String] = [], subject: DistinguishedName? = nil) throws -> ClientCertificateVerifier.Outcome {
        let f = CertificateFactory.self
        let leaf = try f.makeLeaf(subject ?? f.name(commonName: "client"), issuer: ca, dnsNames: dns, ipAddresses: ips, uris: uris, emails: emails)
        let verifier = ClientCertificateVerifier(anchors: [ca.certificate], crls: [], maxDepth: 4)
        return verifier.verify(der: [try leaf.certificate.serializeAsPEM().derBytes])
    }

    private func rejection(_ outcome: ClientCertificateVerifier.Outcome) -> HandshakeRejection? {
        if case .rejected(let rejection, _) = outcome { return rejection }
        return nil
    }

    func testPermittedSubtreesAreEnforcedCriticalOrNot() throws {
        for critical in [false, true] {
            let ca = try constrainedCA(critical: critical, NameConstraints(permittedDNSDomains: ["corp.example"], permittedURIDomains: ["corp.example"]))
            let inside = try verify(ca, dns: ["api.corp.example"], uris: ["spiffe://corp.example/ns/ops/sa/a"])
            XCTAssertNil(rejection(inside), "critical: \(critical): a client inside the subtrees is accepted")
            let dnsOutside = try XCTUnwrap(rejection(try verify(ca, dns: ["corp.example.evil"])), "critical: \(critical)")
            XCTAssertEqual(dnsOutside.code, .nameConstraints)
            XCTAssertTrue(dnsOutside.detail.hasPrefix("DNS name 'corp.example.evil' is outside the permitted subtrees in 'CN=client,C=US', by the name constraints of 'CN=Constrained CA,O=Corp,C=US'"), dnsOutside.detail)
            let spiffeOutside = try XCTUnwrap(rejection(try verify(ca, uris: ["spiffe://other.example/ns/admin"])))
            XCTAssertEqual(spiffeOutside.code, .nameConstraints)
            XCTAssertTrue(spiffeOutside.detail.hasPrefix("URI 'spiffe://other.example/ns/admin' is outside"), spiffeOutside.detail)
            // A URI constraint without a leading dot names one host (another SPIFFE trust domain is outside),
            // and a URI whose host cannot be placed (userinfo, IP literal) is outside too.
            for uri in ["spiffe://evil.corp.example/ns/a", "spiffe://x@corp.example/ns/a", "https://10.0.0.1/x"] {
                XCTAssertEqual(rejection(try verify(ca, uris: [uri]))?.code, .nameConstraints, uri)
            }
            XCTAssertNil(rejection(try verify(ca, dns: ["db.corp.example."])), "a trailing dot is the same name")
        }
    }

    func testExcludedSubtreesEmailIPAndDirectoryNames() throws {
        let ipRange = ASN1OctetString(contentBytes: [10, 0, 0, 0, 255, 0, 0, 0])
        let ca = try constrainedCA(critical: false, NameConstraints(
            excludedDNSDomains: [".internal.example"], permittedIPRanges: [ipRange], permittedEmailAddresses: ["corp.example"]
        ))
        XCTAssertEqual(rejection(try verify(ca, dns: ["db.internal.example"]))?.code, .nameConstraints)
        XCTAssertEqual(rejection(try verify(ca, dns: ["db.internal.example."]))?.code, .nameConstraints, "a trailing dot does not escape")
        XCTAssertNil(rejection(try verify(ca, dns: ["internal.example"])), "a leading dot excludes only names below it")
        XCTAssertNil(rejection(try verify(ca, emails: ["ops@corp.example"], ips: ["10.1.2.3"])))
        XCTAssertEqual(rejection(try verify(ca, ips: ["192.168.0.1"]))?.code, .nameConstraints)
        XCTAssertEqual(rejection(try verify(ca, emails: ["ops@evil.example"]))?.code, .nameConstraints)

        var constraints = NameConstraints()
        constraints.permittedSubtrees = [.directoryName(try DistinguishedName { CountryName("US"); OrganizationName("Corp") })]
        let dnCA = try constrainedCA(critical: true, constraints)
        let f = CertificateFactory.self
        XCTAssertNil(rejection(try verify(dnCA, subject: try DistinguishedName { CountryName("US"); OrganizationName("Corp"); CommonName("a") })))
        XCTAssertEqual(rejection(try verify(dnCA, subject: f.name(commonName: "b", organization: "Other")))?.code, .nameConstraints)
    }

    func testDomainMatching() {
        XCTAssertTrue(NameConstraintsCheck.domain("A.Corp.Example", within: "corp.example"))
        XCTAssertTrue(NameConstraintsCheck.domain("corp.example", within: "corp.example"))
        XCTAssertFalse(NameConstraintsCheck.domain("evilcorp.example", within: "corp.example"))
        XCTAssertFalse(NameConstraintsCheck.domain("corp.example", within: ".corp.example"))
        XCTAssertTrue(NameConstraintsCheck.domain("x.corp.example", within: ".corp.example"))
        XCTAssertTrue(NameConstraintsCheck.domain("anything", within: ""))
    }
}
