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

    /// TLS options for a client presenting `client`.pem (nil: no certificate), trusting the test CA.
    func tls(_ client: String?) -> TestClient.TLSOptions { pki.clientTLS(client) }
}
