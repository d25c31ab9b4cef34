import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// Real clients: curl with and without a client certificate, and `gateway demo` driven by its printed command.
final class RealClientTests: XCTestCase {
    func testCurlWithAndWithoutClientCertificate() async throws {
        let pki = try TestPKI()
        let backend = TestBackend()
        try await backend.start()
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
        let url = "https://localhost:\(gateway.port("mtls"))/curl"
        let ok = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"), url,
        ])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(ok.stdout, "ok backend")
        XCTAssertEqual(backend.requests.last?.head.uri, "/curl")

        let refused = try GatewayProcess.runCommand("/usr/bin/curl", ["-sS", "--cacert", pki.path("ca.pem"), url])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("alert"), refused.stderr)
        XCTAssertEqual(backend.requests.count, 1)

        let wrongCA = try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--cert", pki.path("other-ca.pem"), "--key", pki.path("other-ca.key"), "--cacert", pki.path("ca.pem"), url,
        ])
        XCTAssertNotEqual(wrongCA.status, 0)
        await gateway.stop()
        await backend.stop()
    }

    func testOpenSSLClientSeesCertificateRequestWithCANames() async throws {
        let pki = try TestPKI()
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: [ca.pem]
                routes: [ { backend: app } ]
            backends: [ { name: app, servers: [ { address: "127.0.0.1:1" } ] } ]
            """, in: pki.directory)
        let result = try GatewayProcess.runCommand("/bin/sh", ["-c",
            "echo | openssl s_client -connect 127.0.0.1:\(gateway.port("mtls")) -servername localhost -tls1_2 -CAfile \(pki.path("ca.pem")) 2>&1"])
        XCTAssertTrue(result.stdout.contains("Acceptable client certificate CA names"), result.stdout)
        XCTAssertTrue(result.stdout.contains("CN = Test Root CA"), result.stdout)
        await gateway.stop()
    }

    func testDemoPrintsACurlCommandThatWorks() throws {
        // As the unprivileged user a new user might well be: the demo once logged "listening" as `nobody` and
        // then failed every handshake.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gw-demo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Unprivileged.handOver(directory)
        let process = Process()
        let (executable, arguments) = Unprivileged.command(try Unprivileged.gatewayExecutable, ["demo", "--port", "0", "--dir", directory])
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { process.interrupt() }
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }
        var printed = ""
        let deadline = Date().addingTimeInterval(60)
        while !printed.contains("Press Ctrl-C"), Date() < deadline, process.isRunning {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { usleep(50_000) } else { printed += String(decoding: chunk, as: UTF8.self) }
        }
        let command = try XCTUnwrap(printed.split(separator: "\n").first { $0.hasPrefix("curl --cert") }, printed)
        let result = try GatewayProcess.runCommand("/bin/sh", ["-c", "\(command) -sS"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("backend received: GET /hello HTTP/1.1"), result.stdout)
        XCTAssertTrue(result.stdout.contains("x-forwarded-proto: https"), result.stdout)
        XCTAssertTrue(result.stdout.contains("x-forwarded-clientcert-subjectdn: CN=demo-client,OU=ops,O=Gateway Demo,C=US"), result.stdout)
        XCTAssertTrue(result.stdout.contains("x-forwarded-clientcert-clientverify: SUCCESS"), result.stdout)
        XCTAssertTrue(result.stdout.contains("x-forwarded-clientcert-spiffe-id: spiffe://demo/ns/ops/sa/client"), result.stdout)
        process.interrupt()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "SIGINT must shut the demo down cleanly")
        let audit = try String(contentsOfFile: "\(directory)/audit.log", encoding: .utf8)
        XCTAssertTrue(audit.contains("\"subject\":\"CN=demo-client,OU=ops,O=Gateway Demo,C=US\""), audit)
    }
}
