import Atomics
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import X509

/// What the gateway has learnt online about revocation, shared by every listener and every configuration
/// generation of the process (a reload does not fetch again): CRLs by distribution point URL, OCSP answers by
/// CertID. One fetch per URL (or CertID) at a time, however many handshakes wait for it. Fetched CRLs are fetched
/// again in the background after `refresh_interval`, and before their nextUpdate; with a `cache_dir` they are
/// also kept on disk and read back after a restart.
package final class RevocationStore: Sendable {
    package static let shared = RevocationStore()

    /// How one fetch is made, and who hears of it (from the listener that asked first).
    package struct FetchSettings: Sendable {
        package var timeout: TimeAmount
        package var maxBytes: Int
        package var refreshInterval: TimeInterval
        package var cacheDirectory: String?
        package var metrics: GatewayMetrics?
        package var logger: Logger

        package init(timeout: TimeAmount, maxBytes: Int, refreshInterval: TimeInterval, cacheDirectory: String?, metrics: GatewayMetrics?, logger: Logger) {
            self.timeout = timeout
            self.maxBytes = maxBytes
            self.refreshInterval = refreshInterval
            self.cacheDirectory = cacheDirectory
            self.metrics = metrics
            self.logger = logger
        }
    }

    package struct FetchedCRL: Sendable {
        package var crl: CertificateRevocationList
        package var fetchedAt: Date
        /// When the background refresh fetches it again.
        package var refreshAt: Date
        package var settings: FetchSettings
        /// When a handshake last looked it up: a CRL no handshake needed for a day is forgotten, not refreshed.
        package var lastUsed: Date
    }

    package struct OCSPAnswer: Sendable {
        package var status: OCSPResponseMessage.Status
        package var responder: String
        package var fetchedAt: Date
        package var thisUpdate: Date
        package var nextUpdate: Date?
        /// Until when the answer is reused: its nextUpdate, or a minute when the responder gave none.
        package var reuseUntil: Date
        /// When the background refresh asks again (before `reuseUntil`), for as long as handshakes or open
        /// connections need the answer.
        package var refreshAt: Date
        package var issuer: Certificate
        package var settings: FetchSettings
        package var lastUsed: Date
    }

    /// An OCSP query: the same CertID asked of another responder is another query.
    private struct OCSPQuery: Hashable {
        var responder: String
        var id: OCSPCertificateID
    }

    private struct State {
        var crls: [String: FetchedCRL] = [:]
        var ocsp: [OCSPCertificateID: OCSPAnswer] = [:]
        /// Whether a fetched CRL (by URL and the SHA-256 of its DER) verifies with an issuer's key.
        var signatures: [SignatureCheck: Bool] = [:]
        var crlFetches: [String: Task<Result<FetchedCRL, RevocationFailure>, Never>] = [:]
        var ocspQueries: [OCSPQuery: Task<Result<OCSPAnswer, RevocationFailure>, Never>] = [:]
        var refresher: Task<Void, Never>?
    }

    private struct SignatureCheck: Hashable {
        var url: String
        var fetchedAt: Date
        var issuerKey: [UInt8]
    }

    private let state = NIOLockedValueBox(State())
    private let changes = ManagedAtomic<Int>(0)

    /// Grows whenever a CRL or an OCSP answer is stored: open connections check their client again at their
    /// next request when it has changed since their last check.
    package var epoch: Int { changes.load(ordering: .relaxed) }
    /// The most entries of each kind kept; past it the oldest go.
    package static let maxEntries = 4096

    package init() {}

    // MARK: CRLs

    /// The CRL fetched from `url`, if any, and notes that a handshake needed it; `settings` (of the listener
    /// asking, in the configuration now in force) become the ones its refreshes use.
    package func crl(at url: String, now: Date = Date(), settings: FetchSettings? = nil) -> FetchedCRL? {
        state.withLockedValue { state in
            guard state.crls[url] != nil else { return nil }
            state.crls[url]!.lastUsed = now
            if let settings { state.crls[url]!.settings = settings }
            return state.crls[url]
        }
    }

    /// A fetched CRL unused this long is dropped by the refresher.
    package static let unusedLifetime: TimeInterval = 86_400

    /// Whether `crl` (fetched from `url`) verifies with `issuer`'s key; checked once per fetched CRL and issuer key.
    package func isSignatureValid(_ fetched: FetchedCRL, url: String, issuer: Certificate) -> Bool {
        let key = SignatureCheck(url: url, fetchedAt: fetched.fetchedAt, issuerKey: Array(issuer.publicKey.subjectPublicKeyInfoBytes))
        if let known = state.withLockedValue({ $0.signatures[key] }) { return known }
        let valid = fetched.crl.isSignatureValid(by: issuer.publicKey)
        state.withLockedValue { state in
            if state.signatures.count >= Self.maxEntries { state.signatures.removeAll(keepingCapacity: true) }
            state.signatures[key] = valid
        }
        return valid
    }

    /// The CRL at `url`: from memory, else from the cache directory, else fetched (one fetch per URL at a time).
    package func fetchCRL(_ url: String, settings: FetchSettings) async -> Result<FetchedCRL, RevocationFailure> {
        let task = state.withLockedValue { state -> Task<Result<FetchedCRL, RevocationFailure>, Never> in
            if let running = state.crlFetches[url] { return running }
            let fromDiskFirst = state.crls[url] == nil
            let task = Task { await self.download(url, settings: settings, fromDiskFirst: fromDiskFirst) }
            state.crlFetches[url] = task
            return task
        }
        startRefresher()
        return await task.value
    }

    private func download(_ url: String, settings: FetchSettings, fromDiskFirst: Bool) async -> Result<FetchedCRL, RevocationFailure> {
        defer { _ = state.withLockedValue { $0.crlFetches.removeValue(forKey: url) } }
        let now = Date()
        if fromDiskFirst, let directory = settings.cacheDirectory, let cached = Self.readCached(url, directory: directory, settings: settings, now: now) {
            store(url, cached)
            settings.logger.info("revocation: CRL read from the cache directory", metadata: ["url": "\(url)", "next_update": "\(cached.crl.nextUpdate.map { "\($0)" } ?? "none")"])
            return .success(cached)
        }
        let result = await RevocationHTTP.get(url, timeout: settings.timeout, maxBytes: settings.maxBytes).flatMap { bytes -> Result<FetchedCRL, RevocationFailure> in
            let crl: CertificateRevocationList
            do {
                crl = try Self.parseCRL(bytes)
            } catch {
                return .failure(.init(RevocationFailure.malformed, "the CRL from \(url) does not parse: \(error)"))
            }
            if let next = crl.nextUpdate, next < now {
                return .failure(.init(RevocationFailure.stale, "the CRL from \(url) is past its nextUpdate \(next)"))
            }
            // Plain http: a CRL older than the one held (an old one replayed on the way) is never taken.
            if let held = self.state.withLockedValue({ $0.crls[url]?.crl }), held.issuer == crl.issuer, crl.thisUpdate < held.thisUpdate {
                return .failure(.init(RevocationFailure.stale, "the CRL from \(url) (thisUpdate \(crl.thisUpdate)) is older than the one held (\(held.thisUpdate)); kept that one"))
            }
            if let directory = settings.cacheDirectory { Self.writeCached(bytes, url: url, directory: directory, logger: settings.logger) }
            return .success(FetchedCRL(crl: crl, fetchedAt: now, refreshAt: Self.refreshTime(crl, fetchedAt: now, interval: settings.refreshInterval),
                                       settings: settings, lastUsed: now))
        }
        switch result {
        case .success(let fetched):
            store(url, fetched)
            settings.metrics?.revocationFetch(source: "crl", result: "ok")
            settings.logger.info("revocation: CRL fetched", metadata: [
                "url": "\(url)", "issuer": "\(fetched.crl.issuer)", "revoked": "\(fetched.crl.revokedSerials.count)",
                "next_update": "\(fetched.crl.nextUpdate.map { "\($0)" } ?? "none")",
            ])
        case .failure(let failure):
            settings.metrics?.revocationFetch(source: "crl", result: failure.reason)
            settings.logger.warning("revocation: CRL fetch failed", metadata: ["url": "\(url)", "reason": "\(failure.reason)", "detail": "\(failure.detail)"])
            // A CRL kept from before stays usable until its nextUpdate; try again sooner than a full interval.
            state.withLockedValue { state in
                state.crls[url]?.refreshAt = now.addingTimeInterval(min(settings.refreshInterval, 10))
            }
        }
        return result
    }

    private func store(_ url: String, _ fetched: FetchedCRL) {
        var fetched = fetched
        state.withLockedValue { state in
            // A refresh is no use: the entry keeps the time a handshake last needed it.
            fetched.lastUsed = state.crls[url]?.lastUsed ?? fetched.lastUsed
            if state.crls[url] == nil, state.crls.count >= Self.maxEntries,
                let oldest = state.crls.min(by: { $0.value.fetchedAt < $1.value.fetchedAt })?.key
            {
                state.crls.removeValue(forKey: oldest)
            }
            state.crls[url] = fetched
        }
        changes.wrappingIncrement(ordering: .relaxed)
    }

    /// PEM or DER; one CRL.
    private static func parseCRL(_ bytes: [UInt8]) throws -> CertificateRevocationList {
        let crls = try CertificateRevocationList.parseFile(Data(bytes))
        guard crls.count == 1 else { throw CRLError("\(crls.count) CRLs in one answer") }
        return crls[0]
    }

    /// A tenth of the CRL's validity before its nextUpdate (at most an hour before), or after `interval`,
    /// whichever is sooner; but not sooner than half the time left until its nextUpdate, nor than a second (a
    /// CRL published close to its nextUpdate is not fetched in a loop).
    package static func refreshTime(_ crl: CertificateRevocationList, fetchedAt: Date, interval: TimeInterval) -> Date {
        refreshTime(thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, fetchedAt: fetchedAt, interval: interval)
    }

    package static func refreshTime(thisUpdate: Date, nextUpdate: Date?, fetchedAt: Date, interval: TimeInterval) -> Date {
        var at = fetchedAt.addingTimeInterval(interval)
        var floor = fetchedAt.addingTimeInterval(min(interval, 1))
        if let next = nextUpdate {
            let margin = min(max(next.timeIntervalSince(thisUpdate) / 10, 0), 3600)
            at = min(at, next.addingTimeInterval(-margin))
            floor = fetchedAt.addingTimeInterval(min(interval, max(1, next.timeIntervalSince(fetchedAt) / 2)))
        }
        return max(at, floor)
    }

    /// Fetches again, in the background, every CRL whose refresh time has come: a revoked certificate is
    /// refused after the next refresh, with no handshake waiting for it.
    private func startRefresher() {
        state.withLockedValue { state in
            guard state.refresher == nil else { return }
            state.refresher = Task.detached { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(nanoseconds: 500_000_000)
                    let now = Date()
                    let (due, dueOCSP) = self.state.withLockedValue { state in
                        state.crls = state.crls.filter { now.timeIntervalSince($0.value.lastUsed) < Self.unusedLifetime }
                        state.ocsp = state.ocsp.filter { now.timeIntervalSince($0.value.lastUsed) < Self.unusedLifetime }
                        let crls = state.crls.filter { $0.value.refreshAt <= now && state.crlFetches[$0.key] == nil }.map { ($0.key, $0.value.settings) }
                        let answers = state.ocsp.filter {
                            $0.value.refreshAt <= now && state.ocspQueries[OCSPQuery(responder: $0.value.responder, id: $0.key)] == nil
                        }.map { ($0.key, $0.value) }
                        return (crls, answers)
                    }
                    for (url, settings) in due {
                        _ = await self.fetchCRL(url, settings: settings)
                    }
                    for (id, answer) in dueOCSP {
                        _ = await self.queryOCSP(id, responder: answer.responder, issuer: answer.issuer, settings: answer.settings)
                    }
                }
            }
        }
    }

    private static func cacheFile(_ url: String, directory: String) -> String {
        let digest = SHA256.hash(data: Array(url.utf8)).map { String(format: "%02x", $0) }.joined()
        return (directory as NSString).appendingPathComponent("crl-\(digest).der")
    }

    private static func readCached(_ url: String, directory: String, settings: FetchSettings, now: Date) -> FetchedCRL? {
        let path = cacheFile(url, directory: directory)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let size = attributes[.size] as? Int, size <= settings.maxBytes,
            let data = FileManager.default.contents(atPath: path)
        else { return nil }
        guard let crl = try? parseCRL(Array(data)) else {
            settings.logger.warning("revocation: ignoring a cached CRL that does not parse", metadata: ["file": "\(path)", "url": "\(url)"])
            return nil
        }
        if let next = crl.nextUpdate, next < now { return nil }
        let fetchedAt = min((attributes[.modificationDate] as? Date) ?? now, now)
        return FetchedCRL(crl: crl, fetchedAt: fetchedAt, refreshAt: refreshTime(crl, fetchedAt: fetchedAt, interval: settings.refreshInterval),
                          settings: settings, lastUsed: now)
    }

    private static func writeCached(_ bytes: [UInt8], url: String, directory: String, logger: Logger) {
        let path = cacheFile(url, directory: directory)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            logger.warning("revocation: cannot write the CRL cache file", metadata: ["file": "\(path)", "url": "\(url)", "error": "\(error)"])
        }
    }

    // MARK: OCSP

    /// The answer held for `id`, if any, and notes that a handshake or connection needed it (`settings`: those
    /// its refreshes use from now on).
    package func ocspAnswer(for id: OCSPCertificateID, now: Date = Date(), settings: FetchSettings? = nil) -> OCSPAnswer? {
        state.withLockedValue { state in
            guard state.ocsp[id] != nil else { return nil }
            state.ocsp[id]!.lastUsed = now
            if let settings { state.ocsp[id]!.settings = settings }
            return state.ocsp[id]
        }
    }

    /// Asks `responder` about `id` (one query per responder and CertID at a time) and keeps a valid answer until
    /// its nextUpdate; it is asked again in the background before then while the answer is needed.
    package func queryOCSP(_ id: OCSPCertificateID, responder: String, issuer: Certificate, settings: FetchSettings) async -> Result<OCSPAnswer, RevocationFailure> {
        let query = OCSPQuery(responder: responder, id: id)
        let task = state.withLockedValue { state -> Task<Result<OCSPAnswer, RevocationFailure>, Never> in
            if let running = state.ocspQueries[query] { return running }
            let task = Task { await self.ask(query, issuer: issuer, settings: settings) }
            state.ocspQueries[query] = task
            return task
        }
        startRefresher()
        return await task.value
    }

    private func ask(_ query: OCSPQuery, issuer: Certificate, settings: FetchSettings) async -> Result<OCSPAnswer, RevocationFailure> {
        defer { _ = state.withLockedValue { $0.ocspQueries.removeValue(forKey: query) } }
        let (id, responder) = (query.id, query.responder)
        let result = await RevocationHTTP.post(responder, body: id.requestDER, contentType: "application/ocsp-request", timeout: settings.timeout,
                                               maxBytes: 64 * 1024).flatMap { bytes -> Result<OCSPAnswer, RevocationFailure> in
            let now = Date()
            let message: OCSPResponseMessage
            do {
                message = try OCSPResponseMessage(derEncoded: bytes)
            } catch {
                return .failure(.init(RevocationFailure.malformed, "the answer of \(responder) does not parse: \(error)"))
            }
            switch message.validate(for: id, issuer: issuer, now: now) {
            case .failure(let error):
                let reason = message.responseStatus != 0 ? RevocationFailure.responderError
                    : error.description.contains("signature") || error.description.contains("signed") || error.description.contains("responder certificate")
                    ? RevocationFailure.badSignature : error.description.contains("stale") ? RevocationFailure.stale : RevocationFailure.malformed
                return .failure(.init(reason, "\(responder): \(error)"))
            case .success(let single):
                // Plain http: an answer older than the one held (an old one replayed on the way) is never taken.
                if let held = self.state.withLockedValue({ $0.ocsp[id] }), held.thisUpdate > single.thisUpdate {
                    return .failure(.init(RevocationFailure.stale, "\(responder): the answer (thisUpdate \(single.thisUpdate)) is older than the one held (\(held.thisUpdate))"))
                }
                let reuse = single.nextUpdate ?? now.addingTimeInterval(60)
                let refresh = Self.refreshTime(thisUpdate: single.thisUpdate, nextUpdate: reuse, fetchedAt: now, interval: settings.refreshInterval)
                return .success(OCSPAnswer(
                    status: single.status, responder: responder, fetchedAt: now, thisUpdate: single.thisUpdate, nextUpdate: single.nextUpdate,
                    reuseUntil: reuse, refreshAt: refresh, issuer: issuer, settings: settings, lastUsed: now
                ))
            }
        }
        switch result {
        case .success(var answer):
            settings.metrics?.revocationFetch(source: "ocsp", result: "ok")
            state.withLockedValue { state in
                if state.ocsp[id] == nil, state.ocsp.count >= Self.maxEntries { state.ocsp.removeAll(keepingCapacity: true) }
                answer.lastUsed = state.ocsp[id]?.lastUsed ?? answer.lastUsed
                state.ocsp[id] = answer
            }
            changes.wrappingIncrement(ordering: .relaxed)
        case .failure(let failure):
            settings.metrics?.revocationFetch(source: "ocsp", result: failure.reason)
            settings.logger.warning("revocation: OCSP query failed", metadata: ["responder": "\(responder)", "reason": "\(failure.reason)", "detail": "\(failure.detail)"])
            // An answer held stays usable until its nextUpdate; ask again sooner than its refresh time.
            state.withLockedValue { state in
                if let held = state.ocsp[id] { state.ocsp[id]!.refreshAt = min(held.reuseUntil, Date().addingTimeInterval(10)) }
            }
        }
        return result
    }

    // MARK: metrics

    /// What the metrics show at scrape time: each fetched CRL's age and nextUpdate, and the OCSP answers' earliest nextUpdate.
    package struct Snapshot: Sendable {
        package var crls: [(url: String, fetchedAt: Date, nextUpdate: Date?)]
        package var earliestOCSPNextUpdate: Date?
        /// OCSP answers held that are still usable, and when the oldest of them was fetched.
        package var ocspAnswers: Int
        package var oldestOCSPFetch: Date?
    }

    package func snapshot() -> Snapshot {
        state.withLockedValue { state in
            let usable = state.ocsp.values.filter { $0.reuseUntil >= Date() }
            return Snapshot(
                crls: state.crls.map { (url: $0.key, fetchedAt: $0.value.fetchedAt, nextUpdate: $0.value.crl.nextUpdate) },
                earliestOCSPNextUpdate: usable.compactMap(\.nextUpdate).min(), ocspAnswers: usable.count,
                oldestOCSPFetch: usable.map(\.fetchedAt).min()
            )
        }
    }

    /// Forgets everything (tests).
    package func reset() {
        state.withLockedValue { state in
            state.crls.removeAll()
            state.ocsp.removeAll()
            state.signatures.removeAll()
        }
    }
}
