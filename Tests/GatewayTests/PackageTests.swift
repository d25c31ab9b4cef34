import Foundation
import XCTest

/// `scripts/package`: the relocatable tarball, unpacked into a fresh directory and run with an empty environment
/// (`env -i`) as nobody, serves the demo; the Debian package installs with dpkg, its unit passes
/// `systemd-analyze verify`, and `gateway validate` (as the package's user) accepts the packaged configuration.
final class PackageTests: XCTestCase {
    private static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testTheTarballRunsTheDemoAnywhereAndTheDebianPackageInstalls() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("package-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let packaged = try GatewayProcess.runCommand("/bin/bash", ["\(Self.root)/scripts/package", "\(work)/dist"], timeout: 300)
        XCTAssertEqual(packaged.status, 0, packaged.stderr)
        let outputs = packaged.stdout.split(separator: "\n").map(String.init)
        let tarball = try XCTUnwrap(outputs.first { $0.hasSuffix(".tar.gz") }, packaged.stdout)
        let deb = try XCTUnwrap(outputs.first { $0.hasSuffix(".deb") }, packaged.stdout)

        // The tarball, unpacked into a directory the unprivileged user owns, run with no environment at all.
        let fresh = "\(work)/fresh"
        try FileManager.default.createDirectory(atPath: fresh, withIntermediateDirectories: true)
        XCTAssertEqual(try GatewayProcess.runCommand("/bin/tar", ["-C", fresh, "-xzf", tarball]).status, 0)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: work)
        try Unprivileged.handOver(fresh)
        let top = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: fresh).first)
        let gateway = "\(fresh)/\(top)/bin/gateway"
        let version = try GatewayProcess.runCommand("/usr/bin/env", ["-i", gateway, "--version"])
        XCTAssertEqual(version.status, 0, version.stderr)
        XCTAssertTrue(version.stdout.hasPrefix("mtls-gateway ") && version.stdout.contains("(commit "), version.stdout)
        let ldd = try GatewayProcess.runCommand("/usr/bin/ldd", ["\(fresh)/\(top)/lib/mtls-gateway/gateway"])
        XCTAssertFalse(ldd.stdout.contains("/opt/swift"), "nothing from the toolchain:\n\(ldd.stdout)")
        XCTAssertTrue(ldd.stdout.contains("\(top)/lib/mtls-gateway/swift/libswiftCore.so"), ldd.stdout)

        let demoDirectory = "\(fresh)/demo"
        try FileManager.default.createDirectory(atPath: demoDirectory, withIntermediateDirectories: true)
        try Unprivileged.handOver(demoDirectory)
        let (path, arguments) = Unprivileged.command("/usr/bin/env", ["-i", gateway, "demo", "--port", "0", "--dir", demoDirectory])
        let demo = Process()
        demo.executableURL = URL(fileURLWithPath: path)
        demo.arguments = arguments
        let out = Pipe()
        demo.standardOutput = out
        demo.standardError = FileHandle.nullDevice
        try demo.run()
        defer { if demo.isRunning { kill(demo.processIdentifier, SIGKILL) } }
        var printed = ""
        let deadline = Date().addingTimeInterval(30)
        while !printed.contains("Press Ctrl-C"), Date() < deadline, demo.isRunning {
            printed += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        let curlLine = try XCTUnwrap(printed.split(separator: "\n").first { $0.hasPrefix("curl --cert") }, printed)
        let curl = try GatewayProcess.runCommand("/usr/bin/curl", ["-sS"] + curlLine.split(separator: " ").dropFirst().map(String.init))
        XCTAssertEqual(curl.status, 0, curl.stderr)
        XCTAssertTrue(curl.stdout.contains("x-forwarded-clientcert-subjectdn: CN=demo-client"), curl.stdout)
        kill(demo.processIdentifier, SIGTERM)
        demo.waitUntilExit()
        XCTAssertEqual(demo.terminationStatus, 0)

        // The Debian package, installed on this machine and purged again (the system user mtls-gateway stays, as
        // a purge leaves it). Never over a real installation.
        guard getuid() == 0 else { throw XCTSkip("installing the .deb with dpkg needs root") }
        let present = try GatewayProcess.runCommand("/usr/bin/dpkg-query", ["-W", "-f=${Status}", "mtls-gateway"])
        guard !present.stdout.contains("ok installed") else {
            throw XCTSkip("mtls-gateway is installed on this machine: the test does not replace it")
        }
        let installed = try GatewayProcess.runCommand("/usr/bin/dpkg", ["-i", deb], timeout: 120)
        defer { _ = try? GatewayProcess.runCommand("/usr/bin/dpkg", ["--purge", "mtls-gateway"], timeout: 120) }
        XCTAssertEqual(installed.status, 0, installed.stdout + installed.stderr)
        XCTAssertTrue(try GatewayProcess.runCommand("/usr/bin/gateway", ["--version"]).stdout.contains("(commit "))
        let verify = try GatewayProcess.runCommand("/usr/bin/systemd-analyze", ["verify", "/lib/systemd/system/mtls-gateway.service"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let validate = try GatewayProcess.runCommand("/usr/sbin/runuser", [
            "-u", "mtls-gateway", "--", "/usr/bin/gateway", "validate", "--config", "/etc/mtls-gateway/gateway.yaml",
        ])
        XCTAssertEqual(validate.status, 0, "the packaged configuration, as the service's user:\n\(validate.stdout)\(validate.stderr)")
        let key = try FileManager.default.attributesOfItem(atPath: "/etc/mtls-gateway/tls/server.key")
        XCTAssertEqual((key[.posixPermissions] as? NSNumber)?.intValue, 0o640)
    }
}
