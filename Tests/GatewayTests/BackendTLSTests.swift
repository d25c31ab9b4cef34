import GatewayCore
import GatewayTooling
import NIOCore
import NIOSSL
import XCTest

/// HTTPS to backends: the backend's certificate is verified against the configured CA and name, and the
/// gateway can present its own client certificate to a backend that requires one.
final class BackendTLSTests: XCTestCase {
    func testHTTPSBackendVerificationAndClientCertificate() async throws {
        let pki = try TestPKI()
        // A backend certificate with a DNS name only: swift-nio-ssl also accepts a certificate whose IP SAN is
        // the address connected to, which would make every server_name pass against 127.0.0.1.
        let backendCert = try CertificateFactory.makeLeaf(CertificateFactory.name(commonName: "api.test"), issuer: pki.rootCA, dnsNames: ["api.test"], usages: [.serverAuth])
        try pki.write("backend.pem", backendCert.certificatePEM)
        try pki.write("backend.key", backendCert.privateKeyPEM)
        // The backend requires a client certificate issued by the test root (the gateway's "valid" client cert).
        var config = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.path("backend.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.path("backend.key"), format: .pem))
        )
        config.certificateVerification = .noHostnameVerification
        config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.path("ca.pem")))
        let backend = TestBackend(name: "secure")
        try await backend.start(tls: try NIOSSLContext(configuration: config))
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - name: plain
                address: "127.0.0.1:0"
                protocol: http
                routes:
                  - { match: { path_prefix: /good/ }, backend: good }
                  - { match: { path_prefix: /wrong-name/ }, backend: wrong_name }
                  - { match: { path_prefix: /wrong-ca/ }, backend: wrong_ca }
                  - { match: { path_prefix: /no-cert/ }, backend: no_cert }
            backends:
              - name: good
                protocol: https
                tls: { ca: ca.pem, server_name: api.test, cert: valid.pem, key: valid.key }
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
              - name: wrong_name
                protocol: https
                tls: { ca: ca.pem, server_name: other.test, cert: valid.pem, key: valid.key }
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
              - name: wrong_ca
                protocol: https
                tls: { ca: other-root.pem, server_name: api.test, cert: valid.pem, key: valid.key }
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
              - name: no_cert
                protocol: https
                tls: { ca: ca.pem, server_name: api.test }
                servers: [ { address: "127.0.0.1:\(backend.port)" } ]
            """, in: pki.directory)
        let port = gateway.port("plain")
        let good = try await TestClient.get(port: port, tls: nil, path: "/good/x")
        XCTAssertEqual(good?.status, 200)
        XCTAssertEqual(good?.header("x-backend"), "secure")
        for path in ["/wrong-name/x", "/wrong-ca/x", "/no-cert/x"] {
            let refused = try await TestClient.get(port: port, tls: nil, path: path)
            XCTAssertEqual(refused?.status, 502, path)
        }
        XCTAssertEqual(backend.requests.count, 1, "only the verified, authenticated connection delivered a request")
        await gateway.stop()
        await backend.stop()
    }

    func testSourceIPHashIsStableAndLeastConnectionsPrefersIdle() {
        let metrics = GatewayMetrics()
        let servers = (0..<3).map {
            BackendServer(name: "s\($0):1", host: "s\($0)", socketAddress: try! SocketAddress(ipAddress: "192.0.2.\($0)", port: 1), weight: 1,
                          maxIdle: 1, passive: nil, metricLabel: "s\($0):1", metrics: metrics.backendServer(backend: "b", server: "s\($0):1"))
        }
        let hash = LoadBalancer(strategy: .sourceIPHash, servers: servers)
        let picks = Set((0..<20).map { _ in hash.pick(clientIP: "203.0.113.7") })
        XCTAssertEqual(picks.count, 1, "one client IP always lands on one server")
        let spread = Set((0..<50).compactMap { hash.pick(clientIP: "198.51.100.\($0)") })
        XCTAssertEqual(spread.count, 3, "different clients spread over the servers")
        let least = LoadBalancer(strategy: .leastConnections, servers: servers)
        servers[0].activeRequests.store(5, ordering: .relaxed)
        servers[1].activeRequests.store(0, ordering: .relaxed)
        servers[2].activeRequests.store(3, ordering: .relaxed)
        for _ in 0..<5 { XCTAssertEqual(least.pick(clientIP: "x"), 1) }
        // A server out of rotation is skipped; with none left there is no pick.
        servers[1].setChecked(healthy: false)
        for _ in 0..<5 { XCTAssertEqual(least.pick(clientIP: "x"), 2) }
        let roundRobin = LoadBalancer(strategy: .roundRobin, servers: servers)
        XCTAssertEqual(Set((0..<9).compactMap { _ in roundRobin.pick(clientIP: "x", now: .now()) }), [0, 2])
        servers[0].setChecked(healthy: false)
        servers[2].setChecked(healthy: false)
        XCTAssertNil(roundRobin.pick(clientIP: "x", now: .now()))
    }
}
