import Foundation
import GatewayCore
import GatewayTooling
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

/// The real gateway process as the shipped systemd unit runs it: an unprivileged user, CAP_NET_BIND_SERVICE
/// only where a port below 1024 needs it. Tests that run everything as root cannot see a gateway that serves
/// nothing as anyone else (it did: its accepted sockets asked for SO_DEBUG, which needs CAP_NET_ADMIN).
final class UnprivilegedTests: XCTestCase {
    var pki: TestPKI!
    var plain: TestBackend!
    var secure: TestBackend!

    override func setUp() async throws {
        pki = try TestPKI()
        plain = TestBackend(name: "plain")
        try await plain.start()
        // The HTTPS backend's certificate names api.test; the gateway checks it against the test root.
        let cert = try CertificateFactory.makeLeaf(CertificateFactory.name(commonName: "api.test"), issuer: pki.rootCA, dnsNames: ["api.test"], usages: [.serverAuth])
        try pki.write("backend.pem", cert.certificatePEM)
        try pki.write("backend.key", cert.privateKeyPEM)
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(pki.path("backend.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.path("backend.key"), format: .pem))
        )
        secure = TestBackend(name: "secure")
        try await secure.start(tls: try NIOSSLContext(configuration: tls))
    }

    override func tearDown() async throws {
        await plain.stop()
        await secure.stop()
    }

    private func config(port: Int, adminPort: Int, tlsRoute: String = "secure") -> String {
        """
        admin: { address: "127.0.0.1:\(adminPort)" }
        listeners:
          - name: mtls
            address: "127.0.0.1:\(port)"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: required
              client_ca: ca.pem
            plugins:
              - { library: libClientCertHeaders.so, config: {} }
              - { library: libAudit.so, config: { path: \(pki.path("audit.log")) } }
            routes:
              - { match: { path_prefix: /tls/ }, backend: \(tlsRoute) }
              - { backend: plain }
        backends:
          - name: plain
            health_check: { path: /healthz, interval: 200ms, timeout: 200ms, healthy: 1, unhealthy: 1 }
            servers: [ { address: "127.0.0.1:\(plain.port)" } ]
          - name: secure
            protocol: https
            tls: { ca: ca.pem, server_name: api.test }
            health_check: { path: /healthz, interval: 200ms, timeout: 200ms, healthy: 1, unhealthy: 1 }
            servers: [ { address: "127.0.0.1:\(secure.port)" } ]
        """
    }

    private func curl(_ port: Int, _ path: String) throws -> GatewayProcess.Result {
        try GatewayProcess.runCommand("/usr/bin/curl", [
            "-sS", "--cert", pki.path("valid.pem"), "--key", pki.path("valid.key"), "--cacert", pki.path("ca.pem"),
            "https://localhost:\(port)\(path)",
        ])
    }

    private func metrics(_ adminPort: Int) async throws -> MetricSamples {
        let response = try await TestClient.get(port: adminPort, tls: nil, path: "/metrics", host: "127.0.0.1")
        return try MetricSamples(exposition: response?.text ?? "")
    }

    private func waitFor(_ what: String, timeout: TimeInterval = 10, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTFail("timed out waiting for: \(what)")
    }

    func testAsAnUnprivilegedUserItServesMTLSToHTTPAndHTTPSBackendsChecksHealthAndReloads() async throws {
        let port = try unusedPort(), adminPort = try unusedPort()
        let configPath = pki.path("gateway.yaml")
        try config(port: port, adminPort: adminPort).write(toFile: configPath, atomically: true, encoding: .utf8)
        let gateway = try RunningGateway(config: configPath, adminPort: adminPort, logPath: pki.path("gateway.log"))
        try await gateway.waitReady()
        let credentials = try XCTUnwrap(Unprivileged.credentials(of: gateway.process.processIdentifier))
        XCTAssertEqual(credentials.uid, "\(Unprivileged.uid)", "the gateway runs as the unprivileged user")
        if Unprivileged.runsUnprivileged { XCTAssertEqual(credentials.capEff, "0000000000000000", "with no capability at all") }

        // mTLS through to the HTTP backend, with the identity headers injected.
        let first = try curl(port, "/hello")
        XCTAssertEqual(first.status, 0, "curl: \(first.stderr)\nlog:\n\(gateway.log)")
        XCTAssertEqual(first.stdout, "ok plain")
        let received = try XCTUnwrap(plain.requests.last)
        XCTAssertEqual(received.head.uri, "/hello")
        XCTAssertEqual(received.head.headers.first(name: "x-forwarded-clientcert-subjectdn"), "CN=valid-client,OU=ops,O=Test,C=US")
        // ... and to the HTTPS backend.
        let second = try curl(port, "/tls/x")
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(second.stdout, "ok secure")

        // Active health checks reach both backends (the HTTPS one over TLS) and see a failure.
        try await waitFor("health probes on both backends") {
            plain.healthChecks.withLockedValue { $0 } > 0 && secure.healthChecks.withLockedValue { $0 } > 0
        }
        secure.healthy.withLockedValue { $0 = false }
        try await waitFor("the HTTPS backend marked unhealthy") {
            try await metrics(adminPort).value("gateway_backend_server_healthy", ["backend": "secure"]) == 0
        }
        XCTAssertEqual(try curl(port, "/tls/x").stdout.hasPrefix("no healthy server"), true)
        secure.healthy.withLockedValue { $0 = true }
        try await waitFor("the HTTPS backend healthy again") {
            try await metrics(adminPort).value("gateway_backend_server_healthy", ["backend": "secure"]) == 1
        }

        // SIGHUP reloads: /tls/ now goes to the plain backend.
        try config(port: port, adminPort: adminPort, tlsRoute: "plain").write(toFile: configPath, atomically: true, encoding: .utf8)
        gateway.signal(SIGHUP)
        let reloaded = await gateway.waitForLog("configuration reloaded")
        XCTAssertTrue(reloaded, gateway.log)
        XCTAssertEqual(try curl(port, "/tls/after-reload").stdout, "ok plain")
        let setupFailures = try await metrics(adminPort).value("gateway_connection_setup_failures_total")
        XCTAssertEqual(setupFailures, 0, "no connection failed to set up")

        XCTAssertEqual(gateway.terminate(), 0)
        let audit = try String(contentsOfFile: pki.path("audit.log"), encoding: .utf8)
        XCTAssertEqual(audit.split(separator: "\n").count, 4, "one audit line per request, written by the unprivileged user:\n\(audit)")
        let owner = try FileManager.default.attributesOfItem(atPath: pki.path("audit.log"))[.ownerAccountID] as? NSNumber
        XCTAssertEqual(owner?.uint32Value, Unprivileged.uid)
    }

    func testBindsAPortBelow1024WithOnlyCapNetBindServiceAsTheSystemdUnitGrantsIt() async throws {
        try XCTSkipUnless(Unprivileged.runsUnprivileged, "needs root to start the gateway as another user with one capability")
        let port = try XCTUnwrap(Self.freePrivilegedPort(), "no free port below 1024 on 127.0.0.1")
        let adminPort = try unusedPort()
        let configPath = pki.path("low-port.yaml")
        try config(port: port, adminPort: adminPort).write(toFile: configPath, atomically: true, encoding: .utf8)

        // Without the capability the bind is refused, and the error names the listener and the address. (Where
        // the kernel lets anyone bind low ports, as some container runtimes set it, there is nothing to refuse.)
        let unprivilegedStart = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 1024
        if unprivilegedStart > port {
            let refused = try RunningGateway(config: configPath, adminPort: adminPort, logPath: pki.path("no-cap.log"))
            let deadline = Date().addingTimeInterval(30)
            while refused.process.isRunning && Date() < deadline { usleep(50_000) }
            XCTAssertFalse(refused.process.isRunning, "the gateway exits when it cannot bind")
            if refused.process.isRunning { refused.signal(SIGKILL) }
            refused.process.waitUntilExit()
            XCTAssertNotEqual(refused.process.terminationStatus, 0)
            XCTAssertTrue(refused.log.contains("listener 'mtls': cannot bind 127.0.0.1:\(port): "), refused.log)
            XCTAssertTrue(refused.log.contains("Permission denied"), refused.log)
            XCTAssertTrue(refused.log.contains("needs root or CAP_NET_BIND_SERVICE"), refused.log)
        }

        let gateway = try RunningGateway(config: configPath, adminPort: adminPort, logPath: pki.path("cap.log"), netBindService: true)
        try await gateway.waitReady()
        let credentials = try XCTUnwrap(Unprivileged.credentials(of: gateway.process.processIdentifier))
        XCTAssertEqual(credentials.uid, "\(Unprivileged.uid)")
        XCTAssertEqual(credentials.capEff, "0000000000000400", "CAP_NET_BIND_SERVICE and nothing else")
        let result = try curl(port, "/low")
        XCTAssertEqual(result.status, 0, "curl: \(result.stderr)\nlog:\n\(gateway.log)")
        XCTAssertEqual(result.stdout, "ok plain")
        XCTAssertEqual(gateway.terminate(), 0)
    }

    func testAcceptedConnectionsSetTCPNoDelayAtTheTCPLevel() async throws {
        // Root passes either way, so the option itself is checked: TCP_NODELAY on, SO_DEBUG (the same option
        // number at the socket level) off.
        let gateway = try await GatewayHarness(yaml: """
            listeners:
              - { name: plain, address: "127.0.0.1:0", protocol: http, routes: [ { backend: plain } ] }
            backends: [ { name: plain, servers: [ { address: "127.0.0.1:\(plain.port)" } ] } ]
            """, in: pki.directory)
        let client = try await TestClient.connect(port: gateway.port("plain"), tls: nil)
        try await client.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let status = await client.readResponse()?.status
        XCTAssertEqual(status, 200)
        let channels = gateway.server.openConnections.withLockedValue { Array($0.values) }
        XCTAssertEqual(channels.count, 1)
        let channel = try XCTUnwrap(channels.first)
        let noDelay = try await channel.getOption(.tcpOption(.tcp_nodelay)).get()
        // SO_DEBUG has no name in NIO: it is the option TCP_NODELAY's number names at the socket level.
        let debug = try await channel.getOption(ChannelOptions.Types.SocketOption(level: .socket, name: .tcp_nodelay)).get()
        XCTAssertNotEqual(noDelay, 0, "TCP_NODELAY is set")
        XCTAssertEqual(debug, 0, "SO_DEBUG is not")
        await client.close()
        await gateway.stop()
    }

    /// A port below 1024 that nothing on 127.0.0.1 listens on (checked by binding it, as root).
    static func freePrivilegedPort() -> Int? {
        for port in stride(from: 987, to: 600, by: -1) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound == 0 { return port }
        }
        return nil
    }
}
