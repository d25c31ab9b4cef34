import GatewayCore
import GatewayTooling
import Logging
import NIOConcurrencyHelpers
import NIOCore
import X509
import XCTest

/// No client can forge or split a log line: control characters in anything logged are escaped, and a
/// ClientHello whose server name is no host name is refused before it reaches a log, a plugin or a header.
final class LogInjectionTests: GatewayTestCase {
    /// Records what the wrapped handler receives.
    private struct Capture: LogHandler {
        let events: NIOLockedValueBox<[LogEvent]>
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { events.withLockedValue { $0.append(event) } }
    }

    func testTheHandlerEscapesControlCharactersInMessageAndMetadata() throws {
        let events = NIOLockedValueBox<[LogEvent]>([])
        var logger = Logger(label: "t") { _ in LineSafeLogHandler(wrapping: Capture(events: events)) }
        logger[metadataKey: "sni"] = "a\nb"
        logger.info("line\r\nforged: yes\u{1b}[31m", metadata: [
            "detail": "CN=x\nFORGED", "list": .array(["ok", "\u{85}next"]), "map": .dictionary(["k": "\u{2028}"]), "dn": "CN=a\\,b",
        ])
        let event = try XCTUnwrap(events.withLockedValue { $0.first })
        XCTAssertEqual(event.message.description, "line\\r\\nforged: yes\\u{1b}[31m")
        XCTAssertEqual(event.metadata?["detail"], "CN=x\\nFORGED")
        XCTAssertEqual(event.metadata?["list"], .array(["ok", "\\u{85}next"]))
        XCTAssertEqual(event.metadata?["map"], .dictionary(["k": "\\u{2028}"]))
        XCTAssertEqual(event.metadata?["dn"], "CN=a\\,b", "backslashes as they were")
        XCTAssertEqual(logger[metadataKey: "sni"], "a\\nb", "handler metadata too")
    }

    func testServerNamesThatAreNoHostNamesAreRefused() {
        for good in ["a", "localhost", "a.example", "xn--bcher-kva.example", "_srv.a-b.example", "10.0.0.1", String(repeating: "a", count: 63) + ".b"] {
            XCTAssertTrue(ClientHello.isValidServerName(Array(good.utf8)), good)
        }
        for bad in ["", "a\nb", "a\rb", "a b", "a..b", ".a", "a.", "::1", "a\u{0}", "é.example", String(repeating: "a", count: 64), String(repeating: "a.", count: 127) + "a"] {
            XCTAssertFalse(ClientHello.isValidServerName(Array(bad.utf8)), bad.debugDescription)
        }
        XCTAssertEqual(ClientHello.parse(Self.clientHello(serverName: "ok\r\nFORGED")), .refused("server_name is not a valid host name"))
        var expected = ClientHello(serverName: "ok.example", cipherSuites: [0x1301])
        expected.legacyVersion = 0x0303
        expected.extensionTypes = [0]
        XCTAssertEqual(ClientHello.parse(Self.clientHello(serverName: "ok.example")), .complete(expected))
    }

    func testTheRealProcessRefusesOrEscapesHostileNames() async throws {
        // A certificate from an unknown CA whose CN carries a line break (the DN formatter escapes it, RFC 2253
        // \0A), and a ClientHello whose server name does (refused before anything logs it): no log line starts
        // with the forged text. LineSafeLogHandler, the net under both, is tested on its own above.
        let f = CertificateFactory.self
        let rogueCA = try f.makeCA(f.name(commonName: "Rogue CA"))
        let forged = try f.makeLeaf(f.name(commonName: "x\nFORGED level=critical"), issuer: rogueCA)
        try pki.write("forged.pem", forged.certificatePEM + rogueCA.certificatePEM)
        try pki.write("forged.key", forged.privateKeyPEM)
        let port = try unusedPort(), adminPort = try unusedPort()
        let configPath = pki.path("gateway.yaml")
        try """
            admin: { address: "127.0.0.1:\(adminPort)" }
            listeners:
              - name: mtls
                address: "127.0.0.1:\(port)"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                routes: [ { backend: b } ]
            backends: [ { name: b, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let gateway = try RunningGateway(config: configPath, adminPort: adminPort, logPath: pki.path("gateway.log"))
        try await gateway.waitReady()

        let refused = try await TestClient.get(port: port, tls: .init(trust: [pki.path("ca.pem")], certificateChain: pki.path("forged.pem"), key: pki.path("forged.key")), path: "/")
        XCTAssertNil(refused, "handshake refused")
        let client = try await TestClient.connect(port: port, tls: nil)
        var hello = Self.clientHello(serverName: "ok\r\nFORGED sni=1")
        try await client.send(hello.readBytes(length: hello.readableBytes)!)
        let closed = await client.waitForClose(timeout: 5)
        XCTAssertTrue(closed, "the gateway closes a ClientHello it refuses")
        let logged = await gateway.waitForLog("refusing a ClientHello")
        XCTAssertTrue(logged, gateway.log)
        let rejected = await gateway.waitForLog("TLS handshake rejected")
        XCTAssertTrue(rejected, gateway.log)
        XCTAssertEqual(gateway.terminate(), 0)
        let lines = gateway.log.split(separator: "\n")
        XCTAssertFalse(lines.contains { $0.hasPrefix("FORGED") }, gateway.log)
        XCTAssertTrue(gateway.log.contains("subject=CN=x\\0AFORGED level=critical"), "the CN is in the log, escaped (RFC 2253):\n\(gateway.log)")
    }

    /// A minimal TLS 1.3-style ClientHello record with one cipher suite and a server_name extension.
    static func clientHello(serverName: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeInteger(UInt16(0x0303))
        body.writeBytes([UInt8](repeating: 7, count: 32))
        body.writeInteger(UInt8(0))
        body.writeInteger(UInt16(2)); body.writeInteger(UInt16(0x1301))
        body.writeInteger(UInt8(1)); body.writeInteger(UInt8(0))
        var ext = ByteBuffer()
        let name = Array(serverName.utf8)
        ext.writeInteger(UInt16(0)); ext.writeInteger(UInt16(name.count + 5))
        ext.writeInteger(UInt16(name.count + 3)); ext.writeInteger(UInt8(0)); ext.writeInteger(UInt16(name.count)); ext.writeBytes(name)
        body.writeInteger(UInt16(ext.readableBytes)); body.writeBuffer(&ext)
        var record = ByteBuffer()
        record.writeInteger(UInt8(22)); record.writeInteger(UInt16(0x0301)); record.writeInteger(UInt16(body.readableBytes + 4))
        record.writeInteger(UInt8(1)); record.writeInteger(UInt8(0)); record.writeInteger(UInt16(body.readableBytes)); record.writeBuffer(&body)
        return record
    }
}
