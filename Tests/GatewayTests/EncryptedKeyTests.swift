import Foundation
import XCTest

/// Encrypted private keys with `key_password_file` (as nginx's ssl_password_file).
final class EncryptedKeyTests: GatewayTestCase {
    private func config(key: String, password: String?) -> String {
        """
        listeners:
          - name: tls
            address: "127.0.0.1:0"
            tls:
              certificates: [ { cert: server.pem, key: \(key)\(password.map { ", key_password_file: \($0)" } ?? "") } ]
            routes: [ { backend: app } ]
        backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
        """
    }

    func testAnEncryptedKeyServesWithItsPassphraseAndIsRefusedWithoutIt() async throws {
        let encrypt = try GatewayProcess.runCommand("/usr/bin/openssl", [
            "pkey", "-in", pki.path("server.key"), "-aes256", "-passout", "pass:s3cret phrase", "-out", pki.path("server-enc.key"),
        ])
        XCTAssertEqual(encrypt.status, 0, encrypt.stderr)
        try "s3cret phrase\n".write(toFile: pki.path("key.pass"), atomically: true, encoding: .utf8)
        try "wrong\n".write(toFile: pki.path("wrong.pass"), atomically: true, encoding: .utf8)

        gateway = try await GatewayHarness(yaml: config(key: "server-enc.key", password: "key.pass"), in: pki.directory)
        let response = try await TestClient.get(port: gateway.port("tls"), tls: .init(trust: [pki.path("ca.pem")]), path: "/")
        XCTAssertEqual(response?.status, 200, "the decrypted key serves")

        for (password, message) in [
            (nil as String?, "listeners[0].tls.certificates[0].key: private key 'server-enc.key' is encrypted: set key_password_file to a file holding its passphrase"),
            ("wrong.pass", "listeners[0].tls.certificates[0].key: cannot decrypt private key 'server-enc.key' with the passphrase in 'wrong.pass' (wrong passphrase?)"),
            ("missing.pass", "listeners[0].tls.certificates[0].key_password_file: cannot read 'missing.pass'"),
        ] {
            let file = pki.path("enc-\(password ?? "none").yaml")
            try config(key: "server-enc.key", password: password).write(toFile: file, atomically: true, encoding: .utf8)
            let result = try GatewayProcess.run(["validate", "--config", file])
            XCTAssertEqual(result.status, 1, password ?? "none")
            XCTAssertTrue(result.stderr.contains(message), "\(password ?? "none"): \(result.stderr)")
        }
    }
}
