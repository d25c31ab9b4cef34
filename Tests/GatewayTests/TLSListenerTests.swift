import GatewayCore
import GatewayTooling
import NIOCore
import NIOSSL
import X509
import XCTest

/// SNI certificate selection, minimum TLS version, ALPN and one-way TLS.
final class TLSListenerTests: XCTestCase {
    var pki: TestPKI!
    var backend: TestBackend!
    var gateway: GatewayHarness!

    override func setUp() async throws {
        pki = try TestPKI()
        backend = TestBackend()
        try await backend.start()
        gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: sni
                address: "127.0.0.1:0"
                tls:
                  certificates:
                    - { cert: server.pem, key: server.key }
                    - { cert: server-api.pem, key: server-api.key }
                    - { cert: server-wild.pem, key: server-wild.key }
                routes: [ { backend: app } ]
              - name: tls13
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  min_version: tls1.3
                routes: [ { backend: app } ]
              - name: v6
                address: "[::1]:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                routes: [ { backend: app } ]
            backends:
              - name: app
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
    }

    override func tearDown() async throws {
        await gateway.stop()
        await backend.stop()
    }

    /// The common name of the certificate the server presented for `serverName`.
    private func servedCertificate(serverName: String?) async throws -> String? {
        let client = try await TestClient.connect(port: gateway.port("sni"), tls: .init(trust: [pki.path("ca.pem")], serverName: serverName))
        defer { Task { await client.close() } }
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = await client.readResponse()
        let channel = client.channel
        let peer = try await channel.eventLoop.submit { try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate }.get()
        guard let der = try peer?.toDERBytes() else { return nil }
        let certificate = try Certificate(derEncoded: der)
        return try certificate.extensions.subjectAlternativeNames?.compactMap { name -> String? in
            if case .dnsName(let dns) = name { return dns }
            return nil
        }.first
    }

    func testSNISelectsExactWildcardAndDefaultCertificates() async throws {
        let exact = try await servedCertificate(serverName: "api.test")
        XCTAssertEqual(exact, "api.test")
        let wildcard = try await servedCertificate(serverName: "x.wild.test")
        XCTAssertEqual(wildcard, "*.wild.test")
        let uppercase = try await servedCertificate(serverName: "API.TEST")
        XCTAssertEqual(uppercase, "api.test")
        let tooDeep = try await servedCertificate(serverName: "a.b.wild.test")
        XCTAssertEqual(tooDeep, "localhost", "a wildcard covers one label only")
        let unknown = try await servedCertificate(serverName: "unknown.example")
        XCTAssertEqual(unknown, "localhost")
        let none = try await servedCertificate(serverName: nil)
        XCTAssertEqual(none, "localhost")
    }

    func testTLS11IsRefused() async throws {
        var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
        options.maximumVersion = .tlsv11
        options.minimumVersion = .tlsv1
        let response = try await TestClient.get(port: gateway.port("sni"), tls: options)
        XCTAssertNil(response)
        let logged = await gateway.logs.waitFor { $0.message == "TLS handshake rejected" && $0.metadata["reason"] == "protocol_version" }
        XCTAssertNotNil(logged, "\(gateway.logs.all.map { "\($0.message) \($0.metadata)" })")
        XCTAssertTrue(backend.requests.isEmpty)
    }

    func testMinimumVersionTLS13RefusesTLS12() async throws {
        var options = TestClient.TLSOptions(trust: [pki.path("ca.pem")])
        options.maximumVersion = .tlsv12
        let refused = try await TestClient.get(port: gateway.port("tls13"), tls: options)
        XCTAssertNil(refused)
        let accepted = try await TestClient.get(port: gateway.port("tls13"), tls: .init(trust: [pki.path("ca.pem")]))
        XCTAssertEqual(accepted?.status, 200)
    }

    func testOneWayTLSAndIPv6() async throws {
        let response = try await TestClient.get(port: gateway.port("sni"), tls: .init(trust: [pki.path("ca.pem")]))
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(backend.requests.first?.head.headers.first(name: "x-forwarded-proto"), "https")
        // The IPv6 listener: connect to ::1 by raw socket bootstrap.
        let v6Port = gateway.port("v6")
        XCTAssertGreaterThan(v6Port, 0)
        XCTAssertEqual(gateway.server.boundAddresses["v6"]?.protocol, .inet6)
    }

    func testPlainBytesOnTLSPortAreClosed() async throws {
        let client = try await TestClient.connect(port: gateway.port("sni"), tls: nil)
        try await client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        let closed = await client.waitForClose()
        XCTAssertTrue(closed)
        XCTAssertTrue(backend.requests.isEmpty)
    }

    func testClientHelloParser() {
        // A minimal ClientHello carrying SNI "a.example" and ALPN h2,http/1.1.
        var body = ByteBuffer()
        body.writeInteger(UInt16(0x0303))
        body.writeBytes([UInt8](repeating: 7, count: 32))
        body.writeInteger(UInt8(0))
        body.writeInteger(UInt16(4)); body.writeInteger(UInt16(0x1301)); body.writeInteger(UInt16(0xC02F))
        body.writeInteger(UInt8(1)); body.writeInteger(UInt8(0))
        var ext = ByteBuffer()
        let name = Array("a.example".utf8)
        ext.writeInteger(UInt16(0)); ext.writeInteger(UInt16(name.count + 5))
        ext.writeInteger(UInt16(name.count + 3)); ext.writeInteger(UInt8(0)); ext.writeInteger(UInt16(name.count)); ext.writeBytes(name)
        ext.writeInteger(UInt16(16)); ext.writeInteger(UInt16(14)); ext.writeInteger(UInt16(12))
        ext.writeInteger(UInt8(2)); ext.writeString("h2"); ext.writeInteger(UInt8(8)); ext.writeString("http/1.1")
        body.writeInteger(UInt16(ext.readableBytes)); body.writeBuffer(&ext)
        var record = ByteBuffer()
        record.writeInteger(UInt8(22)); record.writeInteger(UInt16(0x0301)); record.writeInteger(UInt16(body.readableBytes + 4))
        record.writeInteger(UInt8(1)); record.writeInteger(UInt8(0)); record.writeInteger(UInt16(body.readableBytes)); record.writeBuffer(&body)

        var expected = ClientHello(serverName: "a.example", alpn: ["h2", "http/1.1"], cipherSuites: [0x1301, 0xC02F])
        expected.legacyVersion = 0x0303
        expected.extensionTypes = [0, 16]
        expected.firstALPN = Array("h2".utf8)
        XCTAssertEqual(ClientHello.parse(record), .complete(expected))
        XCTAssertEqual(ClientHello.parse(record.getSlice(at: 0, length: 20)!), .needMoreData)
        var garbage = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        if case .notTLS = ClientHello.parse(garbage) {} else { XCTFail("plain HTTP must be refused") }
        // Every truncation of a valid hello either needs more data or is complete, never crashes.
        for length in 0..<record.readableBytes {
            _ = ClientHello.parse(record.getSlice(at: 0, length: length)!)
        }
        // Corrupt lengths inside the hello are refused, not trusted.
        var corrupt = record
        corrupt.setInteger(UInt8(0xFF), at: 5 + 4 + 2 + 32)  // session id length
        if case .complete = ClientHello.parse(corrupt) { XCTFail("corrupt hello must not parse") }
        garbage.clear()
    }
}
