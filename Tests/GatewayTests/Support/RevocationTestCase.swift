import Foundation
import GatewayCore
import XCTest

/// The fixture of the online-revocation tests (CRLFetchTests, OCSPTests): an in-process gateway with one mTLS
/// listener `mtls` whose `tls.revocation` the test gives, and what they read back from it. The revocation store
/// is process-wide: what earlier tests fetched is forgotten before each test.
class RevocationTestCase: GatewayTestCase {
    override func setUp() async throws {
        try await super.setUp()
        RevocationStore.shared.reset()
    }

    /// Starts the gateway with `revocation` (YAML flow text) on the listener.
    func start(_ revocation: String) async throws {
        gateway = try await GatewayHarness(yaml: mtlsConfig(plugins: [], tls: ["revocation: \(revocation)"]), in: pki.directory)
    }

    /// The status of one request by `client` on a new connection (nil: refused in the handshake).
    func status(_ client: String) async throws -> Int? {
        try await TestClient.get(port: gateway.port("mtls"), tls: tls(client), path: "/who")?.status
    }

    /// The logged refusal with `reason` whose detail contains `detail`, once it is logged.
    func rejection(_ reason: HandshakeRejection.Code, _ detail: String) async -> LogCapture.Record? {
        await gateway.logs.waitFor { $0.message == "TLS handshake rejected" && $0.metadata["reason"] == reason.name && ($0.metadata["detail"] ?? "").contains(detail) }
    }

    func metrics() throws -> MetricSamples {
        let runtime = gateway.server.runtime
        return try MetricSamples(exposition: String(decoding: runtime.metrics.exposition(runtime: runtime), as: UTF8.self))
    }
}
