import Foundation
import NIOConcurrencyHelpers

/// Builds the C plugin fixtures in Tests/PluginFixtures with the system C compiler, once per test run.
enum PluginFixtures {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
    static let directory: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gw-plugins-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()
    private static let built = NIOLockedValueBox<[String: String]>([:])

    /// The path of `lib<name>.so`, compiled from `<name>.c` as a plugin author would: C99, every warning an
    /// error, -pedantic (the header promises plain C99). `abi10` is also built with -fvisibility=hidden, so
    /// only GW_PLUGIN_EXPORT can make its entry point visible.
    static func build(_ name: String) throws -> String {
        if let path = built.withLockedValue({ $0[name] }) { return path }
        let output = "\(directory)/lib\(name).so"
        let result = try GatewayProcess.runCommand("/usr/bin/cc", [
            "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC",
        ] + (name == "abi10" ? ["-fvisibility=hidden"] : []) + [
            "-I", "\(packageRoot)/sdk/include", "-o", output, "\(packageRoot)/Tests/PluginFixtures/\(name).c",
        ])
        guard result.status == 0 else { throw FixtureError(message: "cc failed for \(name): \(result.stderr)") }
        built.withLockedValue { $0[name] = output }
        return output
    }

    /// The Swift plugin fixture, built by SwiftPM as a dynamic library next to the test bundle.
    static var swiftPlugin: String {
        Bundle.main.bundleURL.appendingPathComponent("libTestSwiftPlugin.so").path
    }

    struct FixtureError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }
}
