import GatewayCore
import NIOCore
import XCTest

/// The reload's socket decisions, without a socket.
final class ReloadPlanTests: XCTestCase {
    private func address(_ port: Int) throws -> SocketAddress { try SocketAddress(ipAddress: "127.0.0.1", port: port) }

    func testKeepsBindsAndDrainsByNameAndAddress() throws {
        let current = ["api": try address(8443), "old": try address(8444), "moved": try address(8445)]
        let plan = ReloadPlan(current: current, next: [
            ("api", try address(8443)),     // unchanged: keeps its socket
            ("moved", try address(9445)),   // new address: a new socket, the old one drains
            ("new", try address(8446)),     // added
        ])
        XCTAssertEqual(plan.keep, ["api"])
        XCTAssertEqual(plan.bind, ["moved", "new"])
        XCTAssertEqual(plan.drain, ["moved", "old"])
    }

    func testAnUnchangedConfigurationTouchesNoSocket() throws {
        let current = ["a": try address(1), "b": try address(2)]
        let plan = ReloadPlan(current: current, next: [("a", try address(1)), ("b", try address(2))])
        XCTAssertEqual(plan, ReloadPlan(current: [:], next: []).with(keep: ["a", "b"]))
    }

    func testARenamedListenerOnTheSameAddressGetsANewSocket() throws {
        // A new name is a new listener: binding its address would fail while the old socket holds it, which
        // fails the reload and keeps the old configuration (never half of each).
        let plan = ReloadPlan(current: ["a": try address(1)], next: [("b", try address(1))])
        XCTAssertEqual(plan.bind, ["b"])
        XCTAssertEqual(plan.drain, ["a"])
        XCTAssertEqual(plan.keep, [])
    }
}

extension ReloadPlan {
    fileprivate func with(keep: [String]) -> ReloadPlan {
        var copy = self
        copy.keep = keep
        return copy
    }
}
