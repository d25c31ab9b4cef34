import Foundation
import Logging
import NIOCore
import X509

/// A listener's online revocation checks (`tls.revocation`), run after its chain verified: CRLs from the
/// certificates' distribution points and OCSP, over the verified path. `evaluate` decides from what the shared
/// `RevocationStore` knows, on the event loop and without I/O; when something must be fetched first, `resolve`
/// fetches it off the event loop and decides then (the TLS handshake waits through swift-nio-ssl's
/// verification promise).
package final class RevocationChecker: Sendable {
    package enum Verdict: Sendable, Equatable {
        case good
        case revoked(HandshakeRejection)
        /// The status could not be learnt: `revocation.unknown` decides.
        case unavailable(HandshakeRejection)
    }

    /// One check made, for `gateway_revocation_checks_total{source,result}`.
    package struct Check: Sendable, Equatable {
        package var source: String
        package var result: String
    }

    package enum Step: Sendable {
        case decided(Verdict, [Check])
        case fetch([Work])
    }

    package enum Work: Sendable {
        case crl(url: String)
        case ocsp(OCSPCertificateID, responder: String, issuer: Certificate)

        var key: String {
            switch self {
            case .crl(let url): return "crl " + url
            case .ocsp(let id, let responder, _): return "ocsp \(responder) \(id.issuerKeyHash) \(id.serial)"
            }
        }
    }

    package let config: RevocationConfig
    package let settings: RevocationStore.FetchSettings
    /// The listener's name, for the checks' metric.
    package let listener: String
    private let store: RevocationStore

    package init(config: RevocationConfig, settings: RevocationStore.FetchSettings, listener: String, store: RevocationStore = .shared) {
        self.config = config
        self.settings = settings
        self.listener = listener
        self.store = store
    }

    /// Counts the checks of one decided handshake.
    package func record(_ checks: [Check]) {
        for check in checks { settings.metrics?.revocationCheck(listener: listener, source: check.source, result: check.result) }
    }

    /// Whether a client whose status is unknown is admitted.
    package var admitsUnknown: Bool { config.unknown == .allow }

    /// Decides from what is known, or says what to fetch. `failures` are the fetches already tried and failed
    /// (by `Work.key`). `path` is the verified path, leaf first; its last certificate is the trust anchor.
    package func evaluate(path: [Certificate], now: Date = Date(), failures: [String: RevocationFailure] = [:]) -> Step {
        var checks: [Check] = []
        var work: [Work] = []
        var unavailable: HandshakeRejection?
        for index in path.indices.dropLast() {
            let certificate = path[index]
            let issuer = path[index + 1]
            let locations = RevocationLocations(certificate)
            let role = index == 0 ? "certificate" : "issuer certificate"
            if config.crlFetch, locations.hasDistributionPoints {
                switch crlStatus(certificate, issuer: issuer, locations: locations, now: now, failures: failures) {
                case .known(.good):
                    checks.append(Check(source: "crl_fetched", result: "good"))
                case .known(.revoked(let url)):
                    checks.append(Check(source: "crl_fetched", result: "revoked"))
                    return .decided(.revoked(.init(.revoked, "\(role) '\(certificate.subject)' serial \(certificate.serialNumber) is revoked by the CRL from \(url)")), checks)
                case .known(.unavailable(let failure)):
                    checks.append(Check(source: "crl_fetched", result: "unavailable"))
                    unavailable = unavailable ?? Self.rejection(role, certificate, failure)
                case .fetch(let next):
                    work.append(next)
                }
            }
            if config.ocsp == .chain || (config.ocsp == .leaf && index == 0) {
                switch ocspStatus(certificate, issuer: issuer, locations: locations, now: now, failures: failures) {
                case .known(.good):
                    checks.append(Check(source: "ocsp", result: "good"))
                case .known(.revoked(let responder)):
                    checks.append(Check(source: "ocsp", result: "revoked"))
                    return .decided(.revoked(.init(.revoked, "\(role) '\(certificate.subject)' serial \(certificate.serialNumber) is revoked according to the OCSP responder \(responder)")), checks)
                case .known(.unavailable(let failure)):
                    checks.append(Check(source: "ocsp", result: "unavailable"))
                    unavailable = unavailable ?? Self.rejection(role, certificate, failure)
                case .fetch(let next):
                    work.append(next)
                }
            }
        }
        if !work.isEmpty { return .fetch(work) }
        return .decided(unavailable.map { .unavailable($0) } ?? .good, checks)
    }

    /// Fetches what `evaluate` asks for (off the event loop, all at once), then decides. Never throws: a fetch
    /// that fails makes the status unknown.
    package func resolve(path: [Certificate]) async -> (Verdict, [Check]) {
        var failures: [String: RevocationFailure] = [:]
        // Each round either decides or fetches at least one thing not tried before; CRLs with several URLs
        // take a round per URL tried.
        for _ in 0..<8 {
            switch evaluate(path: path, now: Date(), failures: failures) {
            case .decided(let verdict, let checks):
                return (verdict, checks)
            case .fetch(let work):
                let results = await withTaskGroup(of: (String, RevocationFailure?).self) { group in
                    for item in work {
                        group.addTask { [self] in
                            switch item {
                            case .crl(let url):
                                if case .failure(let failure) = await store.fetchCRL(url, settings: settings) { return (item.key, failure) }
                            case .ocsp(let id, let responder, let issuer):
                                if case .failure(let failure) = await store.queryOCSP(id, responder: responder, issuer: issuer, settings: settings) {
                                    return (item.key, failure)
                                }
                            }
                            return (item.key, nil)
                        }
                    }
                    var collected: [(String, RevocationFailure?)] = []
                    for await result in group { collected.append(result) }
                    return collected
                }
                for (key, failure) in results {
                    // A fetch that succeeded but left nothing usable (a CRL gone stale at once) counts as failed.
                    failures[key] = failure ?? RevocationFailure(RevocationFailure.stale, "fetched, but still not usable")
                }
            }
        }
        let failure = RevocationFailure(RevocationFailure.timeout, "revocation status not learnt after repeated fetches")
        return (.unavailable(Self.rejection("certificate", path[0], failure)), [])
    }

    private static func rejection(_ role: String, _ certificate: Certificate, _ failure: RevocationFailure) -> HandshakeRejection {
        .init(.revocationUnavailable, "revocation status of \(role) '\(certificate.subject)' is unknown (\(failure.reason)): \(failure.detail)")
    }

    private enum Status {
        case good
        case revoked(String)
        case unavailable(RevocationFailure)
    }

    private enum Lookup {
        case known(Status)
        case fetch(Work)
    }

    private func crlStatus(_ certificate: Certificate, issuer: Certificate, locations: RevocationLocations, now: Date,
                           failures: [String: RevocationFailure]) -> Lookup {
        guard !locations.crlURLs.isEmpty else {
            return .known(.unavailable(.init(RevocationFailure.noURL, locations.crlProblem ?? "the CRL distribution points name no usable URL")))
        }
        var firstProblem: RevocationFailure?
        for url in locations.crlURLs {
            if let fetched = store.crl(at: url, now: now, settings: settings) {
                if fetched.crl.issuer != certificate.issuer {
                    firstProblem = firstProblem ?? .init(RevocationFailure.wrongIssuer, "the CRL from \(url) is issued by '\(fetched.crl.issuer)', not by '\(certificate.issuer)'")
                    continue
                }
                if let usage = try? issuer.extensions.keyUsage, !usage.cRLSign {
                    return .known(.unavailable(.init(RevocationFailure.badSignature, "'\(issuer.subject)' may not sign CRLs (its key usage lacks cRLSign)")))
                }
                if !store.isSignatureValid(fetched, url: url, issuer: issuer) {
                    firstProblem = firstProblem ?? .init(RevocationFailure.badSignature, "the CRL from \(url) is not validly signed by '\(issuer.subject)'")
                    continue
                }
                if let next = fetched.crl.nextUpdate, next < now {
                    // Stale: fetched again below unless that has failed already.
                    if let failure = failures[Work.crl(url: url).key] { firstProblem = firstProblem ?? failure; continue }
                    return .fetch(.crl(url: url))
                }
                return .known(fetched.crl.isRevoked(serial: certificate.serialNumber) ? .revoked(url) : .good)
            }
            if let failure = failures[Work.crl(url: url).key] {
                firstProblem = firstProblem ?? failure
                continue
            }
            return .fetch(.crl(url: url))
        }
        return .known(.unavailable(firstProblem ?? .init(RevocationFailure.noURL, "no CRL could be fetched")))
    }

    private func ocspStatus(_ certificate: Certificate, issuer: Certificate, locations: RevocationLocations, now: Date,
                            failures: [String: RevocationFailure]) -> Lookup {
        guard let responder = config.ocspResponder ?? locations.ocspURLs.first else {
            return .known(.unavailable(.init(RevocationFailure.noURL, locations.ocspProblem ?? "the certificate names no OCSP responder (authorityInfoAccess), and revocation.ocsp_responder is not set")))
        }
        let id: OCSPCertificateID
        do {
            id = try OCSPCertificateID(certificate: certificate, issuer: issuer)
        } catch {
            return .known(.unavailable(.init(RevocationFailure.malformed, "cannot form the OCSP CertID: \(error)")))
        }
        if let answer = store.ocspAnswer(for: id, now: now, settings: settings), answer.reuseUntil >= now {
            switch answer.status {
            case .good: return .known(.good)
            case .revoked: return .known(.revoked(answer.responder))
            case .unknown: return .known(.unavailable(.init(RevocationFailure.unknownStatus, "\(answer.responder) does not know the certificate")))
            }
        }
        let work = Work.ocsp(id, responder: responder, issuer: issuer)
        if let failure = failures[work.key] { return .known(.unavailable(failure)) }
        return .fetch(work)
    }
}
