import Foundation
import GatewayCore
import GatewayTooling
import XCTest

/// Plugins in C and Swift loaded with dlopen into the real gateway, chained per listener.
final class PluginChainTests: GatewayTestCase {

    private func start(_ listeners: String, admin: Bool = false) async throws {
        gateway = try await GatewayHarness(yaml: """
            \(admin ? "admin: { address: \"127.0.0.1:0\" }" : "")
            listeners:
            \(listeners)
            backends: [ { name: app, servers: [ { address: "127.0.0.1:\(backend.port)" } ] } ]
            """, in: pki.directory)
    }

    private func logged(_ text: String) async -> Bool {
        await gateway.logs.waitFor { $0.message.contains(text) } != nil
    }

    func testChainOrderHeadersDenialAndPerListenerConfig() async throws {
        let tagger = try PluginFixtures.build("tagger")
        try await start("""
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins:
                  - { library: \(tagger), config: { tag: p1 } }
                  - { library: \(PluginFixtures.swiftPlugin), config: { header: x-swift, value: hello } }
                  - { library: \(tagger), config: { tag: p2, deny_path: /forbidden } }
                routes: [ { backend: app } ]
              - name: other
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: optional
                  client_ca: ca.pem
                plugins:
                  - { library: \(tagger), config: { tag: p3 } }
                  - { library: \(PluginFixtures.swiftPlugin), config: { header: x-swift, value: other, require_certificate: true } }
                routes: [ { backend: app } ]
            """)
        let ok = try await TestClient.get(port: gateway.port("mtls"), tls: tls("valid"), path: "/hello", headers: ["X-Chain: client-says"])
        XCTAssertEqual(ok?.status, 200)
        let received = try XCTUnwrap(backend.requests.last).head.headers
        XCTAssertEqual(received.first(name: "x-chain"), "client-says,p1,p2", "plugin 1's header is visible to plugin 2, in order")
        XCTAssertEqual(received.first(name: "x-swift"), "hello")
        XCTAssertEqual(received.first(name: "x-p1-subject"), "CN=valid-client,OU=ops,O=Test,C=US")
        XCTAssertEqual(ok?.header("x-p1-response"), "1")
        XCTAssertEqual(ok?.header("x-p2-response"), "1")
        let completed = await logged("complete p1 status=200 answered_by=-")
        XCTAssertTrue(completed)

        let denied = try await TestClient.get(port: gateway.port("mtls"), tls: tls("valid"), path: "/forbidden")
        XCTAssertEqual(denied?.status, 403)
        XCTAssertEqual(denied?.text, "denied by p2\n")
        XCTAssertEqual(denied?.header("x-denied-by"), "p2")
        XCTAssertEqual(backend.requests.count, 1, "a plugin's answer stops the chain: nothing is forwarded")
        let deniedComplete = await logged("complete p1 status=403 answered_by=tagger")
        XCTAssertTrue(deniedComplete, "on_complete runs for entries before the one that answered")
        let deniedCompleteP2 = await logged("complete p2 status=403 answered_by=tagger")
        XCTAssertTrue(deniedCompleteP2, "and for the one that answered")

        let other = try await TestClient.get(port: gateway.port("other"), tls: tls("valid"), path: "/x")
        XCTAssertEqual(other?.status, 200)
        XCTAssertEqual(backend.requests.last?.head.headers.first(name: "x-chain"), "p3")
        XCTAssertEqual(backend.requests.last?.head.headers.first(name: "x-swift"), "other")
        let anonymous = try await TestClient.get(port: gateway.port("other"), tls: tls(nil), path: "/x")
        XCTAssertEqual(anonymous?.status, 401, "the Swift plugin answers for clients without a certificate")
        XCTAssertEqual(anonymous?.text, "client certificate required\n")
        XCTAssertEqual(backend.requests.count, 2)
    }

    func testConnectionHookSeesRejectedHandshakeReason() async throws {
        let tagger = try PluginFixtures.build("tagger")
        try await start("""
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins: [ { library: \(tagger), config: { tag: audit } } ]
                routes: [ { backend: app } ]
            """)
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: tls("expired"))
        let rejected = await logged("connection audit verify=FAILED:certificate_expired error=certificate 'CN=expired-client,C=US' expired at")
        XCTAssertTrue(rejected, gateway.logs.all.map(\.message).joined(separator: "\n"))
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: tls(nil))
        let missing = await logged("connection audit verify=FAILED:no_certificate")
        XCTAssertTrue(missing)
        _ = try await TestClient.get(port: gateway.port("mtls"), tls: tls("valid"))
        let accepted = await logged("connection audit verify=SUCCESS error=-")
        XCTAssertTrue(accepted)
    }

    func testHookErrorDeniesUnlessOnErrorContinue() async throws {
        let failing = try PluginFixtures.build("hook_error")
        try await start("""
              - { name: deny, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(failing) } ], routes: [ { backend: app } ] }
              - { name: cont, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(failing), on_error: continue } ], routes: [ { backend: app } ] }
            """)
        let denied = try await TestClient.get(port: gateway.port("deny"), tls: nil)
        XCTAssertEqual(denied?.status, 500)
        XCTAssertEqual(denied?.text, "request refused: plugin 'hook_error' failed\n")
        XCTAssertTrue(backend.requests.isEmpty)
        let record = await gateway.logs.waitFor { $0.message == "plugin failed" }
        XCTAssertEqual(record?.metadata["reason"], "on_request_headers returned -1 (GW_FAILED)")
        XCTAssertEqual(record?.metadata["listener"], "deny")
        let passed = try await TestClient.get(port: gateway.port("cont"), tls: nil)
        XCTAssertEqual(passed?.status, 200)
        XCTAssertEqual(backend.requests.count, 1)
    }

    func testInvalidHeaderFromPluginIsRefused() async throws {
        let bad = try PluginFixtures.build("bad_header")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(bad) } ], routes: [ { backend: app } ] }
            """)
        let response = try await TestClient.get(port: gateway.port("l"), tls: nil)
        XCTAssertEqual(response?.status, 500)
        XCTAssertTrue(backend.requests.isEmpty, "nothing forwarded")
        let record = await gateway.logs.waitFor { $0.message == "plugin failed" }
        XCTAssertEqual(record?.metadata["reason"], "on_request_headers returned -4 (GW_ERR_INVALID_HEADER)")
    }

    /// `add_headers` (ABI 1.2): all or none, in order, on the request and the response; refused elsewhere.
    func testAddHeadersAddsAllInOrderOrNone() async throws {
        let batch = try PluginFixtures.build("add_headers")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(batch) } ], routes: [ { backend: app } ] }
            """)
        let response = try await TestClient.get(port: gateway.port("l"), tls: nil, headers: ["X-Client: c"])
        XCTAssertEqual(response?.status, 200)
        XCTAssertEqual(response?.header("x-batch-response"), "1")
        let received = try XCTUnwrap(backend.requests.last).head.headers
        XCTAssertEqual(received.first(name: "x-add-statuses"), "-4,-1,0,0", "bad header, NULL list, empty batch, good batch")
        XCTAssertFalse(received.contains(name: "x-bad-1"), "a batch with a bad header adds none of it")
        XCTAssertFalse(received.contains(name: "x-bad-2"))
        let names = received.map { $0.name.lowercased() }
        let batchAt = try XCTUnwrap(names.firstIndex(of: "x-batch-1"))
        XCTAssertEqual(Array(names[batchAt..<(batchAt + 4)]), ["x-batch-1", "x-batch-2", "x-batch-3", "x-add-statuses"])
        XCTAssertGreaterThan(batchAt, try XCTUnwrap(names.firstIndex(of: "x-client")), "after the client's headers")
        XCTAssertEqual(received.first(name: "X-Batch-2"), "")
        XCTAssertEqual(received.first(name: "x-batch-3"), "three, 3")
        let late = await logged("add_headers in on_complete: -5")
        XCTAssertTrue(late, "on_complete may not add headers (GW_ERR_WRONG_PHASE)")
    }

    /// Header sets (ABI 1.5): made in `create`, refused with the right status when a header or owned name
    /// breaks the rules; applied to a request, a set removes every spelling of the names it owns, the client's
    /// (any case, `_` for `-`) and an earlier plugin's, then adds its headers; it also applies to the response,
    /// and is refused in on_complete.
    func testHeaderSetStripsOwnedNamesThenAdds() async throws {
        let batch = try PluginFixtures.build("add_headers")
        let sets = try PluginFixtures.build("header_set")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(batch) }, { library: \(sets) } ], routes: [ { backend: app } ] }
            """)
        let forged = ["X_Set_Owned: forged-1", "x-set-owned: forged-2", "X-SET-ID: forged-3", "x_set_id: forged-4", "X-Batch-1: forged-5", "x-other: kept"]
        for _ in 0..<2 {
            let response = try await TestClient.get(port: gateway.port("l"), tls: nil, headers: forged)
            XCTAssertEqual(response?.status, 200)
            let names = response?.headers.map { $0.0.lowercased() } ?? []
            XCTAssertEqual(names.filter { $0 == "x-set-id" }.count, 1, "the set applies to the response too, once: \(names)")
            XCTAssertEqual(response?.header("x-set-id"), "fixture")
            XCTAssertEqual(response?.header("x-set-2"), "two")
            XCTAssertFalse(names.contains("x-backend"), "the backend's x-backend is owned (as X_Backend): stripped")
            XCTAssertFalse(names.contains("x-batch-response"), "what an earlier plugin added to the response under an owned name goes")
        }
        let received = try XCTUnwrap(backend.requests.last).head.headers
        XCTAssertEqual(received.first(name: "x-set-statuses"), "-4,1,-1,-4,-1,0", "CR LF value (out cleared), NULL list, bad owned name, NULL set, the set")
        XCTAssertEqual(received["x-set-id"], ["fixture"], "every client spelling stripped, then the set's value")
        XCTAssertFalse(received.contains(name: "x-set-owned"))
        XCTAssertFalse(received.contains(name: "x_set_owned"))
        XCTAssertFalse(received.contains(name: "x_set_id"))
        XCTAssertFalse(received.contains(name: "x-batch-1"), "an owned name an earlier plugin added goes too")
        XCTAssertEqual(received.first(name: "x-batch-3"), "three, 3", "what the earlier plugin added under other names stays")
        XCTAssertEqual(received.first(name: "X-Set-2"), "two")
        XCTAssertEqual(received.first(name: "x-other"), "kept")
        let late = await logged("header_set_add in on_complete: -5")
        XCTAssertTrue(late, "on_complete may not add headers (GW_ERR_WRONG_PHASE)")

        // A reload makes the new instances (and their sets) before it destroys the old ones, which release
        // theirs: each instance's set is its own, so the new one still adds.
        for _ in 0..<2 {
            let outcome = await gateway.reload()
            XCTAssertTrue(outcome.success, "\(outcome.errors)")
            let response = try await TestClient.get(port: gateway.port("l"), tls: nil, headers: forged)
            XCTAssertEqual(response?.status, 200)
            XCTAssertEqual(response?.headers("x-set-id"), ["fixture"])
            XCTAssertEqual(try XCTUnwrap(backend.requests.last).head.headers["x-set-id"], ["fixture"])
        }
    }

    /// Several attributes in one call (ABI 1.6 `get_attributes`): each entry is what the single read answers
    /// (string, integer, absent, unknown, an integer past index 0, a completion attribute too early), in the
    /// request and completion phases; a NULL list and a stale handle are refused with no entry written.
    func testAttributeBatchReadsWhatSingleReadsRead() async throws {
        let library = try PluginFixtures.build("attribute_batch")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(library) } ], routes: [ { backend: app } ] }
            """)
        let response = try await TestClient.get(port: gateway.port("l"), tls: nil, path: "/batch/p?q=1", host: "batch.example")
        XCTAssertEqual(response?.status, 200)
        let received = try XCTUnwrap(backend.requests.last?.head.headers.first(name: "x-batch"))
        XCTAssertEqual(
            received,
            "method=GET path=/batch/p host=batch.example query=0 unknown=-2 port1=-2 early=-2 same=1 null=-1 empty=0 stale=-3 untouched=1"
        )
        let complete = await gateway.logs.waitFor { $0.message.contains("batch complete:") }?.message
        XCTAssertEqual(complete?.hasPrefix("batch complete: status=200 backend=127.0.0.1:\(backend.port) sent="), true, complete ?? "no line")
        XCTAssertEqual(complete?.hasSuffix(" same=1"), true, "each entry as its single read: \(complete ?? "")")
        XCTAssertNil(backend.requests.last?.head.headers.first(name: "x-batch-cert"), "no certificate on this listener")
        let plain = await logged("batch connection: listener=l port=1 request_id=-2 same=1")
        XCTAssertTrue(plain, "with a connection handle: no request attributes")

        // With a client certificate: the certificate's attributes, the indexed ones past their last value too.
        await gateway.stop()
        try await start("""
              - name: m
                address: "127.0.0.1:0"
                tls: { certificates: [ { cert: server.pem, key: server.key } ], client_auth: required, client_ca: ca.pem }
                plugins: [ { library: \(library) } ]
                routes: [ { backend: app } ]
            """)
        let mtls = try await TestClient.get(port: gateway.port("m"), tls: tls("valid"), path: "/cert")
        XCTAssertEqual(mtls?.status, 200)
        XCTAssertEqual(
            backend.requests.last?.head.headers.first(name: "x-batch-cert"), "subject=CN=valid-client,OU=ops,O=Test,C=US dns0=client.test same=1"
        )
        let connection = await logged("batch connection: listener=m port=1 request_id=-2 same=1")
        XCTAssertTrue(connection)
    }

    /// Per-connection data (ABI 1.4): each instance keeps its own record per connection across keep-alive
    /// requests, and the host releases every record exactly once: when a reload moves the connection on to the
    /// new instances (before the request runs on them), and when the connection ends.
    func testConnectionDataIsKeptPerConnectionAndInstanceAndReleasedOnce() async throws {
        let library = try PluginFixtures.build("connection_data")
        try await start("""
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                plugins: [ { library: \(library), config: { header: x-cd-a } }, { library: \(library), config: { header: x-cd-b } } ]
                routes: [ { backend: app } ]
            """)
        func record(_ name: String) throws -> [String: Int] {
            let value = try XCTUnwrap(backend.requests.last?.head.headers.first(name: name), "\(name) reached the backend")
            var fields: [String: Int] = [:]
            for pair in value.split(separator: " ") {
                let parts = pair.split(separator: "=")
                fields[String(parts[0])] = Int(parts[1])
            }
            return fields
        }
        func get(_ client: TestClient, _ path: String) async throws {
            try await client.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200, path)
        }

        let client = try await TestClient.connect(port: gateway.port("l"), tls: nil)
        try await get(client, "/1")
        let a1 = try record("x-cd-a"), b1 = try record("x-cd-b")
        XCTAssertEqual(a1["first_get"], -2, "nothing kept before the connection's first request")
        XCTAssertEqual(a1["requests"], 1)
        XCTAssertNotEqual(a1["made"], b1["made"], "each instance keeps its own record")
        let releasedBefore = try XCTUnwrap(a1["released"])
        for n in 2...3 {
            try await get(client, "/\(n)")
            let a = try record("x-cd-a"), b = try record("x-cd-b")
            XCTAssertEqual(a["first_get"], 0, "kept")
            XCTAssertEqual(a["made"], a1["made"], "the same record on the same connection")
            XCTAssertEqual(b["made"], b1["made"])
            XCTAssertEqual(a["requests"], n)
            XCTAssertEqual(b["requests"], n)
            XCTAssertEqual(a["released"], releasedBefore, "nothing released while the connection lives")
        }

        // A reload: the connection's next request moves it on to the new instances, which keep their own records;
        // the old instances' two are released before the request runs.
        let outcome = await gateway.reload()
        XCTAssertTrue(outcome.success, "\(outcome.errors)")
        try await get(client, "/4")
        let a4 = try record("x-cd-a")
        XCTAssertEqual(a4["first_get"], -2, "the new instance has no record yet")
        XCTAssertEqual(a4["requests"], 1)
        XCTAssertEqual(a4["released"], releasedBefore + 2, "the old instances' records, once each")

        // The connection ends: its two records go. Every new connection's request then finds all records of the
        // closed ones released (B runs after A, so its own connection's two are the only ones kept).
        await client.close()
        var settled: [String: Int] = [:]
        for _ in 0..<100 {
            let probe = try await TestClient.connect(port: gateway.port("l"), tls: nil)
            try await get(probe, "/probe")
            settled = try record("x-cd-b")
            await probe.close()
            if let released = settled["released"], let total = settled["total"], released >= total - 2 { break }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        XCTAssertEqual(settled["released"], try XCTUnwrap(settled["total"]) - 2, "every record of the closed connections released once")
        let missing = await gateway.logs.waitFor(timeout: 0.2) { $0.message.contains("connection data missing") }
        XCTAssertNil(missing, "on_complete found the record of its request's connection")
        // The old instances were destroyed once the moved connection stopped counting for their configuration;
        // their records had gone before.
        let late = await gateway.logs.waitFor(timeout: 0.5) { $0.message.contains("released after its instance's destroy") }
        XCTAssertNil(late, "a record released after its instance's destroy")
    }

    func testStaleHandleGetsAnErrorNotACrash() async throws {
        let stale = try PluginFixtures.build("stale_handle")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(stale) } ], routes: [ { backend: app } ] }
            """)
        for _ in 0..<2 {
            let response = try await TestClient.get(port: gateway.port("l"), tls: nil)
            XCTAssertEqual(response?.status, 200)
        }
        let warned = await logged("stale handle status -3")
        XCTAssertTrue(warned)
    }

    func testBlockingPluginRunsOffTheEventLoopWithTimeout() async throws {
        let slow = try PluginFixtures.build("slow_blocking")
        try await start("""
              - { name: fast, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(slow), config: { sleep_ms: 50 }, timeout_ms: 2000 } ], routes: [ { backend: app } ] }
              - { name: late, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(slow), config: { sleep_ms: 1500 }, timeout_ms: 100 } ], routes: [ { backend: app } ] }
            """)
        let ok = try await TestClient.get(port: gateway.port("fast"), tls: nil)
        XCTAssertEqual(ok?.status, 200)
        XCTAssertEqual(backend.requests.last?.head.headers.first(name: "x-blocking"), "done")
        let late = try await TestClient.get(port: gateway.port("late"), tls: nil)
        XCTAssertEqual(late?.status, 500)
        XCTAssertEqual(backend.requests.count, 1)
        let timedOut = await gateway.logs.waitFor { $0.message == "plugin timed out" }
        XCTAssertEqual(timedOut?.metadata["plugin"], "slow_blocking")
    }

    /// A blocking plugin between two that run inline: the first runs on the event loop, the blocking one on a
    /// worker with the first's edit in its copy, the last after that copy's edits were taken over (the chain
    /// resumes after the blocking hook); both inline entries' response hooks run. Twice on one connection.
    func testABlockingPluginBetweenInlineOnesSeesAndKeepsTheChainsEdits() async throws {
        let tagger = try PluginFixtures.build("tagger")
        let slow = try PluginFixtures.build("slow_blocking")
        try await start("""
              - name: l
                address: "127.0.0.1:0"
                protocol: http
                plugins:
                  - { library: \(tagger), config: { tag: p1 } }
                  - { library: \(slow), config: { sleep_ms: 20 }, timeout_ms: 2000 }
                  - { library: \(tagger), config: { tag: p2 } }
                routes: [ { backend: app } ]
            """)
        let client = try await TestClient.connect(port: gateway.port("l"), tls: nil)
        defer { Task { await client.close() } }
        for n in 1...2 {
            try await client.send("GET /\(n) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            let response = await client.readResponse()
            XCTAssertEqual(response?.status, 200)
            XCTAssertEqual(response?.header("x-p1-response"), "1")
            XCTAssertEqual(response?.header("x-p2-response"), "1")
            let received = try XCTUnwrap(backend.requests.last).head
            XCTAssertEqual(received.uri, "/\(n)")
            XCTAssertEqual(received.headers.first(name: "x-chain"), "p1,p2", "the last plugin saw the first's edit, kept through the blocking call")
            XCTAssertEqual(received.headers.first(name: "x-blocking"), "done")
        }
    }

    /// Pipelined requests through a plugin that runs on the worker pool: each waits for the one before it,
    /// bodies stay with their requests, and the answers come back in order.
    func testPipelinedRequestsThroughABlockingPluginKeepTheirOrder() async throws {
        let slow = try PluginFixtures.build("slow_blocking")
        try await start("""
              - { name: fast, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(slow), config: { sleep_ms: 100 }, timeout_ms: 2000 } ], routes: [ { backend: app } ] }
            """)
        let client = try await TestClient.connect(port: gateway.port("fast"), tls: nil)
        defer { Task { await client.close() } }
        try await client.send(
            "POST /echo/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"
                + "GET /two HTTP/1.1\r\nHost: a\r\n\r\n"
                + "POST /echo/3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n")
        var bodies: [String] = []
        for _ in 0..<3 {
            guard let response = await client.readResponse() else { break }
            XCTAssertEqual(response.status, 200)
            bodies.append(response.text)
        }
        XCTAssertEqual(bodies, ["one", "ok backend", "three"])
        XCTAssertEqual(backend.requests.map(\.head.uri), ["/echo/1", "/two", "/echo/3"])
        XCTAssertEqual(backend.requests.map { $0.head.headers.first(name: "x-blocking") }, ["done", "done", "done"])
    }

    /// A plugin that blocks the event loop (it does not declare itself blocking) stalls the proxy, but not the
    /// admin listener, which runs on its own thread: /healthz and /metrics answer while every request is
    /// still held by the plugin.
    func testAPluginThatStallsEveryLoopDoesNotStallTheAdminListener() async throws {
        let stall = try PluginFixtures.build("stall")
        try await start("""
              - { name: l, address: "127.0.0.1:0", protocol: http, plugins: [ { library: \(stall), config: { sleep_ms: 1500 } } ], routes: [ { backend: app } ] }
            """, admin: true)
        // curl processes, not the test's own client: that one runs on the same event loops as this in-process
        // gateway, which the plugin stalls. Four requests: every loop of the group gets at least one, and
        // each stays stalled for 1.5 s per request it holds.
        var stalled: [Process] = []
        for index in 0..<4 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            process.arguments = ["-sS", "-m", "30", "-o", "/dev/null", "http://127.0.0.1:\(gateway.port("l"))/stalled/\(index)"]
            try process.run()
            stalled.append(process)
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        for path in ["/healthz", "/metrics"] {
            let result = try GatewayProcess.runCommand("/usr/bin/curl", ["-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(gateway.adminPort)\(path)"])
            XCTAssertEqual(result.stdout, "200", "\(path): \(result.stderr)")
        }
        XCTAssertEqual(stalled.filter { !$0.isRunning }.count, 0, "the admin listener answered while every proxied request was still stalled")
        for process in stalled {
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "the stalled request completes")
        }
        XCTAssertEqual(backend.requests.count, 4)
    }

    func testAnAuditAfterTheAuthorizerStillRecordsItsDenials() async throws {
        // The log phase: on_complete runs on every entry, so an observer placed after a plugin that answers
        // sees the answer (it used to see only what was forwarded).
        let tagger = try PluginFixtures.build("tagger")
        let audit = pki.path("after-authz.log")
        let library = Bundle.main.bundleURL.appendingPathComponent("libAudit.so").path
        try await start("""
              - name: mtls
                address: "127.0.0.1:0"
                tls:
                  certificates: [ { cert: server.pem, key: server.key } ]
                  client_auth: required
                  client_ca: ca.pem
                plugins:
                  - { library: \(tagger), config: { tag: authz, deny_path: /forbidden } }
                  - { library: \(library), config: { path: \(audit), fsync: always } }
                routes: [ { backend: app } ]
            """)
        let denied = try await TestClient.get(port: gateway.port("mtls"), tls: tls("valid"), path: "/forbidden")
        XCTAssertEqual(denied?.status, 403)
        let allowed = try await TestClient.get(port: gateway.port("mtls"), tls: tls("valid"), path: "/fine")
        XCTAssertEqual(allowed?.status, 200)
        await gateway.stop()
        gateway = nil
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(lines.count, 2, "one line per request, the denied one included")
        let deniedLine = try XCTUnwrap(lines.first { $0["path"] as? String == "/forbidden" })
        XCTAssertEqual(deniedLine["status"] as? Int, 403)
        XCTAssertEqual(deniedLine["decision"] as? String, "answered")
        XCTAssertEqual(deniedLine["answered_by"] as? String, "tagger")
        XCTAssertEqual(deniedLine["subject"] as? String, "CN=valid-client,OU=ops,O=Test,C=US")
        let allowedLine = try XCTUnwrap(lines.first { $0["path"] as? String == "/fine" })
        XCTAssertEqual(allowedLine["decision"] as? String, "forwarded")
    }
}
