import Foundation
import SwiftASN1
import X509

/// Where a certificate says its revocation status can be learnt: the http URLs of its CRL distribution points
/// (RFC 5280 4.2.1.13) and of its OCSP responders (authorityInfoAccess, 4.2.2.1).
///
/// swift-certificates has no type for the CRL distribution points extension, so it is read here on SwiftASN1.
/// Only what the gateway can use counts: a distribution point with a `fullName` URI and neither `reasons` (a CRL
/// partitioned by reason) nor `cRLIssuer` (an indirect CRL). Those, and URLs that are not plain http, are
/// reported as the reason the status is unknown when nothing usable is left.
package struct RevocationLocations: Sendable, Equatable {
    /// The certificate has a CRL distribution points extension.
    package var hasDistributionPoints = false
    /// Usable CRL URLs, in the certificate's order.
    package var crlURLs: [String] = []
    /// Why the distribution points named no usable URL (when `hasDistributionPoints` and `crlURLs` is empty).
    package var crlProblem: String?
    /// Usable OCSP responder URLs, in the certificate's order.
    package var ocspURLs: [String] = []
    /// Why the authorityInfoAccess named no usable OCSP URL, when it named some.
    package var ocspProblem: String?

    package static let distributionPointsOID: ASN1ObjectIdentifier = [2, 5, 29, 31]
    /// The longest URL accepted from a certificate.
    package static let maxURLLength = 2048

    package init() {}

    package init(_ certificate: Certificate) {
        if let ext = certificate.extensions.first(where: { $0.oid == Self.distributionPointsOID }) {
            hasDistributionPoints = true
            do {
                let (urls, skipped) = try Self.distributionPointURLs(ext.value)
                for url in urls {
                    if let problem = Self.problem(url: url) { crlProblem = crlProblem ?? problem } else { crlURLs.append(url) }
                }
                if crlURLs.isEmpty { crlProblem = crlProblem ?? skipped ?? "the CRL distribution points name no URL" }
            } catch {
                crlProblem = "the CRL distribution points extension is malformed: \(error)"
            }
        }
        do {
            if let access = try certificate.extensions.authorityInformationAccess {
                for description in access where description.method == .ocspServer {
                    guard case .uniformResourceIdentifier(let url) = description.location else {
                        ocspProblem = ocspProblem ?? "an OCSP responder is named by something other than a URI"
                        continue
                    }
                    if let problem = Self.problem(url: url) { ocspProblem = ocspProblem ?? problem } else { ocspURLs.append(url) }
                }
            }
        } catch {
            ocspProblem = "the authorityInfoAccess extension is malformed: \(error)"
        }
    }

    /// Why `url` cannot be fetched, or nil: only `http://host[:port]/...` is (RFC 5280 and RFC 6960 name http;
    /// https would need a TLS handshake with its own revocation question, and ldap is not spoken here).
    package static func problem(url: String) -> String? {
        guard url.utf8.count <= maxURLLength else { return "a URL of \(url.utf8.count) bytes is longer than \(maxURLLength)" }
        let shown = url.count > 80 ? String(url.prefix(80)) + "..." : url
        guard url.lowercased().hasPrefix("http://") else { return "'\(shown)' is not an http URL" }
        guard url.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }), let parsed = URL(string: url), let host = parsed.host, !host.isEmpty,
            parsed.user == nil, parsed.password == nil
        else { return "'\(shown)' is not a valid http URL" }
        return nil
    }

    /// The fullName URIs of the distribution points, and why any point was skipped.
    private static func distributionPointURLs(_ value: ArraySlice<UInt8>) throws -> ([String], String?) {
        let root = try DER.parse(value)
        guard root.identifier == .sequence, case .constructed(let points) = root.content else {
            throw CRLError("CRLDistributionPoints is not a SEQUENCE")
        }
        var urls: [String] = []
        var skipped: String?
        for point in points {
            guard point.identifier == .sequence, case .constructed(let fields) = point.content else {
                throw CRLError("DistributionPoint is not a SEQUENCE")
            }
            var names: [String] = []
            var unusable: String?
            for field in fields {
                switch (field.identifier.tagClass, field.identifier.tagNumber) {
                case (.contextSpecific, 0):
                    // distributionPoint [0] DistributionPointName (a CHOICE, so explicitly tagged).
                    guard case .constructed(let inner) = field.content, let name = inner.first(where: { _ in true }) else {
                        throw CRLError("distributionPoint is empty")
                    }
                    if name.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific), case .constructed(let generalNames) = name.content {
                        for generalName in generalNames {
                            // uniformResourceIdentifier [6] IMPLICIT IA5String
                            if generalName.identifier == ASN1Identifier(tagWithNumber: 6, tagClass: .contextSpecific), case .primitive(let bytes) = generalName.content {
                                names.append(String(decoding: bytes, as: UTF8.self))
                            }
                        }
                        if names.isEmpty { unusable = "a distribution point names no URI" }
                    } else {
                        unusable = "a distribution point is named relative to its CRL issuer (not supported)"
                    }
                case (.contextSpecific, 1):
                    unusable = "a distribution point covers only some revocation reasons (partitioned CRLs are not supported)"
                case (.contextSpecific, 2):
                    unusable = "a distribution point names a cRLIssuer (indirect CRLs are not supported)"
                default:
                    throw CRLError("unexpected field in DistributionPoint")
                }
            }
            if let unusable {
                skipped = skipped ?? unusable
            } else {
                urls.append(contentsOf: names)
            }
        }
        return (urls, skipped)
    }
}
