import ArgumentParser
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin",
        abstract: "Work with plugin libraries.",
        subcommands: [PluginInspectCommand.self, PluginTestCommand.self, PluginBenchCommand.self]
    )
}

struct PluginInspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a plugin's descriptor, or exactly why the file is not a loadable plugin."
    )

    @Argument(help: "Path to the plugin shared library (.so).")
    var file: String

    func run() async throws {
        let path = URL(fileURLWithPath: file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file).standardized.path
        do {
            let library = try PluginLibrary.load(path: path)
            print("""
                file:     \(library.path)
                name:     \(library.name)
                version:  \(library.version)
                abi:      \(library.descriptor.pointee.abi_major).\(library.abiMinor) (this gateway: \(HostAPI.abiVersion))
                flags:    \(library.isBlocking ? "blocking" : "none")
                hooks:    \(library.hookNames.joined(separator: ", "))
                """)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Measures what the plugin chain costs per request: chains of 0, 1, 3 and 10 instances of one plugin.
struct PluginBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the per-request cost of a chain of 0, 1, 3 and 10 instances of a (no-op) plugin."
    )

    @Argument(help: "Path to the plugin shared library (.so); its hooks must not block.")
    var file: String

    @Option(help: "Requests per chain length.")
    var iterations: Int = 1_000_000

    @Option(help: "The JSON config handed to every instance.")
    var config: String = "{}"

    func run() async throws {
        let path = URL(fileURLWithPath: file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file).standardized.path
        let library = try PluginLibrary.load(path: path)
        guard !library.isBlocking else { throw ValidationError("blocking plugins run on the worker pool; bench measures inline hooks") }
        let loop = EmbeddedEventLoop()
        let connection = ConnectionContext(listenerName: "bench", isTLS: true, remoteAddress: nil, localAddress: nil)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/bench", headers: ["host": "bench"])
        var baseline = 0.0
        print("plugin: \(library.name) \(library.version), \(iterations) requests per row")
        print("chain | ns/request | ns/plugin call")
        print("---|---|---")
        for length in [0, 1, 3, 10] {
            let instances = try (0..<length).map { _ in
                try PluginInstance(library: library, listener: "bench", configJSON: config, onError: .deny, timeout: .seconds(1))
            }
            let chain = PluginChain(entries: instances, pool: nil)
            var proceeded = 0
            // Warm-up, then the measured run: a fresh PluginRequest per request, as the proxy does.
            for _ in 0..<min(iterations, 10_000) {
                chain.runRequestHeaders(PluginRequest(connection: connection, head: head), on: loop) { _ in proceeded += 1 }
            }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations {
                chain.runRequestHeaders(PluginRequest(connection: connection, head: head), on: loop) { _ in proceeded += 1 }
            }
            let perRequest = Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
            if length == 0 { baseline = perRequest }
            let perCall = length == 0 ? "-" : String(format: "%.1f", (perRequest - baseline) / Double(length))
            print("\(length) | \(String(format: "%.1f", perRequest)) | \(perCall)")
            chain.destroy()
        }
    }
}
