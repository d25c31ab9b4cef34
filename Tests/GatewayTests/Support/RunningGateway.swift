import Foundation
import XCTest

/// The real `gateway run` process, for tests that send it signals (SIGHUP reload, SIGTERM shutdown). Its log
/// goes to a file the test can read. It runs as an unprivileged user (`Unprivileged`), and the directory of
/// its configuration is handed to that user.
final class RunningGateway {
    let process = Process()
    let logPath: String
    let adminPort: Int

    /// `environment` adds variables to the gateway's environment (e.g. LD_PRELOAD for the allocation counter).
    init(config: String, adminPort: Int, logPath: String, netBindService: Bool = false, environment: [String: String] = [:]) throws {
        self.logPath = logPath
        self.adminPort = adminPort
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        try Unprivileged.handOver(URL(fileURLWithPath: config).deletingLastPathComponent().path)
        let (executable, arguments) = Unprivileged.command(try Unprivileged.gatewayExecutable, ["run", "--config", config], netBindService: netBindService)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, added in added }
        }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    /// Waits until the admin listener answers `GET /readyz` with 200.
    func waitReady(timeout: TimeInterval = 20) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let response = try? await TestClient.get(port: adminPort, tls: nil, path: "/readyz", host: "127.0.0.1"), response.status == 200 { return }
            guard process.isRunning else { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw PluginFixtures.FixtureError(message: "gateway did not become ready within \(Int(timeout)) s; log:\n\(log)")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log contains `text`; false on timeout.
    func waitForLog(_ text: String, timeout: TimeInterval = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return false
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// One request to the admin listener (`POST` with an empty body, as `/reload` wants).
    func admin(_ method: String, _ path: String) async throws -> TestClient.Response? {
        let client = try await TestClient.connect(port: adminPort, tls: nil)
        defer { Task { await client.close() } }
        try await client.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
        return await client.readResponse()
    }

    /// The admin listener's `/metrics`, parsed.
    func metrics() async throws -> MetricSamples {
        try MetricSamples(exposition: try await admin("GET", "/metrics")?.text ?? "")
    }

    /// Sends SIGTERM and waits for the exit status.
    func terminate() -> Int32 {
        signal(SIGTERM)
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs a Python helper from Tests/GatewayTests/Support/python and returns its stdout.
enum PythonHelper {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python").path

    static func start(_ script: String, _ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "\(directory)/\(script)"] + arguments
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        return (process, out)
    }

    /// Waits for a started helper and decodes its JSON output.
    static func finish(_ started: (Process, Pipe)) throws -> Any {
        let data = started.1.fileHandleForReading.readDataToEndOfFile()
        started.0.waitUntilExit()
        guard started.0.terminationStatus == 0 else { throw PluginFixtures.FixtureError(message: "python helper failed (\(started.0.terminationStatus))") }
        return try JSONSerialization.jsonObject(with: data)
    }

    static func run(_ script: String, _ arguments: [String], input: String) throws -> Any {
        let result = try capture(script, arguments, input: input)
        guard result.status == 0 else { throw PluginFixtures.FixtureError(message: "\(script) failed (\(result.status)): \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: result.stdout)
    }

    /// Runs a helper to its end: its exit status, stdout, and stderr (kept in a file, so that neither pipe can
    /// fill while the other is read).
    static func capture(_ script: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, stdout: Data, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "\(directory)/\(script)"] + arguments
        let out = Pipe(), inPipe = Pipe()
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("python-\(UUID().uuidString).err").path
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errPath)
        if input != nil { process.standardInput = inPipe }
        try process.run()
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try inPipe.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, data, (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }

}

/// Prometheus samples as parsed by prometheus_client (see python/parse_metrics.py).
struct MetricSamples {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let samples: [Sample]

    init(exposition: String) throws {
        let parsed = try PythonHelper.run("parse_metrics.py", [], input: exposition) as? [[String: Any]] ?? []
        samples = parsed.map { item in
            Sample(name: item["name"] as? String ?? "", labels: item["labels"] as? [String: String] ?? [:], value: (item["value"] as? NSNumber)?.doubleValue ?? .nan)
        }
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
        return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
    }
}
