import ArgumentParser
import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwiftASN1
import X509

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

    @Option(help: "PEM client certificate chain: requests carry this identity (e.g. to measure header injection), and the identity extraction per connection is measured too.")
    var cert: String?

    @Option(help: "PEM CA bundle: with --cert, also measure a full chain verification (as on a first handshake).")
    var ca: String?

    func run() async throws {
        func absolute(_ file: String) -> String {
            URL(fileURLWithPath: file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file).standardized.path
        }
        let path = absolute(file)
        let library = try PluginLibrary.load(path: path)
        guard !library.isBlocking else { throw ValidationError("blocking plugins run on the worker pool; bench measures inline hooks") }
        let loop = EmbeddedEventLoop()
        let chainPEM = try cert.map { try String(contentsOfFile: absolute($0), encoding: .utf8) }
        let caPEM = try ca.map { try String(contentsOfFile: absolute($0), encoding: .utf8) }
        let connection = try PluginTestRun.connection(chainPEM: chainPEM, caPEM: caPEM, listener: "bench")
        if let chainPEM { try Self.benchIdentity(chainPEM: chainPEM, caPEM: caPEM, iterations: max(iterations / 100, 1000)) }
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

    /// Identity extraction, once per connection in the gateway: parsing the presented chain and computing every
    /// identity field (DNs, serial, fingerprints, validity, SANs, PEM), and with a CA a full verification.
    static func benchIdentity(chainPEM: String, caPEM: String?, iterations: Int) throws {
        let der = try PEMDocument.parseMultiple(pemString: chainPEM).filter { $0.discriminator == "CERTIFICATE" }.map(\.derBytes)
        func time(_ body: () throws -> Void) rethrows -> Double {
            for _ in 0..<min(iterations, 100) { try body() }
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<iterations { try body() }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(iterations)
        }
        var sink = 0
        let extraction = try time {
            let identity = ClientIdentity(presented: try der.map { try Certificate(derEncoded: $0) }, der: der)
            sink &+= identity.serialHex.utf8.count
        }
        print("identity extraction per connection (parse \(der.count) certificate(s), compute every field): \(String(format: "%.0f", extraction)) ns")
        if let caPEM {
            let anchors = try PEMDocument.parseMultiple(pemString: caPEM).filter { $0.discriminator == "CERTIFICATE" }.map { try Certificate(derEncoded: $0.derBytes) }
            let verification = time {
                // A new verifier each time: no cache, the cost of a first handshake with this chain.
                if case .verified = ClientCertificateVerifier(anchors: anchors, crls: [], maxDepth: 4).verify(der: der) { sink &+= 1 }
            }
            let verifier = ClientCertificateVerifier(anchors: anchors, crls: [], maxDepth: 4)
            let cached = time { if case .verified = verifier.verify(der: der) { sink &+= 1 } }
            print("chain verification: \(String(format: "%.0f", verification)) ns the first time, \(String(format: "%.0f", cached)) ns from the cache (a returning client)")
        }
        if sink == -1 { print(sink) }
        print("")
    }
}
