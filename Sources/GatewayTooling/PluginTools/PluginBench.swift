import Foundation
import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwiftASN1
import X509

/// The engine of `gateway plugin bench`: what a chain of 0, 1, 3 and 10 instances of one plugin costs per
/// request, run inline on an embedded event loop as the proxy runs it; with a client certificate, also the
/// identity extraction and chain verification that happen once per connection.
package struct PluginBench {
    /// The plugin cannot be measured this way (it blocks).
    package struct Refusal: Error {
        package var reason: String
    }

    package var libraryPath: String
    package var iterations: Int
    package var configJSON: String
    package var chainPEM: String?
    package var caPEM: String?

    package init(libraryPath: String, iterations: Int, configJSON: String, chainPEM: String?, caPEM: String?) {
        self.libraryPath = libraryPath
        self.iterations = iterations
        self.configJSON = configJSON
        self.chainPEM = chainPEM
        self.caPEM = caPEM
    }

    /// Runs every measurement and hands each line of the report to `print`.
    package func run(print: (String) -> Void) throws {
        let library = try PluginLibrary.load(path: libraryPath)
        guard !library.isBlocking else { throw Refusal(reason: "blocking plugins run on the worker pool; bench measures inline hooks") }
        let loop = EmbeddedEventLoop()
        let connection = try PluginTestRun.connection(chainPEM: chainPEM, caPEM: caPEM, listener: "bench")
        if let chainPEM { try Self.benchIdentity(chainPEM: chainPEM, caPEM: caPEM, iterations: max(iterations / 100, 1000), print: print) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/bench", headers: ["host": "bench"])
        var baseline = 0.0
        print("plugin: \(library.name) \(library.version), \(iterations) requests per row")
        print("chain | ns/request | ns/plugin call")
        print("---|---|---")
        for length in [0, 1, 3, 10] {
            let instances = try (0..<length).map { _ in
                try PluginInstance(library: library, listener: "bench", configJSON: configJSON, onError: .deny, timeout: .seconds(1))
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
            // What the row's instances kept for the connection goes before they are destroyed (as in the
            // gateway), and the next row starts without it.
            connection.releasePluginData()
            chain.destroy()
        }
    }

    /// Identity extraction, once per connection in the gateway: parsing the presented chain and computing every
    /// identity field (DNs, serial, fingerprints, validity, SANs, PEM), and with a CA a full verification.
    package static func benchIdentity(chainPEM: String, caPEM: String?, iterations: Int, print: (String) -> Void) throws {
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
        if sink == -1 { print("\(sink)") }
        print("")
    }
}
