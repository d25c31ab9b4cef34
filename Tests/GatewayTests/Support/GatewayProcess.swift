import Foundation
import NIOConcurrencyHelpers

/// Runs the built `gateway` executable (the one next to this test bundle) as a child process.
enum GatewayProcess {
    static var executable: String {
        Bundle.main.bundleURL.appendingPathComponent("gateway").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs to completion (with a time limit) and returns the exit status and output.
    static func run(_ arguments: [String], timeout: TimeInterval = 60) throws -> Result {
        try runCommand(executable, arguments, timeout: timeout)
    }

    static func runCommand(_ path: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
        let collected = NIOLockedValueBox((out: Data(), err: Data()))
        let group = DispatchGroup()
        let outHandle = out.fileHandleForReading, errHandle = err.fileHandleForReading
        group.enter()
        DispatchQueue.global().async { let data = outHandle.readDataToEndOfFile(); collected.withLockedValue { $0.out = data }; group.leave() }
        group.enter()
        DispatchQueue.global().async { let data = errHandle.readDataToEndOfFile(); collected.withLockedValue { $0.err = data }; group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        group.wait()
        let (outData, errData) = collected.withLockedValue { ($0.out, $0.err) }
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    }
}
