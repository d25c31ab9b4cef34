import NIOSSL

/// The admin listener's protection and console settings, compiled from `admin`: the bearer token (from
/// `token_file`) and the TLS context (from `tls`, requiring a client certificate with `client_ca`).
package struct AdminAccess: Sendable {
    package var token: [UInt8]?
    package var tls: NIOSSLContext?
    package var mutualTLS: Bool
    package var console: ConsoleConfig

    /// Whether `header` (an `Authorization` value) carries the token; compared in constant time.
    package func authorizes(_ header: String?) -> Bool {
        guard let token else { return true }
        guard let header, header.count > 7, header.prefix(7).lowercased() == "bearer " else { return false }
        let given = Array(header.utf8.dropFirst(7))
        guard given.count == token.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<token.count { difference |= given[i] ^ token[i] }
        return difference == 0
    }
}
