import Foundation
import GatewayCore
import XCTest

/// `POST /connections/close`: the open connections of one client certificate are closed on demand (a key
/// reported stolen), the others stay.
final class CloseConnectionsTests: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        gateway = try await GatewayHarness(yaml: mtlsConfig(adminPort: 0, plugins: []), in: pki.directory)
    }

    /// A keep-alive connection of `client` that has served one request.
    private func openConnection(_ client: String) async throws -> TestClient {
        let connection = try await TestClient.connect(port: gateway.port("mtls"), tls: tls(client))
        try await connection.send("GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let response = await connection.readResponse()
        XCTAssertEqual(response?.status, 200)
        return connection
    }

    private func admin(_ method: String, _ target: String) async throws -> TestClient.Response? {
        let connection = try await TestClient.connect(port: gateway.adminPort, tls: nil)
        defer { Task { await connection.close() } }
        try await connection.send("\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        return await connection.readResponse()
    }

    private func openssl(_ arguments: [String]) throws -> String {
        let output = try GatewayProcess.runCommand("/usr/bin/openssl", arguments).stdout
        return String(output.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testTheConnectionsOfOneCertificateAreClosedAndNoOthers() async throws {
        let stolen = [try await openConnection("valid"), try await openConnection("valid")]
        let other = try await openConnection("via-intermediate")
        defer { Task { await other.close() } }
        // The fingerprint as openssl prints it (colons, upper case).
        let fingerprint = try openssl(["x509", "-in", pki.path("valid.pem"), "-noout", "-fingerprint", "-sha256"])
        let response = try await admin("POST", "/connections/close?sha256=\(fingerprint)")
        XCTAssertEqual(response?.status, 200)
        let body = try XCTUnwrap(response.flatMap { try JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] })
        XCTAssertEqual(body["closed"] as? Int, 2)
        for connection in stolen {
            let closed = await connection.waitForClose(timeout: 5)
            XCTAssertTrue(closed)
        }
        XCTAssertFalse(other.isClosed)
        try await other.send("GET /still HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let still = await other.readResponse()
        XCTAssertEqual(still?.status, 200)
        let logged = await gateway.logs.waitFor { $0.message.contains("closed the connections of a client certificate on request") }
        XCTAssertEqual(logged?.metadata["closed"], "2")

        // By serial (openssl's upper-case hex).
        let serial = try openssl(["x509", "-in", pki.path("via-intermediate.pem"), "-noout", "-serial"])
        let bySerial = try await admin("POST", "/connections/close?serial=\(serial)")
        XCTAssertTrue(bySerial?.text.contains("\"closed\" : 1") ?? false, bySerial?.text ?? "")
        let otherClosed = await other.waitForClose(timeout: 5)
        XCTAssertTrue(otherClosed)
    }

    func testBadRequestsAreRefused() async throws {
        let wrongMethod = try await admin("GET", "/connections/close?sha256=00")
        XCTAssertEqual(wrongMethod?.status, 405)
        for query in ["", "?sha256=xyz", "?sha256=abcd", "?fingerprint=00", "?sha256=00&serial=00"] {
            let refused = try await admin("POST", "/connections/close\(query)")
            XCTAssertEqual(refused?.status, 400, query)
        }
    }
}
