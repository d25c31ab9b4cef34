import GatewayCore
import NIOCore
import NIOHTTP1
import XCTest

/// Every rule of the request path, without a socket: events go into `ProxyStateMachine`, actions come out.
final class ProxyStateMachineTests: XCTestCase {
    typealias Machine = ProxyStateMachine
    typealias Action = ProxyStateMachine.Action

    private let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private let timeout = TimeAmount.seconds(60)

    private func machine(maxBody: Int64 = 1_000_000, chunkedBuffer: Int = 64) -> Machine {
        Machine(limits: .init(maxBodyBytes: maxBody, chunkedBufferBytes: chunkedBuffer))
    }

    private func facts(
        keepAlive: Bool = true, hasBody: Bool = false, chunked: Bool = false, expectsContinue: Bool = false, http10: Bool = false, head: Bool = false
    ) -> Machine.RequestFacts {
        .init(keepAlive: keepAlive, hasBody: hasBody, chunked: chunked, expectsContinue: expectsContinue, isHTTP10: http10, isHEAD: head)
    }

    private func bytes(_ count: Int) -> ByteBuffer { ByteBuffer(repeating: UInt8(ascii: "x"), count: count) }

    /// A head without plugins, routed to server `server` of `count`: returns the attempt id.
    private func dispatched(_ m: inout Machine, _ f: Machine.RequestFacts? = nil, server: Int = 0, count: Int = 2, file: StaticString = #filePath, line: UInt = #line) -> UInt64 {
        XCTAssertEqual(m.requestHead(f ?? facts(), runsPlugins: false), .dispatch, file: file, line: line)
        guard case .startAttempt(let attempt, let index, _) = m.dispatch(to: .server(index: server, serverCount: count, responseTimeout: timeout)) else {
            XCTFail("no attempt", file: file, line: line)
            return 0
        }
        XCTAssertEqual(index, server, file: file, line: line)
        return attempt
    }

    // MARK: one request, keep-alive

    func testAGetGoesToItsServerAndTheConnectionWaitsForTheNextHead() {
        var m = machine()
        let attempt = dispatched(&m)
        XCTAssertEqual(m.attached(attempt: attempt, reused: false, now: now), .sendRequest([], armResponseTimer: nil))
        // The response timer starts when the whole request is with the backend, not before.
        XCTAssertEqual(m.requestEnd(now: now), .forwardEnd(armResponseTimer: now + timeout))
        XCTAssertEqual(m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false), .writeResponseHead(close: false))
        XCTAssertEqual(m.responseBody(), .writeResponseBody)
        XCTAssertEqual(m.responseEnd(), .finish(reuseBackend: true, keepOpen: true))
        XCTAssertTrue(m.isIdle)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .dispatch)
    }

    func testARequestThatEndsBeforeItsConnectionIsReadyGoesOutWholeWithTheTimerArmed() {
        var m = machine()
        let attempt = dispatched(&m)
        XCTAssertEqual(m.requestEnd(now: now), .none)
        XCTAssertEqual(m.attached(attempt: attempt, reused: false, now: now), .sendRequest([.end(nil)], armResponseTimer: now + timeout))
    }

    func testOneRequestAtATimeAPipelinedHeadWaitsUntilTheResponseIsDone() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        _ = m.requestEnd(now: now)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .none)
        XCTAssertEqual(m.requestRefused(.init(.badRequest, "x")), .none)
        _ = m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        _ = m.responseEnd()
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .dispatch)
    }

    func testPartsOfTheNextRequestWaitUntilTheResponseIsDone() {
        var m = machine()
        XCTAssertTrue(m.takesRequestParts)
        XCTAssertFalse(m.requestRead)
        let attempt = dispatched(&m, facts(hasBody: true))
        XCTAssertTrue(m.takesRequestParts, "the body of the request being read")
        XCTAssertFalse(m.requestRead)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        _ = m.requestEnd(now: now)
        XCTAssertFalse(m.takesRequestParts, "pipelined input waits for the response")
        XCTAssertTrue(m.requestRead, "the handler may read ahead into the parser")
        _ = m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        XCTAssertFalse(m.takesRequestParts)
        XCTAssertTrue(m.requestRead)
        _ = m.responseEnd()
        XCTAssertTrue(m.takesRequestParts)
        XCTAssertFalse(m.requestRead)
        XCTAssertFalse(m.clientClosed(), "between requests nothing is in progress")
        XCTAssertFalse(m.takesRequestParts, "a closed connection takes nothing")
    }

    func testQuiescingClosesAnIdleConnectionAndMakesTheRequestInProgressTheLast() {
        var idle = machine()
        XCTAssertEqual(idle.quiesce(), .close(abortBackend: false))

        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.quiesce(), .none)
        XCTAssertEqual(m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false), .writeResponseHead(close: true))
        XCTAssertEqual(m.responseEnd(), .finish(reuseBackend: true, keepOpen: false))

        // Shutdown after the response head went out without Connection: close: the connection still ends.
        var n = machine()
        let second = dispatched(&n)
        _ = n.requestEnd(now: now)
        _ = n.attached(attempt: second, reused: false, now: now)
        _ = n.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        _ = n.quiesce()
        XCTAssertEqual(n.responseEnd(), .finish(reuseBackend: true, keepOpen: false))

        // The gateway's own answers close too.
        var o = machine()
        _ = o.requestHead(facts(), runsPlugins: false)
        XCTAssertEqual(o.requestEnd(now: now), .none)
        XCTAssertFalse(o.takesRequestParts, "the end was taken while routing")
        _ = o.quiesce()
        XCTAssertEqual(o.dispatch(to: .noRoute), .answer(.noRoute, close: false, abortBackend: false))
        XCTAssertEqual(o.answerStarted(close: false), .close)
    }

    // MARK: plugins

    func testBodyPartsWaitForThePluginsAndGoOutInOrderAfterTheHead() {
        var m = machine()
        guard case .runPlugins(let id) = m.requestHead(facts(hasBody: true), runsPlugins: true) else { return XCTFail() }
        XCTAssertEqual(m.requestBody(bytes(3)), .none)
        XCTAssertEqual(m.requestBody(bytes(4)), .none)
        XCTAssertEqual(m.requestEnd(now: now), .none)
        XCTAssertEqual(m.pluginsFinished(request: id &+ 1, .proceed), .none, "a decision for another request is ignored")
        XCTAssertEqual(m.pluginsFinished(request: id, .proceed), .dispatch)
        guard case .startAttempt(let attempt, _, _) = m.dispatch(to: .server(index: 1, serverCount: 2, responseTimeout: timeout)) else { return XCTFail() }
        XCTAssertEqual(
            m.attached(attempt: attempt, reused: false, now: now),
            .sendRequest([.body(.byteBuffer(bytes(3))), .body(.byteBuffer(bytes(4))), .end(nil)], armResponseTimer: now + timeout)
        )
    }

    func testAPluginAnswerBeforeTheBodyEndedClosesTheConnection() {
        var m = machine()
        guard case .runPlugins(let id) = m.requestHead(facts(hasBody: true), runsPlugins: true) else { return XCTFail() }
        XCTAssertEqual(m.pluginsFinished(request: id, .answered), .answer(.pluginAnswer, close: true, abortBackend: false))
        XCTAssertEqual(m.answerStarted(close: true), .close)
        XCTAssertTrue(m.isClosed)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: true), .none)
    }

    func testAPluginAnswerToAWholeKeepAliveRequestKeepsTheConnection() {
        var m = machine()
        guard case .runPlugins(let id) = m.requestHead(facts(), runsPlugins: true) else { return XCTFail() }
        _ = m.requestEnd(now: now)
        XCTAssertEqual(m.pluginsFinished(request: id, .answered), .answer(.pluginAnswer, close: false, abortBackend: false))
        XCTAssertEqual(m.answerStarted(close: false), .awaitNextHead)
        XCTAssertTrue(m.isIdle)
    }

    func testAFailedPluginIsAnsweredAndAStaleDecisionChangesNothing() {
        var m = machine()
        guard case .runPlugins(let id) = m.requestHead(facts(keepAlive: false), runsPlugins: true) else { return XCTFail() }
        _ = m.requestEnd(now: now)
        XCTAssertEqual(m.pluginsFinished(request: id, .failed(plugin: "authz")), .answer(.pluginFailed(plugin: "authz"), close: true, abortBackend: false))
        _ = m.answerStarted(close: true)
        XCTAssertEqual(m.pluginsFinished(request: id, .proceed), .none)
    }

    // MARK: the gateway's own answers

    func testARefusedHeadIsAnsweredAndClosesTheConnection() {
        var m = machine()
        let refusal = RequestHeadValidator.Refusal(.badRequest, "both Transfer-Encoding and Content-Length\n")
        XCTAssertEqual(m.requestRefused(refusal), .answer(.refused(refusal), close: true, abortBackend: false))
        XCTAssertEqual(m.answerStarted(close: true), .close)
        XCTAssertEqual(m.requestBody(bytes(10)), .none, "nothing of the refused request goes anywhere")
        XCTAssertEqual(m.requestEnd(now: now), .none)
    }

    func testNoRouteKeepsAKeepAliveConnectionAndDropsTheRestOfTheRequest() {
        var m = machine()
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .dispatch)
        XCTAssertEqual(m.dispatch(to: .noRoute), .answer(.noRoute, close: false, abortBackend: false))
        XCTAssertEqual(m.answerStarted(close: false), .drainBody)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .none, "the answered request has not ended")
        XCTAssertEqual(m.requestEnd(now: now), .awaitNextHead)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .dispatch)
    }

    func testNoRouteWithAnUnreadBodyCloses() {
        var m = machine()
        _ = m.requestHead(facts(hasBody: true), runsPlugins: false)
        XCTAssertEqual(m.dispatch(to: .noRoute), .answer(.noRoute, close: true, abortBackend: false))
    }

    func testNoServerSaysWhetherTheBackendIsEmptyOrUnhealthy() {
        var m = machine()
        _ = m.requestHead(facts(), runsPlugins: false)
        XCTAssertEqual(m.dispatch(to: .noServer(empty: false)), .answer(.noServer(empty: false), close: false, abortBackend: false))
        var n = machine()
        _ = n.requestHead(facts(keepAlive: false), runsPlugins: false)
        XCTAssertEqual(n.dispatch(to: .noServer(empty: true)), .answer(.noServer(empty: true), close: true, abortBackend: false))
    }

    func testAReloadClosesTheConnectionAfterTheAnswer() {
        var m = machine()
        _ = m.requestHead(facts(), runsPlugins: false)
        _ = m.requestEnd(now: now)
        _ = m.dispatch(to: .noRoute)
        // The handler asks with `close || retired`.
        XCTAssertEqual(m.answerStarted(close: true), .close)
        XCTAssertTrue(m.isClosed)
    }

    // MARK: chunked bodies read whole first

    func testAChunkedBodyIsReadWholeBeforeAnyByteLeavesForABackend() {
        var m = machine(chunkedBuffer: 100)
        _ = m.requestHead(facts(hasBody: true, chunked: true), runsPlugins: false)
        XCTAssertEqual(m.dispatch(to: .server(index: 0, serverCount: 1, responseTimeout: timeout)), .readBody(sendContinue: false))
        XCTAssertEqual(m.requestBody(bytes(50)), .none)
        XCTAssertEqual(m.requestBody(bytes(50)), .none)
        guard case .startAttempt(let attempt, 0, false) = m.requestEnd(now: now) else { return XCTFail() }
        XCTAssertEqual(
            m.attached(attempt: attempt, reused: false, now: now),
            .sendRequest([.body(.byteBuffer(bytes(50))), .body(.byteBuffer(bytes(50))), .end(nil)], armResponseTimer: now + timeout)
        )
    }

    func testAChunkedBodyLargerThanTheBufferGoesOnOnceTheBufferIsFull() {
        var m = machine(chunkedBuffer: 100)
        _ = m.requestHead(facts(hasBody: true, chunked: true, expectsContinue: true), runsPlugins: false)
        XCTAssertEqual(m.dispatch(to: .server(index: 0, serverCount: 1, responseTimeout: timeout)), .readBody(sendContinue: true))
        XCTAssertEqual(m.requestBody(bytes(100)), .none)
        guard case .startAttempt(let attempt, 0, false) = m.requestBody(bytes(1)) else { return XCTFail("past the buffer: connect") }
        XCTAssertEqual(m.attached(attempt: attempt, reused: false, now: now), .sendRequest([.body(.byteBuffer(bytes(100))), .body(.byteBuffer(bytes(1)))], armResponseTimer: nil))
        XCTAssertEqual(m.requestBody(bytes(5)), .forwardBody(bytes(5)))
        XCTAssertEqual(m.requestEnd(now: now), .forwardEnd(armResponseTimer: now + timeout))
    }

    func testWithoutAChunkBufferAChunkedRequestGoesOutAtOnce() {
        var m = machine(chunkedBuffer: 0)
        _ = m.requestHead(facts(hasBody: true, chunked: true), runsPlugins: false)
        guard case .startAttempt = m.dispatch(to: .server(index: 0, serverCount: 1, responseTimeout: timeout)) else { return XCTFail() }
    }

    func testExpectContinueIsAnsweredOnlyWhenTheRequestGoesToABackend() {
        var m = machine()
        _ = m.requestHead(facts(hasBody: true, expectsContinue: true), runsPlugins: false)
        XCTAssertEqual(m.dispatch(to: .server(index: 0, serverCount: 1, responseTimeout: timeout)).sendsContinue, true)
        var n = machine()
        _ = n.requestHead(facts(hasBody: true, expectsContinue: true), runsPlugins: false)
        XCTAssertEqual(n.dispatch(to: .noRoute), .answer(.noRoute, close: true, abortBackend: false))
    }

    // MARK: body limits and timeouts

    func testABodyOverTheLimitIsRefusedWhilePluginsRunAndWhileProxying() {
        var m = machine(maxBody: 10)
        _ = m.requestHead(facts(hasBody: true), runsPlugins: true)
        XCTAssertEqual(m.requestBody(bytes(10)), .none)
        XCTAssertEqual(m.requestBody(bytes(1)), .answer(.bodyTooLarge, close: true, abortBackend: false))

        var n = machine(maxBody: 10)
        let attempt = dispatched(&n, facts(hasBody: true))
        _ = n.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(n.requestBody(bytes(10)), .forwardBody(bytes(10)))
        XCTAssertEqual(n.requestBody(bytes(1)), .answer(.bodyTooLarge, close: true, abortBackend: true))

        var o = machine(maxBody: 10)
        let second = dispatched(&o, facts(hasBody: true))
        _ = o.attached(attempt: second, reused: false, now: now)
        _ = o.responseHead(status: .ok, keepAlive: true, hasContentLength: false, retired: false)
        XCTAssertEqual(o.requestBody(bytes(11)), .cutOff(abortBackend: true), "the client has a response head: only a close can tell it")
    }

    func testASlowBodyIsAnswered408OrCutOffOnceTheResponseStarted() {
        var m = machine()
        _ = m.requestHead(facts(hasBody: true), runsPlugins: true)
        XCTAssertTrue(m.isReadingBody)
        XCTAssertEqual(m.bodyTimedOut(), .answer(.bodyTimeout, close: true, abortBackend: false))

        var n = machine()
        let attempt = dispatched(&n, facts(hasBody: true))
        _ = n.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(n.bodyTimedOut(), .answer(.bodyTimeout, close: true, abortBackend: true))
        _ = n.responseHead(status: .ok, keepAlive: true, hasContentLength: false, retired: false)
        XCTAssertEqual(n.bodyTimedOut(), .cutOff(abortBackend: true))
        _ = n.requestEnd(now: now)
        XCTAssertFalse(n.isReadingBody)
        XCTAssertEqual(n.bodyTimedOut(), .none, "a body that ended is not slow")
    }

    func testAClientThatDoesNotReadIsCutOffOrClosed() {
        var m = machine()
        XCTAssertEqual(m.sendTimedOut(), .close(abortBackend: false))
        var n = machine()
        _ = dispatched(&n)
        XCTAssertEqual(n.sendTimedOut(), .cutOff(abortBackend: true))
    }

    func testTheResponseTimerAnswers504OnlyPastTheCurrentDeadline() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.responseTimerFired(now: now), .rearmResponseTimer(now + timeout), "armed for an earlier request: fire again later")
        XCTAssertEqual(m.responseTimerFired(now: now + timeout), .answer(.responseTimedOut, close: false, abortBackend: true))
        XCTAssertEqual(m.answerStarted(close: false), .awaitNextHead)
        XCTAssertEqual(m.responseTimerFired(now: now + timeout + timeout), .none)
    }

    func testNoResponseTimeoutOnceTheHeadArrived() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        _ = m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        XCTAssertEqual(m.responseTimerFired(now: now + timeout + timeout), .none)
    }

    // MARK: connecting and retries

    func testAFailedConnectTriesTheNextServerThenAnswers() {
        var m = machine()
        let first = dispatched(&m, count: 2)
        var asked: [Int] = []
        guard case .startAttempt(let second, 1, false) = m.connectFailed(attempt: first, timedOut: false, nextServer: { asked.append($0); return 1 }) else {
            return XCTFail()
        }
        XCTAssertEqual(asked, [0])
        XCTAssertEqual(m.server, 1)
        XCTAssertEqual(m.connectFailed(attempt: first, timedOut: false, nextServer: { _ in 0 }), .none, "a stale attempt's failure is ignored")
        // Two servers, two attempts: the second failure is answered, 504 when it timed out.
        XCTAssertEqual(m.connectFailed(attempt: second, timedOut: true, nextServer: { _ in 0 }), .answer(.connectTimedOut, close: true, abortBackend: true))
    }

    func testAFailedConnectWithNoOtherHealthyServerAnswers502() {
        var m = machine()
        let first = dispatched(&m, count: 3)
        _ = m.requestEnd(now: now)
        XCTAssertEqual(m.connectFailed(attempt: first, timedOut: false, nextServer: { _ in nil }), .answer(.connectFailed, close: false, abortBackend: true))
    }

    func testAConnectionForAnAttemptThatIsOverIsDiscarded() {
        var m = machine()
        let attempt = dispatched(&m)
        XCTAssertTrue(m.clientClosed())
        XCTAssertEqual(m.attached(attempt: attempt, reused: false, now: now), .discardConnection)
        var n = machine()
        let first = dispatched(&n)
        _ = n.connectFailed(attempt: first, timedOut: false, nextServer: { _ in 1 })
        XCTAssertEqual(n.attached(attempt: first, reused: false, now: now), .discardConnection)
    }

    func testAReusedConnectionLostBeforeTheAnswerIsRetriedForARequestWithoutBody() {
        var m = machine()
        let attempt = dispatched(&m, count: 1)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: true, now: now)
        guard case .startAttempt(let retry, 0, false) = m.backendLost() else { return XCTFail("retried") }
        XCTAssertEqual(m.attached(attempt: retry, reused: false, now: now), .sendRequest([.end(nil)], armResponseTimer: now + timeout))
        // A fresh connection that fails is not retried.
        XCTAssertEqual(m.backendLost(), .answer(.backendClosed, close: false, abortBackend: true))
    }

    func testAFreshConnectionOrARequestWithABodyIsNotRetried() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.backendLost(), .answer(.backendClosed, close: true, abortBackend: true))
        var n = machine()
        let second = dispatched(&n, facts(hasBody: true))
        _ = n.attached(attempt: second, reused: true, now: now)
        XCTAssertEqual(n.backendLost(), .answer(.backendClosed, close: true, abortBackend: true), "the backend may have half-processed the body")
    }

    func testRetriesAreBoundedByTheNumberOfServers() {
        var m = machine()
        var attempt = dispatched(&m, count: 2)
        _ = m.requestEnd(now: now)
        var retries = 0
        while true {
            _ = m.attached(attempt: attempt, reused: true, now: now)
            guard case .startAttempt(let next, _, _) = m.backendLost() else { break }
            attempt = next
            retries += 1
            XCTAssertLessThan(retries, 10)
        }
        XCTAssertEqual(retries, 2)
    }

    func testAConnectionLostMidResponseCutsTheClientOff() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: true, now: now)
        _ = m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        XCTAssertEqual(m.backendLost(), .cutOff(abortBackend: true))
        XCTAssertEqual(m.backendLost(), .none, "no connection is attached any more")
    }

    // MARK: responses

    func testResponsesThatCannotBelongToTheExchangeAreProtocolErrors() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.responseBody(), .backendProtocolError("a response body before its head", answer: true, close: false))
        XCTAssertEqual(m.responseEnd(), .backendProtocolError("a response end without a final response head", answer: true, close: false))
        XCTAssertEqual(
            m.responseHead(status: .switchingProtocols, keepAlive: true, hasContentLength: false, retired: false),
            .backendProtocolError("unsolicited 101 Switching Protocols", answer: true, close: false)
        )
        XCTAssertEqual(m.responseHead(status: .processing, keepAlive: true, hasContentLength: false, retired: false), .none, "other 1xx are dropped")
        XCTAssertEqual(m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false), .writeResponseHead(close: false))
        XCTAssertEqual(
            m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false),
            .backendProtocolError("a second response head in one exchange", answer: false, close: false)
        )
    }

    // MARK: WebSocket upgrades

    func testA101ToAnUpgradeOpensATunnelAtItsEnd() {
        var m = machine()
        var f = facts()
        f.upgrade = true
        let attempt = dispatched(&m, f)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.responseHead(status: .switchingProtocols, keepAlive: true, hasContentLength: false, retired: false), .writeResponseHead(close: false))
        XCTAssertFalse(m.isTunnel, "the tunnel opens at the 101's end, once its head is written")
        XCTAssertEqual(m.responseEnd(), .openTunnel)
        XCTAssertTrue(m.isTunnel)
        XCTAssertFalse(m.takesRequestParts, "nothing the client sends is HTTP any more")
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .none)
        XCTAssertEqual(m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false), .none)
        XCTAssertFalse(m.clientClosed(), "the handler ends the tunnel's backend side itself")
        XCTAssertTrue(m.isClosed)
    }

    func testAnUpgradeAnsweredWithAnythingElseIsAnOrdinaryExchange() {
        var m = machine()
        var f = facts()
        f.upgrade = true
        let attempt = dispatched(&m, f)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(m.responseHead(status: .forbidden, keepAlive: true, hasContentLength: true, retired: false), .writeResponseHead(close: false))
        XCTAssertEqual(m.responseEnd(), .finish(reuseBackend: true, keepOpen: true))
        XCTAssertTrue(m.isIdle)
    }

    func testA101IsRefusedWhileTheConnectionClosesOrAfterAResponseStarted() {
        var f = facts()
        f.upgrade = true
        var retired = machine()
        var attempt = dispatched(&retired, f)
        _ = retired.requestEnd(now: now)
        _ = retired.attached(attempt: attempt, reused: false, now: now)
        XCTAssertEqual(
            retired.responseHead(status: .switchingProtocols, keepAlive: true, hasContentLength: false, retired: true),
            .backendProtocolError("101 Switching Protocols while the connection closes", answer: true, close: false))
        var late = machine()
        attempt = dispatched(&late, f)
        _ = late.requestEnd(now: now)
        _ = late.attached(attempt: attempt, reused: false, now: now)
        _ = late.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        XCTAssertEqual(
            late.responseHead(status: .switchingProtocols, keepAlive: true, hasContentLength: false, retired: false),
            .backendProtocolError("a second response head in one exchange", answer: false, close: false))
    }

    func testWhenTheResponseClosesTheClientConnection() {
        func close(_ f: Machine.RequestFacts, ended: Bool = true, status: HTTPResponseStatus = .ok, length: Bool = true, retired: Bool = false) -> Action {
            var m = machine()
            let attempt = dispatched(&m, f)
            if ended { _ = m.requestEnd(now: now) }
            _ = m.attached(attempt: attempt, reused: false, now: now)
            return m.responseHead(status: status, keepAlive: true, hasContentLength: length, retired: retired)
        }
        XCTAssertEqual(close(facts()), .writeResponseHead(close: false))
        XCTAssertEqual(close(facts(keepAlive: false)), .writeResponseHead(close: true))
        XCTAssertEqual(close(facts(hasBody: true), ended: false), .writeResponseHead(close: true), "an early answer: the rest of the body is unread")
        XCTAssertEqual(close(facts(), retired: true), .writeResponseHead(close: true), "after a reload the client reconnects")
        XCTAssertEqual(close(facts(http10: true), length: false), .writeResponseHead(close: true), "HTTP/1.0 reads an unframed body to the close")
        XCTAssertEqual(close(facts(http10: true, head: true), length: false), .writeResponseHead(close: false))
        XCTAssertEqual(close(facts(http10: true), status: .noContent, length: false), .writeResponseHead(close: false))
        XCTAssertEqual(close(facts(http10: true), status: .notModified, length: false), .writeResponseHead(close: false))
    }

    func testABackendThatClosesIsNotPooledAndAClosingResponseEndsTheConnection() {
        var m = machine()
        let attempt = dispatched(&m)
        _ = m.requestEnd(now: now)
        _ = m.attached(attempt: attempt, reused: false, now: now)
        _ = m.responseHead(status: .ok, keepAlive: false, hasContentLength: true, retired: false)
        XCTAssertEqual(m.responseEnd(), .finish(reuseBackend: false, keepOpen: true))

        var n = machine()
        let second = dispatched(&n, facts(hasBody: true))
        _ = n.attached(attempt: second, reused: false, now: now)
        _ = n.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false)
        XCTAssertEqual(n.responseEnd(), .finish(reuseBackend: false, keepOpen: false), "the request had not ended: neither side is reusable")
        XCTAssertTrue(n.isClosed)
    }

    func testAClosedConnectionTakesNoEvents() {
        var m = machine()
        let attempt = dispatched(&m)
        XCTAssertTrue(m.clientClosed())
        XCTAssertFalse(m.clientClosed())
        XCTAssertEqual(m.requestEnd(now: now), .none)
        XCTAssertEqual(m.responseHead(status: .ok, keepAlive: true, hasContentLength: true, retired: false), .none)
        XCTAssertEqual(m.backendLost(), .none)
        XCTAssertEqual(m.connectFailed(attempt: attempt, timedOut: false, nextServer: { _ in 1 }), .none)
        XCTAssertEqual(m.requestHead(facts(), runsPlugins: false), .none)
    }
}

extension ProxyStateMachine.Action {
    fileprivate var sendsContinue: Bool? {
        switch self {
        case .startAttempt(_, _, let sendContinue), .readBody(let sendContinue): return sendContinue
        default: return nil
        }
    }
}
