import Foundation
import XCTest

/// The allocation budget of the keep-alive request path, counted the way SwiftNIO's allocation-counter tests
/// count: the real `gateway run` process (unprivileged, the real chain ClientCertHeaders + Audit, as the
/// benchmark runs it) with Tests/AllocationCounter/alloc_counter.c preloaded, which counts every malloc,
/// calloc, realloc and aligned allocation. The test reads the count before and after a run of keep-alive
/// mTLS requests on one connection and fails when the allocations per request grow above the budget.
///
/// The budget is the count measured when it was last lowered plus a margin of one allocation per request (for
/// amortised growth: a log buffer, a metrics label cache). Lower it when the request path allocates less;
/// raising it needs a reason in the commit message.
final class AllocationBudgetTests: GatewayTestCase {
    /// Heap allocations per proxied keep-alive request, whole process (event loop, Audit's writer thread).
    /// Measured 9.07 once ClientCertHeaders added a header set (ABI 1.5: the request takes the set's bytes by
    /// reference, where `add_headers` laid its lines out in a new block per request).
    /// Measured 10.07 once the client's request head stayed bytes (`ClientRequestHead`: one field block instead
    /// of NIO's head storage and its list of String pairs; the target's String as before).
    /// Measured 12.07 once the bundled plugins kept what stays the same for a connection (ClientCertHeaders'
    /// header list, so no joined cipher list per request) and Audit wrote its line through a pointer.
    /// Measured 17.07 once the usual upstream head was written in one pass (no `HTTPHeaders`, no list of pairs).
    /// Measured 19.08 once the end of a response went without a write promise (ours and the one NIOSSL made
    /// for the encrypted write: two futures, their callback lists and closures, NIOSSL's promise array).
    /// Measured 26.07 once a backend's response head stayed bytes (no `HTTPHeaders`, no String per field) and a
    /// small response left as one write; 29.09 before. Measured 29.06 (29.02 of them on the event loop) once the headers plugins add went to the backend as
    /// bytes (one buffer per request instead of a list of String pairs) and the upstream head stopped crossing
    /// the pipeline boxed in a `NIOAny`; 30.1 before. It used to be 30, 32, 34 or 36 from process to process:
    /// the host's string cache was direct-mapped, and which identity strings collided depended on the heap
    /// layout; the breakdown by thread printed below is how that was found.
    static let budget = 10.0
    static let warmUp = 100
    static let measured = 600

    func testAKeepAliveRequestStaysWithinItsAllocationBudget() async throws {
        let counter = pki.path("libAllocationCounter.so")
        let compiled = try GatewayProcess.runCommand("/usr/bin/cc", [
            "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", counter,
            "\(PluginFixtures.packageRoot)/Tests/AllocationCounter/alloc_counter.c",
        ])
        XCTAssertEqual(compiled.status, 0, compiled.stderr)
        let port = try unusedPort(), adminPort = try unusedPort()
        let countFile = pki.path("allocations.count")
        let gateway = try await runGateway(
            mtlsConfig(port: port, adminPort: adminPort, plugins: [
                "{ library: libClientCertHeaders.so, config: {} }", "{ library: libAudit.so, config: { path: \(pki.path("audit.log")) } }",
            ]),
            name: "allocations", adminPort: adminPort, environment: ["LD_PRELOAD": counter, "ALLOC_COUNTER_OUT": countFile]
        )

        let client = try await TestClient.connect(port: port, tls: pki.clientTLS("valid"))
        func requests(_ count: Int) async throws {
            for index in 0..<count {
                try await client.send("GET /items/\(index)?q=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: budget\r\nAccept: */*\r\n\r\n")
                let response = await client.readResponse()
                XCTAssertEqual(response?.status, 200, "request \(index); log:\n\(gateway.log)")
                guard response?.status == 200 else { throw PluginFixtures.FixtureError(message: "request \(index) failed") }
            }
        }
        /// The counter's report: the total and the count of every thread, by thread id.
        func allocations() async throws -> (total: Int, threads: [Int: Int]) {
            try? FileManager.default.removeItem(atPath: countFile)
            gateway.signal(SIGUSR2)
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if let text = try? String(contentsOfFile: countFile, encoding: .utf8) {
                    var total: Int?, threads: [Int: Int] = [:]
                    for line in text.split(separator: "\n") {
                        let fields = line.split(separator: " ")
                        guard fields.count == 2, let value = Int(fields[1]) else { continue }
                        if fields[0] == "total" { total = value } else if let thread = Int(fields[0]) { threads[thread] = value }
                    }
                    if let total { return (total, threads) }
                }
                try await Task.sleep(nanoseconds: 10_000_000)
            }
            throw PluginFixtures.FixtureError(message: "the allocation counter did not answer; is it preloaded? log:\n\(gateway.log)")
        }
        /// The name of a thread of the gateway (read while the process runs), for the breakdown.
        func threadName(_ thread: Int) -> String {
            let name = try? String(contentsOfFile: "/proc/\(gateway.process.processIdentifier)/task/\(thread)/comm", encoding: .utf8)
            return name?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "exited"
        }

        try await requests(Self.warmUp)
        let before = try await allocations()
        try await requests(Self.measured)
        let after = try await allocations()
        await client.close()

        let perRequest = Double(after.total - before.total) / Double(Self.measured)
        print("allocations per keep-alive request: \(String(format: "%.2f", perRequest)) (budget \(Self.budget))")
        for (thread, count) in after.threads.sorted(by: { $0.key < $1.key }) where count != before.threads[thread] ?? 0 {
            let delta = Double(count - (before.threads[thread] ?? 0)) / Double(Self.measured)
            print("  thread \(thread) \(threadName(thread)): \(String(format: "%.2f", delta))")
        }
        XCTAssertGreaterThan(perRequest, 1, "the counter counts (a proxied request cannot allocate nothing today)")
        XCTAssertLessThanOrEqual(perRequest, Self.budget, "the keep-alive request path allocates more than its budget")
        XCTAssertEqual(gateway.terminate(), 0)
        let audit = try String(contentsOfFile: pki.path("audit.log"), encoding: .utf8)
        XCTAssertEqual(audit.split(separator: "\n").count, Self.warmUp + Self.measured, "every request audited")
    }
}
