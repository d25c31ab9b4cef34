import GatewayCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// BackendDiscovery's rounds with a scripted resolver: which servers a backend has after each answer,
/// including partial answers (one family failed), failures, oversized answers, duplicate entries and a round
/// after stop.
final class BackendDiscoveryRoundTests: XCTestCase {
    /// Answers each resolve with the next scripted result.
    private final class ScriptedResolver: HostResolver {
        let script = NIOLockedValueBox<[Result<ResolvedHost, any Error>]>([])
        func resolve(_ host: String, family: DNSFamily, on eventLoop: any EventLoop) -> EventLoopFuture<ResolvedHost> {
            let next = script.withLockedValue { $0.isEmpty ? .failure(HostResolutionError(host: host, reason: "script empty")) : $0.removeFirst() }
            return eventLoop.makeCompletedFuture(next)
        }
    }

    private func entry(_ address: String) -> BackendServerEntry {
        let (host, port) = RuntimeCompiler.splitHostPort(address)!
        return BackendServerEntry(address: address, host: host, port: port, weight: 1, ipAddress: try? SocketAddress(ipAddress: host, port: port))
    }

    private func addresses(_ backend: BackendGroup) -> [String] { backend.servers.map(\.address) }

    func testRoundsFollowAnswersAndKeepWhatFailed() async throws {
        let metrics = GatewayMetrics()
        let backend = BackendGroup(
            name: "app", entries: [entry("api.test:80"), entry("10.9.9.9:80"), entry("api.test:80")], balance: .roundRobin, tlsContext: nil,
            serverName: nil, connectTimeout: .seconds(1), responseTimeout: .seconds(1), metrics: metrics
        )
        let resolver = ScriptedResolver()
        let discovery = BackendDiscovery(backend: backend, resolver: resolver, eventLoop: MultiThreadedEventLoopGroup.singleton.next(),
                                         logger: .init(label: "test"), metrics: metrics)
        func round(_ result: Result<ResolvedHost, any Error>) async throws -> TimeAmount {
            resolver.script.withLockedValue { $0 = [result] }
            return try await discovery.resolveNow().get()
        }
        XCTAssertEqual(addresses(backend), ["10.9.9.9:80"], "IP entries are servers before any round")

        var wait = try await round(.success(ResolvedHost(addresses: ["2001:db8::1", "10.0.0.1"], ttl: .seconds(5))))
        XCTAssertEqual(addresses(backend), ["10.0.0.1:80", "[2001:db8::1]:80", "10.9.9.9:80"], "a name listed twice is one set of servers")
        XCTAssertEqual(wait, .seconds(5), "the TTL, below resolve_interval")
        let kept = backend.servers[1]

        // The AAAA query failed, the A query answered: the IPv6 server stays, the IPv4 one follows the answer.
        wait = try await round(.success(ResolvedHost(addresses: ["10.0.0.2"], ttl: .seconds(0), failedFamilies: [.ipv6])))
        XCTAssertEqual(addresses(backend), ["10.0.0.2:80", "[2001:db8::1]:80", "10.9.9.9:80"])
        XCTAssertTrue(backend.servers[1] === kept, "a known address keeps its server (health, pool)")
        XCTAssertEqual(wait, BackendDiscovery.minimumInterval, "a TTL of 0 waits the minimum")

        // A failed resolution keeps every last known address.
        wait = try await round(.failure(HostResolutionError(host: "api.test", reason: "timeout")))
        XCTAssertEqual(addresses(backend), ["10.0.0.2:80", "[2001:db8::1]:80", "10.9.9.9:80"])
        XCTAssertEqual(wait, .seconds(10), "resolve_interval")

        // An answer with more addresses than servers allowed.
        let many = (0..<100).map { "10.1.\($0 / 256).\($0 % 256)" }
        _ = try await round(.success(ResolvedHost(addresses: many, ttl: nil)))
        XCTAssertEqual(backend.servers.count, BackendDiscovery.maxAddressesPerName + 1)

        // The series of addresses that left are gone; the ones in use are there.
        var buffer: [UInt8] = []
        metrics.registry.emit(into: &buffer)
        let exposition = String(decoding: buffer, as: UTF8.self)
        XCTAssertFalse(exposition.contains("api.test:80/10.0.0.2:80"), "removed server's series")
        XCTAssertTrue(exposition.contains("server=\"api.test:80/10.1.0.0:80\""), exposition)

        // After stop, a round changes nothing.
        discovery.stop()
        let before = backend.servers
        _ = try await round(.success(ResolvedHost(addresses: ["10.0.0.3"], ttl: nil)))
        XCTAssertTrue(zip(before, backend.servers).allSatisfy { $0 === $1 } && before.count == backend.servers.count)
    }

    /// Two generations of a reload share series: one dropping an address keeps the series while the other
    /// still has a server there; an IP listed twice keeps both servers and its series.
    func testSeriesLiveWhileAnyGenerationUsesThem() async throws {
        let metrics = GatewayMetrics()
        func group() -> BackendGroup {
            BackendGroup(name: "app", entries: [entry("api.test:80"), entry("10.9.9.9:80"), entry("10.9.9.9:80")], balance: .roundRobin,
                         tlsContext: nil, serverName: nil, connectTimeout: .seconds(1), responseTimeout: .seconds(1), metrics: metrics)
        }
        func series() -> String {
            var buffer: [UInt8] = []
            metrics.registry.emit(into: &buffer)
            return String(decoding: buffer, as: UTF8.self)
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let old = group(), new = group()
        let oldResolver = ScriptedResolver(), newResolver = ScriptedResolver()
        let oldDiscovery = BackendDiscovery(backend: old, resolver: oldResolver, eventLoop: loop, logger: .init(label: "test"), metrics: metrics)
        let newDiscovery = BackendDiscovery(backend: new, resolver: newResolver, eventLoop: loop, logger: .init(label: "test"), metrics: metrics)
        oldResolver.script.withLockedValue { $0 = [.success(ResolvedHost(addresses: ["10.0.0.1", "10.0.0.2"], ttl: nil))] }
        _ = try await oldDiscovery.resolveNow().get()
        XCTAssertEqual(old.servers.count, 4, "two addresses and the IP listed twice")
        new.adoptAddresses(from: old)
        XCTAssertEqual(Set(new.servers.map(\.address)), ["10.0.0.1:80", "10.0.0.2:80", "10.9.9.9:80"])

        // The old generation drops 10.0.0.2: the new one still has a server there, so its series stay.
        oldResolver.script.withLockedValue { $0 = [.success(ResolvedHost(addresses: ["10.0.0.1"], ttl: nil))] }
        _ = try await oldDiscovery.resolveNow().get()
        XCTAssertEqual(old.servers.map(\.address), ["10.0.0.1:80", "10.9.9.9:80", "10.9.9.9:80"])
        XCTAssertFalse(old.servers[1] === old.servers[2], "an IP listed twice keeps both of its servers")
        XCTAssertTrue(series().contains("server=\"api.test:80/10.0.0.2:80\""))
        // Adopting again just before the swap follows the old generation's latest answer.
        new.adoptAddresses(from: old)
        XCTAssertEqual(new.servers.map(\.address).sorted(), ["10.0.0.1:80", "10.9.9.9:80", "10.9.9.9:80"])
        XCTAssertFalse(series().contains("server=\"api.test:80/10.0.0.2:80\""), "no generation has 10.0.0.2 any more")

        // The old generation is torn down: the new one still uses 10.0.0.1's series.
        oldDiscovery.stop()
        old.shutdown()
        XCTAssertTrue(series().contains("server=\"api.test:80/10.0.0.1:80\""))
        XCTAssertTrue(series().contains("server=\"10.9.9.9:80\""), "IP entries' series stay, as across reloads")
        newResolver.script.withLockedValue { $0 = [.success(ResolvedHost(addresses: ["10.0.0.3"], ttl: nil))] }
        _ = try await newDiscovery.resolveNow().get()
        XCTAssertFalse(series().contains("server=\"api.test:80/10.0.0.1:80\""))
        XCTAssertTrue(series().contains("server=\"api.test:80/10.0.0.3:80\""))
    }

    /// The next round's time is readable (a reload's new generation starts its rounds then).
    func testTheNextRoundsTimeIsKnown() async throws {
        let backend = BackendGroup(name: "app", entries: [entry("api.test:80")], balance: .roundRobin, tlsContext: nil, serverName: nil,
                                   connectTimeout: .seconds(1), responseTimeout: .seconds(1), metrics: GatewayMetrics())
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let discovery = BackendDiscovery(backend: backend, resolver: ScriptedResolver(), eventLoop: loop, logger: .init(label: "test"), metrics: GatewayMetrics())
        XCTAssertNil(discovery.timeUntilNextRound)
        discovery.start(after: .seconds(30))
        try await loop.submit {}.get()
        let left = try XCTUnwrap(discovery.timeUntilNextRound)
        XCTAssertTrue(left <= .seconds(30) && left > .seconds(20), "\(left)")
        discovery.stop()
    }
}
