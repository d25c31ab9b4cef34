import Foundation
import XCTest

/// Encrypted private keys with `key_password_file` (as nginx's ssl_password_file), and the permissions the
/// gateway requires of key and passphrase files.
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
        try pki.write("key.pass", "s3cret phrase\n")
        try pki.write("wrong.pass", "wrong\n")

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
    /// A private key or passphrase file every user can read is refused with its key path, file and mode (as
    /// OpenSSH refuses an unprotected key); group access is allowed (Debian's ssl-cert group).
    func testKeyAndPassphraseFilesOthersCanReadAreRefused() throws {
        let encrypt = try GatewayProcess.runCommand("/usr/bin/openssl", [
            "pkey", "-in", pki.path("server.key"), "-aes256", "-passout", "pass:s3cret phrase", "-out", pki.path("server-enc.key"),
        ])
        XCTAssertEqual(encrypt.status, 0, encrypt.stderr)
        try pki.write("key.pass", "s3cret phrase\n")
        func validate(key: String, password: String? = nil) throws -> GatewayProcess.Result {
            let file = pki.path("perm-\(UUID().uuidString).yaml")
            try config(key: key, password: password).write(toFile: file, atomically: true, encoding: .utf8)
            return try GatewayProcess.run(["validate", "--config", file])
        }
        func chmod(_ file: String, _ mode: Int) throws {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: pki.path(file))
        }
        XCTAssertEqual(try validate(key: "server.key").status, 0, "0600 is fine")
        try chmod("server.key", 0o640)
        XCTAssertEqual(try validate(key: "server.key").status, 0, "group-readable is fine")
        try chmod("server.key", 0o644)
        let open = try validate(key: "server.key")
        XCTAssertEqual(open.status, 1)
        XCTAssertTrue(open.stderr.contains("listeners[0].tls.certificates[0].key: private key 'server.key' can be read by every user of this machine (mode 644): make it private (chmod o-rwx)"), open.stderr)
        try chmod("key.pass", 0o604)
        let passphrase = try validate(key: "server-enc.key", password: "key.pass")
        XCTAssertEqual(passphrase.status, 1)
        XCTAssertTrue(passphrase.stderr.contains("listeners[0].tls.certificates[0].key_password_file: passphrase file 'key.pass' can be read by every user of this machine (mode 604)"), passphrase.stderr)
    }
}
