import Foundation
import GatewayCore
import GatewayTooling
import X509

/// A throw-away PKI written to a temporary directory: CAs, server certificates for SNI tests, and one client
/// certificate per verification case.
final class TestPKI {
    let directory: String
    let rootCA: IssuedCertificate
    let intermediateCA: IssuedCertificate
    let revokedIntermediateCA: IssuedCertificate
    let otherCA: IssuedCertificate
    /// Chain files for each client, leaf first. Keys in `<name>.key`.
    private(set) var clients: [String: [IssuedCertificate]] = [:]

    static let day: TimeInterval = 86400

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let f = CertificateFactory.self
        rootCA = try f.makeCA(f.name(commonName: "Test Root CA", organization: "Test"))
        intermediateCA = try f.makeCA(f.name(commonName: "Test Intermediate CA", organization: "Test"), issuer: rootCA)
        revokedIntermediateCA = try f.makeCA(f.name(commonName: "Revoked Intermediate CA", organization: "Test"), issuer: rootCA)
        otherCA = try f.makeCA(f.name(commonName: "Other CA", organization: "Elsewhere"))

        try write("ca.pem", rootCA.certificatePEM)
        try write("other-root.pem", otherCA.certificatePEM)
        try write("ca-bundle.pem", rootCA.certificatePEM + otherCA.certificatePEM)

        // Server certificates: default (localhost), exact (api.test), wildcard (*.wild.test).
        for (name, dns) in [("server", ["localhost"]), ("server-api", ["api.test"]), ("server-wild", ["*.wild.test"])] {
            let cert = try f.makeLeaf(f.name(commonName: dns[0]), issuer: rootCA, dnsNames: dns, ipAddresses: ["127.0.0.1"], usages: [.serverAuth])
            try write("\(name).pem", cert.certificatePEM)
            try write("\(name).key", cert.privateKeyPEM)
        }

        let now = Date()
        try addClient("valid", try f.makeLeaf(f.name(commonName: "valid-client", organization: "Test", organizationalUnit: "ops"), issuer: rootCA,
                                              dnsNames: ["client.test"], uris: ["spiffe://test/ns/ops/sa/valid"], emails: ["valid@test"]))
        try addClient("via-intermediate", try f.makeLeaf(f.name(commonName: "intermediate-client"), issuer: intermediateCA), chain: [intermediateCA])
        try addClient("expired", try f.makeLeaf(f.name(commonName: "expired-client"), issuer: rootCA,
                                                notBefore: now - 30 * Self.day, notAfter: now - Self.day))
        try addClient("not-yet-valid", try f.makeLeaf(f.name(commonName: "future-client"), issuer: rootCA,
                                                      notBefore: now + Self.day, notAfter: now + 30 * Self.day))
        try addClient("other-ca", try f.makeLeaf(f.name(commonName: "other-client"), issuer: otherCA))
        try addClient("self-signed", try f.makeLeaf(f.name(commonName: "self-signed-client"), issuer: nil))
        try addClient("revoked", try f.makeLeaf(f.name(commonName: "revoked-client"), issuer: rootCA))
        try addClient("revoked-intermediate", try f.makeLeaf(f.name(commonName: "client-of-revoked-ca"), issuer: revokedIntermediateCA),
                      chain: [revokedIntermediateCA])
        try addClient("server-auth-only", try f.makeLeaf(f.name(commonName: "server-eku-client"), issuer: rootCA, usages: [.serverAuth]))
        // root -> i1 -> i2 -> i3 -> leaf: four CA certificates above the leaf.
        let i1 = try f.makeCA(f.name(commonName: "Deep 1"), issuer: rootCA)
        let i2 = try f.makeCA(f.name(commonName: "Deep 2"), issuer: i1)
        let i3 = try f.makeCA(f.name(commonName: "Deep 3"), issuer: i2)
        try addClient("too-deep", try f.makeLeaf(f.name(commonName: "deep-client"), issuer: i3), chain: [i3, i2, i1])

        let crl = try CRLBuilder.make(issuer: rootCA, revoked: [
            clients["revoked"]![0].certificate.serialNumber, revokedIntermediateCA.certificate.serialNumber,
        ])
        try write("root.crl.pem", CRLBuilder.pem(crl))
        try Data(crl).write(to: URL(fileURLWithPath: path("root.crl.der")))
    }

    func addClient(_ name: String, _ leaf: IssuedCertificate, chain: [IssuedCertificate] = []) throws {
        clients[name] = [leaf] + chain
        try write("\(name).pem", ([leaf] + chain).map(\.certificatePEM).joined())
        try write("\(name).key", leaf.privateKeyPEM)
    }

    func path(_ file: String) -> String { "\(directory)/\(file)" }

    /// TLS options that trust the test root and present `client`'s chain (none when nil).
    func clientTLS(_ client: String?) -> TestClient.TLSOptions {
        var options = TestClient.TLSOptions(trust: [path("ca.pem")])
        if let client {
            options.certificateChain = path("\(client).pem")
            options.key = path("\(client).key")
        }
        return options
    }

    /// Private keys and passphrase files are written 0600, as the gateway requires of what it loads.
    func write(_ file: String, _ text: String) throws {
        try text.write(toFile: path(file), atomically: true, encoding: .utf8)
        if file.hasSuffix(".key") || file.hasSuffix(".pass") {
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path(file))
        }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
