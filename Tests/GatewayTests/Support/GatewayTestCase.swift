import Foundation
import XCTest

/// The fixture most gateway tests share: a fresh PKI (CA, server and client certificates, CRL, in a temporary
/// directory), a started echo backend, and the gateway under test, stopped after each test whatever happened.
/// Subclasses that need more call `super.setUp()` first and register extra cleanups with `addTeardown`.
class GatewayTestCase: XCTestCase {
    var pki: TestPKI!
    var backend: TestBackend!
    var gateway: GatewayHarness!
    private var teardowns: [() async -> Void] = []

    /// The echo backend's name (it answers with it); "backend" unless a subclass says otherwise.
    class var backendName: String { "backend" }

    override func setUp() async throws {
        try await super.setUp()
        pki = try TestPKI()
        backend = TestBackend(name: Self.backendName)
        try await backend.start()
    }

    override func tearDown() async throws {
        await gateway?.stop()
        await backend?.stop()
        for teardown in teardowns.reversed() { await teardown() }
        teardowns.removeAll()
        try await super.tearDown()
    }

    /// Runs `body` at the end of the test, after the gateway and the backend stopped (last added, first run).
    func addTeardown(_ body: @escaping () async -> Void) {
        teardowns.append(body)
    }

    /// `gateway validate` on a one-listener configuration whose only plugin is `library` with each of `configs`
    /// (YAML flow text); asserts each is refused (exit 1) and returns each run's stderr.
    func validateRefuses(library: String, _ configs: [String], file: StaticString = #filePath, line: UInt = #line) throws -> [String] {
        try configs.enumerated().map { index, config in
            let path = pki.path("plugin-config-\(index)-\(UUID().uuidString).yaml")
            try """
                listeners:
                  - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(library), config: \(config) } ], routes: [ { backend: b } ] }
                backends: [ { name: b, servers: [ { address: "127.0.0.1:1" } ] } ]
                """.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try GatewayProcess.run(["validate", "--config", path])
            XCTAssertEqual(result.status, 1, config, file: file, line: line)
            return result.stderr
        }
    }

    /// A configuration with one mTLS listener named `mtls` (the test PKI's server certificate, client
    /// certificates required) on `port` (0: any free port) with `plugins` (YAML flow entries of its chain), every
    /// request routed to the echo backend, and the admin listener on `adminPort` when given. `tls` adds keys to
    /// the listener's `tls` (`"ja4_deny: [ ... ]"`); `backends` replaces the echo backend's entry with a flow
    /// list of backends named `app` and others.
    func mtlsConfig(port: Int = 0, adminPort: Int? = nil, plugins: [String], tls extraTLS: [String] = [], backends: String? = nil) -> String {
        """
        \(adminPort.map { "admin: { address: \"127.0.0.1:\($0)\" }" } ?? "")
        listeners:
          - name: mtls
            address: "127.0.0.1:\(port)"
            tls:
              certificates: [ { cert: server.pem, key: server.key } ]
              client_auth: required
              client_ca: ca.pem
        \(extraTLS.map { "      \($0)\n" }.joined())    plugins: [ \(plugins.joined(separator: ", ")) ]
            routes: [ { backend: app } ]
        backends: \(backends ?? "[ { name: app, servers: [ { address: \"127.0.0.1:\(backend.port)\" } ] } ]")
        """
    }

    /// The real `gateway run` (as the unprivileged user) on `yaml`, written to `<name>.yaml` in the PKI
    /// directory, logging to `<name>.log`; returns once its admin listener (on `adminPort`) is ready.
    func runGateway(_ yaml: String, name: String, adminPort: Int, environment: [String: String] = [:]) async throws -> RunningGateway {
        let config = pki.path("\(name).yaml")
        try yaml.write(toFile: config, atomically: true, encoding: .utf8)
        let running = try RunningGateway(config: config, adminPort: adminPort, logPath: pki.path("\(name).log"), environment: environment)
        try await running.waitReady()
        return running
    }

    /// TLS options for a client presenting `client`.pem (nil: no certificate), trusting the test CA.
    func tls(_ client: String?) -> TestClient.TLSOptions { pki.clientTLS(client) }
}
