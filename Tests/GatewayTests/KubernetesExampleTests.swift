import Foundation
import GatewayCore
import XCTest
import Yams

/// deploy/kubernetes is an example operators copy, so it must stay true to the gateway: its configuration is
/// accepted by `gateway validate` (with the Secret's files where the pod mounts them, a key of mode 0440 as the
/// Secret volume makes it), and the manifests agree with it (ports, probes on real admin endpoints, a grace
/// period longer than drain_delay + shutdown_timeout, a non-root read-only container). No cluster runs here.
final class KubernetesExampleTests: XCTestCase {
    private static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("deploy/kubernetes").path

    private func manifest(_ file: String) throws -> [String: Any] {
        let text = try String(contentsOfFile: "\(Self.directory)/\(file)", encoding: .utf8)
        return try XCTUnwrap(try Yams.load(yaml: text) as? [String: Any], file)
    }

    private func value(_ object: Any?, _ path: String) -> Any? {
        var current = object
        for key in path.split(separator: ".") {
            if let index = Int(key) {
                guard let list = current as? [Any], index < list.count else { return nil }
                current = list[index]
            } else {
                current = (current as? [String: Any])?[String(key)]
            }
        }
        return current
    }

    func testTheExampleConfigurationValidatesAndTheManifestsAgreeWithIt() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.directory).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertEqual(files, ["configmap.yaml", "deployment.yaml", "networkpolicy.yaml", "poddisruptionbudget.yaml", "service.yaml"])
        for file in files {
            let object = try manifest(file)
            XCTAssertNotNil(object["apiVersion"], file)
            XCTAssertNotNil(object["kind"], file)
            XCTAssertEqual(value(object, "metadata.name") as? String, "mtls-gateway", file)
        }

        // The configuration, with the Secret's files beside it as the pod mounts them.
        let pki = try TestPKI()
        let configText = try XCTUnwrap((value(try manifest("configmap.yaml"), "data") as? [String: Any])?["gateway.yaml"] as? String)
        let root = pki.path("pod")
        for directory in ["config", "tls", "client-ca", "admin-token", "audit"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(directory)", withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: pki.path("server.pem"), toPath: "\(root)/tls/tls.crt")
        try FileManager.default.copyItem(atPath: pki.path("server.key"), toPath: "\(root)/tls/tls.key")
        try FileManager.default.copyItem(atPath: pki.path("ca.pem"), toPath: "\(root)/client-ca/ca.crt")
        try FileManager.default.setAttributes([.posixPermissions: 0o440], ofItemAtPath: "\(root)/tls/tls.key")
        try "0123456789abcdef0123456789abcdef\n".write(toFile: "\(root)/admin-token/token", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o440], ofItemAtPath: "\(root)/admin-token/token")
        // The audit file's directory is an emptyDir in the pod; here a directory of the test.
        XCTAssertTrue(configText.contains("/var/log/mtls-gateway/audit.log"))
        let config = "\(root)/config/gateway.yaml"
        try configText.replacingOccurrences(of: "/var/log/mtls-gateway/", with: "\(root)/audit/").write(toFile: config, atomically: true, encoding: .utf8)
        let validated = try GatewayProcess.run(["validate", "--config", config])
        XCTAssertEqual(validated.status, 0, "gateway validate refused the example:\n\(validated.stdout)\(validated.stderr)")

        let gateway = try XCTUnwrap(try Yams.load(yaml: configText) as? [String: Any])
        let drainDelay = try XCTUnwrap(ConfigDuration(parsing: value(gateway, "drain_delay") as? String ?? ""))
        let shutdownTimeout = try XCTUnwrap(ConfigDuration(parsing: value(gateway, "shutdown_timeout") as? String ?? ""))
        let listenerPort = (value(gateway, "listeners.0.address") as? String)?.split(separator: ":").last.map(String.init)
        let adminPort = (value(gateway, "admin.address") as? String)?.split(separator: ":").last.map(String.init)

        let deployment = try manifest("deployment.yaml")
        let pod = value(deployment, "spec.template.spec")
        let container = value(pod, "containers.0")
        let grace = try XCTUnwrap(value(pod, "terminationGracePeriodSeconds") as? Int)
        XCTAssertGreaterThan(Int64(grace) * 1_000_000_000, drainDelay.nanoseconds + shutdownTimeout.nanoseconds, "a grace period under drain_delay + shutdown_timeout ends in SIGKILL")
        let ports = (value(container, "ports") as? [[String: Any]] ?? []).reduce(into: [String: String]()) { $0[$1["name"] as? String ?? ""] = "\($1["containerPort"] ?? "")" }
        XCTAssertEqual(ports["https"], listenerPort)
        XCTAssertEqual(ports["admin"], adminPort)
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            XCTAssertEqual(value(container, "\(probe).httpGet.path") as? String, path)
            XCTAssertEqual(value(container, "\(probe).httpGet.port") as? String, "admin")
            XCTAssertTrue(AdminEndpoints.paths.contains(path))
        }
        XCTAssertEqual(value(container, "args") as? [String], ["run", "--config", "/etc/mtls-gateway/config/gateway.yaml"])
        XCTAssertEqual(value(pod, "securityContext.runAsNonRoot") as? Bool, true)
        XCTAssertEqual(value(container, "securityContext.readOnlyRootFilesystem") as? Bool, true)
        XCTAssertEqual(value(container, "securityContext.allowPrivilegeEscalation") as? Bool, false)
        let secret = (value(pod, "volumes") as? [[String: Any]] ?? []).first { $0["name"] as? String == "tls" }
        XCTAssertEqual(value(secret, "secret.defaultMode") as? Int, 0o440, "the gateway refuses a key others can read")
        let mounts = (value(container, "volumeMounts") as? [[String: Any]] ?? []).reduce(into: [String: String]()) { $0[$1["name"] as? String ?? ""] = $1["mountPath"] as? String }
        XCTAssertEqual(mounts["config"], "/etc/mtls-gateway/config")
        XCTAssertEqual(mounts["tls"], "/etc/mtls-gateway/tls", "the configuration names ../tls/ from its own directory")
        XCTAssertEqual(mounts["client-ca"], "/etc/mtls-gateway/client-ca", "the client CA from a Secret of its own")
        XCTAssertTrue(configText.contains("client_ca: ../client-ca/ca.crt"))
        // The audit file rotates well within the emptyDir's size limit (max_size x (max_files + 1)).
        let auditVolume = (value(pod, "volumes") as? [[String: Any]] ?? []).first { $0["name"] as? String == "audit" }
        XCTAssertEqual(value(auditVolume, "emptyDir.sizeLimit") as? String, "1Gi")
        XCTAssertTrue(configText.contains("max_size: 104857600, max_files: 5"), "600 MiB at most, under 1Gi")
        XCTAssertEqual(mounts["audit"], "/var/log/mtls-gateway")
        XCTAssertEqual(value(try manifest("service.yaml"), "spec.ports.0.targetPort") as? String, "https")
    }
}
