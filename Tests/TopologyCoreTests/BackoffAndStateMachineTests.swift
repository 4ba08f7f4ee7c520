import Testing
@testable import TopologyCore

@Suite struct BackoffTests {
    @Test func sequenceFollowsTheSpec() {
        var b = ConnectionBackoff()
        // Without jitter (random = 0.5 → no spread): 1s, 1.6s, 2.56s, 4.096s, … capped at 120s.
        let delays = (0..<14).map { _ in b.nextDelay(unitRandom: { 0.5 }) }
        #expect(Array(delays.prefix(5)) == [1000, 1600, 2560, 4096, 6554])
        #expect(delays.last == 120_000)
        #expect(delays.allSatisfy { $0 <= 120_000 })
    }

    @Test func jitterStaysWithinTwentyPercent() {
        var lo = ConnectionBackoff()
        var hi = ConnectionBackoff()
        _ = lo.nextDelay(unitRandom: { 0 })
        _ = hi.nextDelay(unitRandom: { 0.999999 })
        #expect(lo.nextDelay(unitRandom: { 0 }) == 1280)  // 1600 − 20 %
        #expect(hi.nextDelay(unitRandom: { 0.999999 }) == 1920)  // 1600 + 20 %
    }

    @Test func resetRestartsAndConnectTimeoutHasAFloor() {
        var b = ConnectionBackoff()
        _ = b.nextDelay(unitRandom: { 0.5 })
        _ = b.nextDelay(unitRandom: { 0.5 })
        b.reset()
        #expect(b.nextDelay(unitRandom: { 0.5 }) == 1000)
        #expect(b.connectTimeout(untilDeadlineMs: 1000) == 20_000)
        #expect(b.connectTimeout(untilDeadlineMs: 50_000) == 50_000)
    }
}

@Suite struct SubchannelStateMachineTests {
    let a = EndpointAddress.tcp(host: "127.0.0.1", port: 1)
    let b = EndpointAddress.tcp(host: "127.0.0.2", port: 1)

    @Test func idleConnectingReady() {
        var m = SubchannelStateMachine(addresses: [a])
        let out = m.connect(now: 0)
        #expect(out.transition?.to == .connecting)
        #expect(out.actions == [.startConnect(a, timeoutMs: 20_000)])
        #expect(m.connectionReady().transition?.to == .ready)
        #expect(m.state == .ready(addressIndex: 0))
        #expect(m.connect(now: 5).actions.isEmpty)
    }

    @Test func triesEveryAddressThenBacksOff() {
        var m = SubchannelStateMachine(addresses: [a, b])
        _ = m.connect(now: 0)
        let second = m.connectFailed(reason: "connection refused", now: 10, unitRandom: { 0.5 })
        #expect(second.transition == nil)
        #expect(second.actions == [.startConnect(b, timeoutMs: 20_000)])
        let failed = m.connectFailed(reason: "connection refused", now: 20, unitRandom: { 0.5 })
        #expect(failed.transition == .init(to: .transientFailure, reason: "connection refused", backoffMs: 1000))
        #expect(failed.actions == [.scheduleBackoff(delayMs: 1000)])
        #expect(m.state == .transientFailure(retryAt: 1020))
        // Asking to connect during backoff does nothing; after it the subchannel is IDLE.
        #expect(m.connect(now: 500) == .init(transition: nil, actions: []))
        #expect(m.backoffElapsed(now: 1020).transition?.to == .idle)
        #expect(m.connect(now: 1020).transition?.to == .connecting)
        #expect(m.connectFailed(reason: "x", now: 1030, unitRandom: { 0.5 }).transition == nil)
        #expect(m.connectFailed(reason: "x", now: 1040, unitRandom: { 0.5 }).transition?.backoffMs == 1600)
    }

    @Test func goAwayAndClosePutReadyBackToIdle() {
        var m = SubchannelStateMachine(addresses: [a])
        _ = m.connect(now: 0)
        _ = m.connectionReady(now: 0)
        let g = m.goAwayReceived(code: "NO_ERROR", now: 30_000)
        #expect(g.transition == .init(to: .idle, reason: "GOAWAY NO_ERROR", backoffMs: nil))
        #expect(g.actions == [.drainConnection])
        _ = m.connect(now: 30_001)
        _ = m.connectionReady(now: 30_002)
        m.connectionUsed()
        #expect(m.connectionClosed(reason: "connection reset", now: 30_003, unitRandom: { 0.5 }).transition?.reason == "connection reset")
        #expect(m.state == .idle)
    }

    /// A server that sends SETTINGS and then GOAWAY (or resets) before any RPC: each such
    /// connection is a failed attempt, so the reconnects back off 1 s, 1.6 s, 2.56 s… instead of
    /// looping (issue 15 measured 10,808 connections in 5 s).
    @Test func aConnectionLostRightAfterSettingsBacksOff() {
        var m = SubchannelStateMachine(addresses: [a])
        var now: Millis = 0
        var delays: [Int64] = []
        for round in 0..<4 {
            _ = m.connect(now: now)
            _ = m.connectionReady(now: now + 1)
            let out = round % 2 == 0
                ? m.goAwayReceived(code: "NO_ERROR", now: now + 2, unitRandom: { 0.5 })
                : m.connectionClosed(reason: "connection reset", now: now + 2, unitRandom: { 0.5 })
            #expect(out.transition?.to == .transientFailure)
            #expect(out.transition?.reason?.contains("right after SETTINGS") == true)
            #expect(out.actions.last == .scheduleBackoff(delayMs: out.transition?.backoffMs ?? -1))
            if round % 2 == 0 { #expect(out.actions.first == .drainConnection) }
            delays.append(out.transition?.backoffMs ?? 0)
            now += 2 + (out.transition?.backoffMs ?? 0)
            _ = m.backoffElapsed(now: now)
        }
        #expect(delays == [1000, 1600, 2560, 4096])
        // A connection that carries an RPC proves itself: the backoff restarts.
        _ = m.connect(now: now)
        _ = m.connectionReady(now: now + 1)
        m.connectionUsed()
        _ = m.goAwayReceived(code: "NO_ERROR", now: now + 2)
        #expect(m.state == .idle)
        _ = m.connect(now: now + 3)
        #expect(m.connectFailed(reason: "x", now: now + 4, unitRandom: { 0.5 }).transition?.backoffMs == 1000)
    }

    @Test func readyResetsBackoff() {
        var m = SubchannelStateMachine(addresses: [a])
        _ = m.connect(now: 0)
        _ = m.connectFailed(reason: "x", now: 0, unitRandom: { 0.5 })
        _ = m.backoffElapsed(now: 1000)
        _ = m.connect(now: 1000)
        _ = m.connectionReady()
        _ = m.connectionClosed(reason: "connection reset", now: 2000, unitRandom: { 0.5 })
        _ = m.connect(now: 2000)
        #expect(m.connectFailed(reason: "x", now: 2001, unitRandom: { 0.5 }).transition?.backoffMs == 1000)
    }

    @Test func shutdownIsFinal() {
        var m = SubchannelStateMachine(addresses: [a])
        _ = m.connect(now: 0)
        #expect(m.shutDown().transition?.to == .shutdown)
        #expect(m.connectionReady().transition == nil)
        #expect(m.connect(now: 1).transition == nil)
        #expect(m.shutDown().transition == nil)
    }
}
