/// Why the revocation status of a certificate could not be learnt online. `reason` is stable (metric labels and
/// the detail of a `revocation_unavailable` refusal); `detail` names the URL or certificate concerned.
package struct RevocationFailure: Error, Sendable, CustomStringConvertible {
    package var reason: String
    package var detail: String

    package init(_ reason: String, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    package var description: String { "\(reason): \(detail)" }

    /// The certificate names no usable URL (none, or only ldap, https, partitioned or indirect CRLs).
    package static let noURL = "no_url"
    package static let connect = "connect_failed"
    package static let timeout = "timeout"
    package static let httpStatus = "http_status"
    package static let tooLarge = "too_large"
    package static let malformed = "malformed"
    /// A CRL past its nextUpdate, or an OCSP answer past its nextUpdate.
    package static let stale = "stale"
    /// A CRL whose issuer is not the issuer of the certificate it was fetched for.
    package static let wrongIssuer = "wrong_issuer"
    package static let badSignature = "bad_signature"
    /// The responder answered, but with an error status or "unknown" for the certificate.
    package static let responderError = "responder_error"
    package static let unknownStatus = "unknown_status"
}
