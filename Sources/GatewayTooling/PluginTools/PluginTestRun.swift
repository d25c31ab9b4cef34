import Foundation
import GatewayCore
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import SwiftASN1
import X509

/// Runs requests through one plugin instance without a network: the engine of `gateway plugin test`, so that
/// plugin authors see the decision and the headers their plugin sets for a given client certificate.
///
/// The connection is what a TLS 1.3 handshake with the given certificate chain would give: verified against
/// `ca` when given (with the gateway's own verifier, so a refusal carries the same reason code), otherwise
/// taken as verified. Each request runs on_connection (once), on_request_headers, then on_response_headers
/// (against the plugin's answer, or a stand-in `200` from the backend) and on_complete.
package struct PluginTestRun {
    package struct Outcome {
        package enum Decision: Equatable {
            case proceed
            case respond(status: Int)
            case failed(reason: String)
        }

        package var request: String
        package var decision: Decision
        /// Request headers as the backend would receive them (when the request proceeds).
        package var requestHeaders: [(String, String)]
        package var added: [(String, String)]
        package var removed: [(String, String)]
        package var response: (headers: [(String, String)], body: String)?
        package var vars: [String: String]
    }

    package let library: PluginLibrary
    package let configJSON: String
    package let listener: String

    /// The connection as the plugin will see it; `verification` says what the verifier concluded.
    package static func connection(chainPEM: String?, caPEM: String?, listener: String) throws -> ConnectionContext {
        let connection = ConnectionContext(
            listenerName: listener, isTLS: true,
            remoteAddress: try? SocketAddress(ipAddress: "127.0.0.1", port: 50000), localAddress: try? SocketAddress(ipAddress: "127.0.0.1", port: 8443)
        )
        connection.tlsVersion = .tlsv13
        connection.cipherSuite = 0x1301
        connection.negotiatedALPN = "http/1.1"
        connection.handshakeCompleted = true
        guard let chainPEM else { return connection }
        let der = try PEMDocument.parseMultiple(pemString: chainPEM).filter { $0.discriminator == "CERTIFICATE" }.map(\.derBytes)
        guard !der.isEmpty else { throw GatewayError(.invalidArgument, "no CERTIFICATE block in the --cert file") }
        if let caPEM {
            let anchors = try PEMDocument.parseMultiple(pemString: caPEM).filter { $0.discriminator == "CERTIFICATE" }.map { try Certificate(derEncoded: $0.derBytes) }
            switch ClientCertificateVerifier(anchors: anchors, crls: [], maxDepth: 4).verify(der: der) {
            case .verified(let identity):
                connection.clientCertificate = identity
                connection.verification = .success
            case .rejected(let rejection, let presented):
                connection.clientCertificate = presented
                connection.verification = .failed(rejection)
            }
        } else {
            let certificates = try der.map { try Certificate(derEncoded: $0) }
            connection.clientCertificate = ClientIdentity(presented: certificates, der: der)
            connection.verification = .success
        }
        return connection
    }

    package func run(requests: [(method: String, target: String, headers: [(String, String)])], connection: ConnectionContext) throws -> [Outcome] {
        let instance = try PluginInstance(library: library, listener: listener, configJSON: configJSON, onError: .deny, timeout: .seconds(30))
        let pool = library.isBlocking ? NIOThreadPool(numberOfThreads: 1) : nil
        pool?.start()
        let chain = PluginChain(entries: [instance], pool: pool)
        defer {
            // As the gateway does when a connection ends: what the plugin kept for it goes before its destroy.
            connection.releasePluginData()
            chain.destroy()
        }
        chain.onConnection(connection)
        // Inline plugins run on an embedded loop. A blocking plugin's worker completes from its own thread,
        // which an embedded loop would take for itself: it gets a real one-thread loop instead.
        let group = library.isBlocking ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        defer { try? group?.syncShutdownGracefully() }
        let loop = EmbeddedEventLoop()
        var outcomes: [Outcome] = []
        for spec in requests {
            var headers = HTTPHeaders([("host", "localhost")])
            for (name, value) in spec.headers { headers.replaceOrAdd(name: name, value: value) }
            let head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: spec.method), uri: spec.target, headers: headers)
            let request = PluginRequest(connection: connection, head: head)
            var result: PluginChain.Outcome?
            if let realLoop = group?.next() {
                let done = realLoop.makePromise(of: PluginChain.Outcome.self)
                let handoff = Handoff(request)  // the caller waits until the loop is done with it
                realLoop.execute { chain.runRequestHeaders(handoff.value, on: realLoop) { done.succeed($0) } }
                // The chain's own timeout (30 s here) ends a hanging call; this wait only backs it up.
                result = try? done.futureResult.wait()
            } else {
                chain.runRequestHeaders(request, on: loop) { result = $0 }
                loop.run()
            }
            guard let result else { throw GatewayError(.invalidArgument, "the plugin did not finish \(spec.method) \(spec.target)") }
            let before = Array(head.headers.map { ($0.name, $0.value) })
            let after = Array(request.head.headers.map { ($0.name, $0.value) })
            var outcome = Outcome(
                request: "\(spec.method) \(spec.target)", decision: .proceed, requestHeaders: after,
                added: after.filter { pair in !before.contains { $0 == pair } }, removed: before.filter { pair in !after.contains { $0 == pair } },
                response: nil, vars: request.vars
            )
            let responseHead: HTTPResponseHead
            switch result {
            case .proceed:
                responseHead = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "0"])
            case .answered:
                let answer = request.answer!
                outcome.decision = .respond(status: answer.status)
                outcome.response = (answer.headers, String(decoding: answer.body, as: UTF8.self))
                responseHead = HTTPResponseHead(
                    version: .http1_1, status: .init(statusCode: answer.status), headers: HTTPHeaders(answer.headers + [("content-length", "\(answer.body.count)")])
                )
            case .failed(_, let reason):
                outcome.decision = .failed(reason: reason)
                responseHead = HTTPResponseHead(version: .http1_1, status: .internalServerError)
            }
            request.responseHead = responseHead
            chain.runResponseHeaders(request)
            request.backendServer = result.isProceed ? "backend.test:80" : nil
            chain.runComplete(request)
            outcome.vars = request.vars
            outcomes.append(outcome)
        }
        return outcomes
    }
}

extension PluginChain.Outcome {
    package var isProceed: Bool { if case .proceed = self { return true } else { return false } }
}
