import Atomics
import Foundation
import NIOConcurrencyHelpers

/// What the operator's console shows of clients: the verified client identities per listener (bounded, the
/// least recently seen forgotten first), the latest refused handshakes and denied requests with their reasons,
/// and the reload history. One per process (it outlives reloads), fed from the rare paths only: a verified
/// handshake (once per connection), a refusal, a plugin's denial, a reload; request counts arrive per
/// connection in batches (`HTTPProxyHandler`), never as a lock per request. Off (records nothing) without
/// `admin`. It holds what the audit log records of a client, and no more: no header, no body, no PEM.
package final class ConsoleJournal: Sendable {
    package struct Client: Sendable {
        package var listener: String
        package var subject: String
        package var issuer: String
        package var serial: String
        package var sha256: String
        package var sans: [String]
        package var notAfter: Date
        package var firstSeen: Date
        package var lastSeen: Date
        package var lastAddress: String
        package var connections: Int
        package var requests: Int
        package var denials: Int
        /// The last plugin that denied this client a request, and what it said.
        package var deniedBy: String?
        package var denialReason: String?
    }

    package enum Stage: String, Sendable {
        /// The TLS handshake was refused (or a connection was closed when its client was no longer admitted).
        case handshake
        /// A plugin denied a request (an answer of 400 or more), or failed under `on_error: deny`.
        case request
    }

    package struct Refusal: Sendable {
        package var time: Date
        package var listener: String
        package var client: String
        package var stage: Stage
        /// The stable reason: a `HandshakeRejection` code name, `plugin_denied` or `plugin_failed`.
        package var reason: String
        package var detail: String
        package var subject: String?
        package var issuer: String?
        package var serial: String?
        package var plugin: String?
        package var status: Int?
    }

    package struct Reload: Sendable {
        package var time: Date
        package var success: Bool
        package var errors: [String]
    }

    private struct State {
        var config = ConsoleConfig()
        var clients: [String: Client] = [:]
        /// A ring of `config.refusals` refusals; `next` is where the next one goes.
        var refusals: [Refusal] = []
        var next = 0
        /// Every refusal since start, by stage, reason and listener (the ring forgets; these do not).
        var counts: [String: Int] = [:]
        var reloads: [Reload] = []
    }

    private let state = NIOLockedValueBox(State())
    private let enabled = ManagedAtomic(false)
    /// The longest detail or reason text kept (a plugin's answer body can be long).
    private static let maxText = 300
    private static let maxReloads = 50

    package init() {}

    /// Turns recording on with `config`'s sizes (nil: off, and forgets everything).
    package func configure(_ config: ConsoleConfig?) {
        state.withLockedValue { state in
            guard let config else {
                state = State()
                return
            }
            state.config = config
            if state.clients.count > config.identities { Self.evict(&state, keeping: config.identities) }
            if state.refusals.count > config.refusals {
                state.refusals = Self.ordered(state).suffix(config.refusals)
                state.next = 0
            } else if state.refusals.count < config.refusals, state.next != 0 {
                state.refusals = Self.ordered(state)
                state.next = 0
            }
        }
        enabled.store(config != nil, ordering: .relaxed)
    }

    package var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    // MARK: recording

    /// A connection whose client certificate verified.
    package func clientVerified(_ connection: ConnectionContext, now: Date = Date()) {
        guard isEnabled, let identity = connection.clientCertificate else { return }
        let key = connection.listenerName + "\u{0}" + identity.sha256Fingerprint
        state.withLockedValue { state in
            if var client = state.clients[key] {
                client.connections += 1
                client.lastSeen = now
                client.lastAddress = connection.remoteIP
                state.clients[key] = client
                return
            }
            // `trim` (every 5 s, off the event loops) keeps the table at its size; this bound holds between trims.
            if state.clients.count >= state.config.identities + state.config.identities / 4 {
                Self.evict(&state, keeping: state.config.identities - 1)
            }
            state.clients[key] = Client(
                listener: connection.listenerName, subject: identity.subject, issuer: identity.issuer, serial: identity.serialHex,
                sha256: identity.sha256Fingerprint,
                sans: identity.dnsNames.map { "DNS:\($0)" } + identity.uris.map { "URI:\($0)" } + identity.ipAddresses.map { "IP:\($0)" }
                    + identity.emails.map { "email:\($0)" },
                notAfter: identity.notAfter, firstSeen: now, lastSeen: now, lastAddress: connection.remoteIP, connections: 1, requests: 0, denials: 0
            )
        }
    }

    /// `count` more requests answered on `connection` (sent in batches by the proxy handler).
    package func requestsServed(_ connection: ConnectionContext, count: Int, now: Date = Date()) {
        guard isEnabled, count > 0, let identity = connection.clientCertificate, case .success = connection.verification else { return }
        let key = connection.listenerName + "\u{0}" + identity.sha256Fingerprint
        state.withLockedValue { state in
            guard var client = state.clients[key] else { return }
            client.requests += count
            client.lastSeen = now
            state.clients[key] = client
        }
    }

    /// A refused handshake, or a connection closed because its client is no longer admitted.
    package func handshakeRefused(_ connection: ConnectionContext, _ rejection: HandshakeRejection, now: Date = Date()) {
        guard isEnabled else { return }
        let presented = connection.clientCertificate
        add(Refusal(
            time: now, listener: connection.listenerName, client: connection.remoteAddress.text, stage: .handshake, reason: rejection.code.name,
            detail: Self.clip(rejection.detail), subject: presented?.subject, issuer: presented?.issuer, serial: presented?.serialHex
        ))
    }

    /// A request a plugin denied (`status` >= 400; `reason` is the start of its answer) or failed on.
    package func requestDenied(_ connection: ConnectionContext, plugin: String, status: Int, reason: String, failed: Bool, now: Date = Date()) {
        guard isEnabled else { return }
        let presented = connection.clientCertificate
        let text = Self.clip(reason)
        add(Refusal(
            time: now, listener: connection.listenerName, client: connection.remoteAddress.text, stage: .request,
            reason: failed ? "plugin_failed" : "plugin_denied", detail: text, subject: presented?.subject, issuer: presented?.issuer,
            serial: presented?.serialHex, plugin: plugin, status: status
        ))
        guard let presented else { return }
        let key = connection.listenerName + "\u{0}" + presented.sha256Fingerprint
        state.withLockedValue { state in
            guard var client = state.clients[key] else { return }
            client.denials += 1
            client.deniedBy = plugin
            client.denialReason = text
            state.clients[key] = client
        }
    }

    /// Forgets the least recently seen clients beyond `admin.console.identities`. Called on the admin thread
    /// (the chart sampler): the sort runs outside the lock the event loops take; a client seen again meanwhile
    /// is kept.
    package func trim() {
        let (capacity, seen) = state.withLockedValue { state -> (Int, [(String, Date)]) in
            guard state.clients.count > state.config.identities else { return (state.config.identities, []) }
            return (state.config.identities, state.clients.map { ($0.key, $0.value.lastSeen) })
        }
        guard seen.count > capacity else { return }
        let oldest = seen.sorted { $0.1 < $1.1 }.prefix(seen.count - capacity)
        state.withLockedValue { state in
            for (key, lastSeen) in oldest where state.clients[key]?.lastSeen == lastSeen { state.clients.removeValue(forKey: key) }
        }
    }

    package func reloaded(success: Bool, errors: [String], now: Date = Date()) {
        guard isEnabled else { return }
        state.withLockedValue { state in
            state.reloads.append(Reload(time: now, success: success, errors: errors))
            if state.reloads.count > Self.maxReloads { state.reloads.removeFirst(state.reloads.count - Self.maxReloads) }
        }
    }

    private func add(_ refusal: Refusal) {
        state.withLockedValue { state in
            state.counts[refusal.stage.rawValue + "\u{0}" + refusal.reason + "\u{0}" + refusal.listener, default: 0] += 1
            if state.refusals.count < state.config.refusals {
                state.refusals.append(refusal)
            } else {
                state.refusals[state.next] = refusal
                state.next = (state.next + 1) % state.refusals.count
            }
        }
    }

    // MARK: reading

    package enum Order: String, Sendable {
        case recent, active
    }

    /// Clients of `listener` (all when nil) whose subject, issuer, serial, fingerprint or SANs contain `search`
    /// (case-insensitive), most recent or most active first, at most `limit`; and how many matched.
    package func clients(listener: String? = nil, search: String? = nil, order: Order = .recent, limit: Int = 100) -> (clients: [Client], matched: Int) {
        let needle = search?.lowercased().trimmingCharacters(in: .whitespaces) ?? ""
        let all = state.withLockedValue { Array($0.clients.values) }
        let matching = all.filter { client in
            guard listener == nil || client.listener == listener else { return false }
            guard !needle.isEmpty else { return true }
            return ([client.subject, client.issuer, client.serial, client.sha256, client.lastAddress] + client.sans).contains { $0.lowercased().contains(needle) }
        }
        let sorted = matching.sorted { a, b in
            switch order {
            case .recent: return a.lastSeen != b.lastSeen ? a.lastSeen > b.lastSeen : a.sha256 < b.sha256
            case .active: return a.requests != b.requests ? a.requests > b.requests : a.lastSeen > b.lastSeen
            }
        }
        return (Array(sorted.prefix(max(0, limit))), matching.count)
    }

    /// The latest refusals, newest first (at most `limit`), and every refusal since start counted by stage,
    /// reason and listener.
    package func refusals(limit: Int = 100) -> (latest: [Refusal], counts: [(stage: String, reason: String, listener: String, count: Int)]) {
        state.withLockedValue { state in
            let latest = Array(Self.ordered(state).reversed().prefix(max(0, limit)))
            let counts = state.counts.map { key, count in
                let parts = key.split(separator: "\u{0}", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
                return (stage: parts[0], reason: parts[1], listener: parts[2], count: count)
            }.sorted { $0.count != $1.count ? $0.count > $1.count : ($0.reason, $0.listener) < ($1.reason, $1.listener) }
            return (latest, counts)
        }
    }

    /// The reloads since start (the last 50), newest first.
    package func reloads() -> [Reload] { state.withLockedValue { $0.reloads.reversed() } }

    package var config: ConsoleConfig { state.withLockedValue { $0.config } }

    // MARK: helpers

    /// The ring in time order.
    private static func ordered(_ state: State) -> [Refusal] {
        Array(state.refusals[state.next...] + state.refusals[..<state.next])
    }

    /// Forgets the least recently seen clients until `keeping` are left (and an eighth more, so that a table that
    /// fills faster than `trim` runs does not sort on every new client).
    private static func evict(_ state: inout State, keeping: Int) {
        let target = max(0, keeping - keeping / 8)
        guard state.clients.count > target else { return }
        let oldest = state.clients.sorted { $0.value.lastSeen < $1.value.lastSeen }.prefix(state.clients.count - target)
        for (key, _) in oldest { state.clients.removeValue(forKey: key) }
    }

    private static func clip(_ text: String) -> String {
        let printable = String(String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? " " : $0 }))
        return printable.count > maxText ? String(printable.prefix(maxText)) + "…" : printable
    }
}
