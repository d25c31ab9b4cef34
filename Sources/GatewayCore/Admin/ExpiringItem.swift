import Foundation

/// A certificate or CRL the running configuration uses, and when it stops being usable: the console's expiry
/// view. Collected by `RuntimeCompiler` as it loads each file.
package struct ExpiringItem: Sendable {
    package enum Kind: String, Sendable {
        case serverCertificate = "server_certificate"
        case clientCA = "client_ca"
        /// A configured CRL file; `expires` is its nextUpdate.
        case crl
        /// A CRL fetched from a distribution point (`tls.revocation`); `file` is its URL.
        case fetchedCRL = "fetched_crl"
        /// A CA of `backends[].tls.ca`: what backends' certificates are verified against.
        case backendCA = "backend_ca"
        /// The certificate the gateway presents to a backend (`backends[].tls.cert`).
        case backendClientCertificate = "backend_client_certificate"
    }

    package var kind: Kind
    /// The certificate's subject, or the CRL's issuer.
    package var subject: String
    package var file: String
    /// Where the configuration names it (`listeners[0].tls.client_ca[0]`).
    package var keyPath: String
    package var expires: Date
}
