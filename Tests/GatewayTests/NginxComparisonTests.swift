import Crypto
import Foundation
import GatewayCore
import GatewayTooling
import NIOPosix
import SwiftASN1
import X509
import XCTest

/// ClientCertHeaders' values against nginx's $ssl_client_* variables for the same client certificates, both
/// driven by the same curl. nginx comes from Debian's package (scripts/test installs it).
final class NginxComparisonTests: XCTestCase {
    static let nginx = "/usr/sbin/nginx"

    private func name(_ rdns: [[(ASN1ObjectIdentifier, String)]]) -> DistinguishedName {
        DistinguishedName(rdns.map { RelativeDistinguishedName($0.map { RelativeDistinguishedName.Attribute(type: $0.0, utf8String: $0.1) }) })
    }

    func testHeaderValuesMatchNginxVariables() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.nginx) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { return XCTFail("nginx is missing in CI: scripts/test must install it") }
            throw XCTSkip("nginx is not installed (apt-get install nginx); CI installs it and runs this test")
        }
        let pki = try TestPKI()
        let type = ASN1ObjectIdentifier.RDNAttributeType.self
        let email: ASN1ObjectIdentifier = [1, 2, 840, 113549, 1, 9, 1]
        let corpus: [(String, DistinguishedName, [UInt8])] = [
            ("plain", name([[(type.commonName, "plain")]]), [0x01]),
            ("multi", name([[(type.countryName, "US")], [(type.organizationName, "Org, Inc.")], [(type.organizationalUnitName, "a+b"), (type.commonName, "multi")]]), [0x00, 0x00, 0x7F]),
            ("quotes", name([[(type.commonName, "quote \"here\" and \\ back;slash<>")]]), [0x80, 0x01, 0x02]),
            ("spaces", name([[(type.commonName, " leading and trailing ")]]), [0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0x01]),
            ("hash", name([[(type.commonName, "#hash first")]]), [0x00, 0x80]),
            ("utf8", name([[(type.organizationName, "東京大学")], [(type.commonName, "Zoë Ångström")]]), [0x12, 0x34]),
            ("email", name([[(type.commonName, "with email")], [(email, "someone@example.org")]]), [0x05]),
        ]
        for (file, subject, serial) in corpus {
            let key = P256.Signing.PrivateKey()
            let cert = try Certificate(
                version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial), publicKey: .init(key.publicKey),
                notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86400 * 30),
                issuer: pki.rootCA.name, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions { try ExtendedKeyUsage([.clientAuth]) },
                issuerPrivateKey: .init(pki.rootCA.privateKey)
            )
            try pki.addClient(file, IssuedCertificate(certificate: cert, privateKey: key))
        }

        // nginx, returning its variables as the body.
        let nginxPort = try unusedPort()
        let prefix = pki.path("nginx")
        try FileManager.default.createDirectory(atPath: prefix, withIntermediateDirectories: true)
        let variables = ["ssl_client_s_dn", "ssl_client_i_dn", "ssl_client_serial", "ssl_client_fingerprint", "ssl_client_verify",
                         "ssl_client_v_start", "ssl_client_v_end", "ssl_client_escaped_cert"]
        try """
            daemon off; master_process off; worker_processes 1; pid \(prefix)/nginx.pid; error_log \(prefix)/error.log;
            events { worker_connections 64; }
            http {
              access_log off;
              client_body_temp_path \(prefix); proxy_temp_path \(prefix); fastcgi_temp_path \(prefix); uwsgi_temp_path \(prefix); scgi_temp_path \(prefix);
              server {
                listen 127.0.0.1:\(nginxPort) ssl;
                ssl_certificate \(pki.path("server.pem")); ssl_certificate_key \(pki.path("server.key"));
                ssl_client_certificate \(pki.path("ca.pem")); ssl_verify_client on; ssl_verify_depth 3;
                location / { return 200 "\(variables.map { "\($0)=$\($0)\\n" }.joined())"; }
              }
            }
            """.write(toFile: "\(prefix)/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: Self.nginx)
        nginx.arguments = ["-p", prefix, "-c", "\(prefix)/nginx.conf"]
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        // SIGKILL: signal dispositions the test process ignores are inherited, and nginx would ignore SIGTERM.
        defer {
            kill(nginx.processIdentifier, SIGKILL)
            nginx.waitUntilExit()
        }

        // The gateway, with every ELB field on, in front of the echo backend that prints what it received.
        let echo = EchoBackend(group: MultiThreadedEventLoopGroup.singleton)
        let echoPort = try await echo.start().port!
        let library = Bundle.main.bundleURL.appendingPathComponent("libClientCertHeaders.so").path
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins: [ { library: \(library), config: { fields: { start: true } } } ]
                routes: [ { backend: echo } ]
            backends: [ { name: echo, servers: [ { address: "127.0.0.1:\(echoPort)" } ] } ]
            """, in: pki.directory)

        func curl(_ port: Int, _ client: String) throws -> [String: String] {
            var result = try GatewayProcess.runCommand("/usr/bin/curl", [
                "-sS", "--retry", "5", "--retry-connrefused", "--retry-delay", "1",
                "--cert", pki.path("\(client).pem"), "--key", pki.path("\(client).key"), "--cacert", pki.path("ca.pem"),
                "https://localhost:\(port)/",
            ])
            XCTAssertEqual(result.status, 0, "\(client): \(result.stderr)")
            result.stdout = result.stdout.replacingOccurrences(of: "\r", with: "")
            var values: [String: String] = [:]
            for line in result.stdout.split(separator: "\n") {
                if let eq = line.firstIndex(of: "="), !line.contains(": ") || line.hasPrefix("ssl_") {
                    values[String(line[..<eq])] = String(line[line.index(after: eq)...])
                } else if let colon = line.range(of: ": ") {
                    values[String(line[..<colon.lowerBound])] = String(line[colon.upperBound...])
                }
            }
            return values
        }

        let pairs = [
            ("ssl_client_s_dn", "x-forwarded-clientcert-subjectdn"), ("ssl_client_i_dn", "x-forwarded-clientcert-issuerdn"),
            ("ssl_client_serial", "x-forwarded-clientcert-serialnumber"), ("ssl_client_fingerprint", "x-forwarded-clientcert-fingerprint"),
            ("ssl_client_verify", "x-forwarded-clientcert-clientverify"), ("ssl_client_v_start", "x-forwarded-clientcert-start"),
            ("ssl_client_v_end", "x-forwarded-clientcert-end"), ("ssl_client_escaped_cert", "x-forwarded-clientcert"),
        ]
        for client in ["valid", "via-intermediate"] + corpus.map(\.0) {
            let fromNginx = try curl(nginxPort, client)
            let fromGateway = try curl(gateway.port("mtls"), client)
            for (variable, header) in pairs {
                XCTAssertNotNil(fromNginx[variable], "\(client): nginx gave no \(variable): \(fromNginx)")
                XCTAssertEqual(fromGateway[header], fromNginx[variable], "\(client): \(header) differs from nginx's $\(variable)")
            }
        }
        await gateway.stop()
        await echo.stop()
    }
}
