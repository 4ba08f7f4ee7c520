import Testing
@testable import TopologyCore

/// Drives a model the way the engine does, acting as the transport: effects are recorded and
/// subchannel reports are fed back by hand.
struct Harness {
    var model = Model()
    var t: Millis = 0
    var effects: [Effect] = []

    init(policy: LBPolicy, identityHeader: String? = nil) {
        _ = send(.sessionStarted(SessionInfo(
            target: "file:x", resolver: "file", policy: policy, rpc: "Health/Check", identityHeader: identityHeader,
            traffic: .rate(100), startedAt: 0, host: "h", version: "t")))
    }

    @discardableResult
    mutating func send(_ e: Event) -> [Effect] {
        t += 10
        let out = model.apply(TimedEvent(at: t, e))
        effects += out
        return out
    }

    mutating func resolve(_ ports: [Int], ready: [Bool]? = nil) -> [Effect] {
        let eps = ports.enumerated().map { i, p in
            Endpoint(addresses: [.tcp(host: "127.0.0.1", port: p)], pod: "pod-\(p)", ready: ready?[i] ?? true)
        }
        return send(.resolverUpdated(ResolverResult(endpoints: eps)))
    }

    @discardableResult
    mutating func state(_ id: SubchannelID, _ s: ConnectivityState, _ reason: String? = nil) -> [Effect] {
        send(.subchannel(id, .stateChanged(to: s, reason: reason, backoffMs: s == .transientFailure ? 1000 : nil)))
    }

    func created(_ effects: [Effect]) -> [SubchannelID] {
        effects.compactMap { if case .createSubchannel(let id, _) = $0 { id } else { nil } }
    }
    func connects(_ effects: [Effect]) -> [SubchannelID] {
        effects.compactMap { if case .connect(let id) = $0 { id } else { nil } }
    }
    func shutdowns(_ effects: [Effect]) -> [SubchannelID] {
        effects.compactMap { if case .shutDown(let id) = $0 { id } else { nil } }
    }
    var picker: PickerSpec? {
        effects.reversed().compactMap { if case .updatePicker(let p) = $0 { p } else { nil } }.first
    }
}

@Suite struct RoundRobinModelTests {
    @Test func oneSubchannelPerReadyEndpointAndOnlyReadyOnesArePicked() {
        var h = Harness(policy: .roundRobin)
        let e = h.resolve([1, 2, 3])
        #expect(h.created(e) == [1, 2, 3])
        #expect(h.connects(e) == [1, 2, 3])
        h.state(1, .connecting)
        h.state(2, .connecting)
        h.state(1, .ready)
        #expect(h.picker?.ready == [1])
        #expect(h.model.channelState == .ready)
        h.state(2, .ready)
        #expect(h.picker?.ready == [1, 2])
    }

    @Test func removedEndpointShutsItsSubchannelDown() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2, 3])
        for id in 1...3 { h.state(id, .connecting); h.state(id, .ready) }
        let e = h.resolve([1, 3])
        #expect(h.shutdowns(e) == [2])
        #expect(h.created(e).isEmpty)
        #expect(h.model.subchannels[2]?.state == .shutdown)
        #expect(h.picker?.ready == [1, 3])
        #expect(h.model.log.entries.contains { $0.text.contains("endpoint removed: pod-2") })
        // The removed row stays visible for a while, marked.
        #expect(h.model.endpointRows.last?.removedAt != nil)
    }

    @Test func idleSubchannelIsReconnectedAndReresolutionRequested() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1])
        h.state(1, .connecting)
        h.state(1, .ready)
        let e = h.state(1, .idle, "connection reset")
        #expect(h.connects(e) == [1])
        #expect(e.contains(.requestResolution(.disconnected(1))))
        #expect(h.model.subchannels[1]?.lastDisconnectReason == "connection reset")
        #expect(h.model.reconnects == 1)
    }

    @Test func stickyTransientFailure() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2])
        h.state(1, .connecting); h.state(2, .connecting)
        h.state(1, .transientFailure, "connection refused")
        h.state(2, .transientFailure, "connection refused")
        #expect(h.model.channelState == .transientFailure)
        h.state(1, .idle)
        h.state(1, .connecting)
        #expect(h.model.channelState == .transientFailure)  // stays until something is READY
        h.state(1, .ready)
        #expect(h.model.channelState == .ready)
    }

    @Test func notReadyAndDrainingEndpointsGetNoSubchannel() {
        var h = Harness(policy: .roundRobin)
        let e = h.resolve([1, 2], ready: [true, false])
        #expect(h.created(e) == [1])
        #expect(h.model.resolver.endpoints.count == 2)
    }

    @Test func emptyUpdateIsARealState() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1])
        h.state(1, .connecting); h.state(1, .ready)
        let e = h.resolve([])
        #expect(h.shutdowns(e) == [1])
        #expect(h.model.channelState == .transientFailure)
        #expect(h.model.resolver.endpoints.isEmpty)
    }

    /// A DNS poll that returns the same set changes nothing but the resolver's status: no
    /// effects, no new row version (so the view reuses its rows).
    @Test func unchangedAnswerCausesNoChurn() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2, 3])
        let version = h.model.rowsVersion
        let e = h.send(.resolverUpdated(ResolverResult(
            endpoints: [1, 2, 3].map { Endpoint(addresses: [.tcp(host: "127.0.0.1", port: $0)], pod: "pod-\($0)") }, info: ["ttl": "1s"])))
        #expect(e.isEmpty)
        #expect(h.model.rowsVersion == version)
        #expect(h.model.resolver.info["ttl"] == "1s")
        #expect(h.model.resolver.updates == 2)
    }

    /// A resolver that fails before its first answer leaves the channel TRANSIENT_FAILURE.
    @Test func failureBeforeAnyAnswerIsTransientFailure() {
        var h = Harness(policy: .roundRobin)
        _ = h.send(.resolverFailed(ResolverFailure(message: "NXDOMAIN: web does not exist")))
        #expect(h.model.channelState == .transientFailure)
        #expect(h.picker?.channelState == .transientFailure)
    }

    /// `r`: the user's request reaches the resolver as one that skips its rate limit.
    @Test func userResolutionRequest() {
        var h = Harness(policy: .roundRobin)
        #expect(h.send(.resolutionRequested) == [.requestResolution(.user)])
    }

    @Test func resolverErrorsKeepTheLastGoodSet() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2])
        let e = h.send(.resolverFailed(ResolverFailure(message: "NXDOMAIN")))
        #expect(h.shutdowns(e).isEmpty)
        #expect(h.model.resolver.endpoints.count == 2)
        #expect(h.model.resolver.error?.message == "NXDOMAIN")
        _ = h.resolve([1, 2])
        #expect(h.model.resolver.error == nil)
    }
}

@Suite struct PickFirstModelTests {
    @Test func triesInOrderAndKeepsTheFirstReady() {
        var h = Harness(policy: .pickFirst)
        let e = h.resolve([1, 2, 3])
        #expect(h.created(e) == [1])
        #expect(h.connects(e) == [1])
        h.state(1, .connecting)
        let next = h.state(1, .transientFailure, "connection refused")
        #expect(h.created(next) == [2])
        #expect(h.connects(next) == [2])
        h.state(2, .connecting)
        let chosen = h.state(2, .ready)
        #expect(h.shutdowns(chosen) == [1])
        #expect(h.picker?.ready == [2])
    }

    @Test func staysOnTheReadyAddressWhileItIsInTheList() {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2])
        h.state(1, .connecting); h.state(1, .ready)
        let e = h.resolve([3, 1, 2])  // new order, same address still present
        #expect(h.created(e).isEmpty && h.shutdowns(e).isEmpty)
        #expect(h.picker?.ready == [1])
        let gone = h.resolve([2, 3])
        #expect(h.shutdowns(gone) == [1])
        #expect(h.created(gone) == [2])
    }

    @Test func lostConnectionStartsANewPass() {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2])
        h.state(1, .connecting); h.state(1, .ready)
        let e = h.state(1, .idle, "GOAWAY NO_ERROR")
        #expect(h.connects(e) == [1])
        #expect(h.model.channelState != .ready)
    }

    /// `x`: a READY subchannel gets a new connection (the transport drains the old one and the
    /// subchannel goes IDLE, then the policy reconnects it); anything else is only logged.
    @Test func reconnectRequestOnlyForAReadySubchannel() {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2])
        h.state(1, .connecting)
        #expect(h.send(.reconnectRequested(1)) == [])
        #expect(h.model.log.entries.last?.text == "subchannel #1: no connection to renew (not READY)")
        h.state(1, .ready)
        #expect(h.send(.reconnectRequested(1)) == [.reconnect(1)])
        let e = h.state(1, .idle, "new connection requested")
        #expect(h.connects(e) == [1])
        #expect(h.model.subchannels[1]?.lastDisconnectReason == "new connection requested")
    }

    @Test func switchingPoliciesCollapsesAndSpreads() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2, 3])
        for id in 1...3 { h.state(id, .connecting); h.state(id, .ready) }
        let toPF = h.send(.policyChanged(.pickFirst))
        #expect(h.shutdowns(toPF) == [2, 3])
        #expect(h.picker == PickerSpec(node: PickFirst.Pick(1), channelState: .ready))
        let toRR = h.send(.policyChanged(.roundRobin))
        #expect(h.created(toRR) == [4, 5])
        #expect(h.picker?.ready == [1])
        #expect(h.model.log.entries.contains { $0.text == "LB policy pick_first → round_robin" })
    }
}

@Suite struct StatsModelTests {
    func delta(ok: Int, failed: Int = 0, code: Int = 14, micros: UInt64 = 1000) -> RPCDelta {
        var d = RPCDelta()
        d.started = ok + failed
        d.succeeded = ok
        d.failed = failed
        if failed > 0 { d.codes = [code: failed] }
        d.latency.values = [micros]
        d.latency.counts = [UInt32(ok + failed)]
        return d
    }

    @Test func ratesSharesAndFairness() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1, 2])
        for _ in 0..<8 {
            h.send(.stats(StatsTick(backends: [BackendTick(name: "pod-1", delta: delta(ok: 25)), BackendTick(name: "pod-2", delta: delta(ok: 25))])))
        }
        let f = h.model.liveFairness()
        #expect(f.index == 1.0)
        #expect(f.word == "balanced")
        #expect(h.model.backends["pod-1"]?.traffic.rate(seconds: 1, tickMs: 250) == 100)
        let s = Snapshot(h.model)
        #expect(s.backends.map(\.share) == [0.5, 0.5])
        #expect(s.backends.first?.p50Ms == 1.0)
    }

    /// A ClusterIP: one endpoint (the virtual IP), three pods behind it that the resolver names.
    /// The silent pods are shown and counted: one pod taking everything is fairness 1/3.
    @Test func podsBehindAVirtualIPCountEvenWhenSilent() {
        var h = Harness(policy: .pickFirst, identityHeader: "x-served-by")
        _ = h.send(.resolverUpdated(ResolverResult(
            endpoints: [Endpoint(addresses: [.tcp(host: "10.96.0.10", port: 80)])], backends: ["web-a", "web-b", "web-c"])))
        #expect(Set(h.model.backends.keys) == ["web-a", "web-b", "web-c"])
        for _ in 0..<8 {
            var tick = StatsTick()
            tick.backends = [BackendTick(name: "web-b", delta: delta(ok: 50))]
            _ = h.send(.stats(tick))
        }
        let f = h.model.liveFairness()
        #expect(f.index.map { abs($0 - 1.0 / 3) < 1e-9 } == true)
        #expect(h.model.sessionFairness().index.map { abs($0 - 1.0 / 3) < 1e-9 } == true)
    }

    @Test func oneBackendTakingAllIsNamed() {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2, 3])
        for _ in 0..<4 { h.send(.stats(StatsTick(backends: [BackendTick(name: "pod-1", delta: delta(ok: 10))]))) }
        let f = h.model.liveFairness()
        #expect(abs((f.index ?? 0) - 1.0 / 3.0) < 0.001)
        #expect(f.word == "one pod takes all")
    }

    @Test func summaryCountsErrorsByCode() {
        var h = Harness(policy: .roundRobin)
        _ = h.resolve([1])
        let d = delta(ok: 9, failed: 1, code: 4)
        h.send(.stats(StatsTick(subchannels: [SubchannelTick(id: 1, activeStreams: 0, queued: 0, delta: d)],
                                backends: [BackendTick(name: "pod-1", delta: d)])))
        var u = RPCDelta()
        u.failed = 2
        u.codes = [14: 2]
        h.send(.stats(StatsTick(unassigned: u)))
        let s = Summary(h.model)
        #expect(s.total == 12)
        #expect(s.failed == 3)
        #expect(s.errors == ["DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 2])
        #expect(s.unassignedFailed == 2)
        #expect(s.backends.first?.errors == ["DEADLINE_EXCEEDED": 1])
    }

    @Test func jain() {
        #expect(Fairness.jain([1, 1, 1]) == 1)
        #expect(abs(Fairness.jain([3, 0, 0])! - 1.0 / 3) < 1e-9)
        #expect(Fairness.jain([]) == nil)
        #expect(Fairness.jain([0, 0]) == nil)
    }

    @Test func sparklineHistoryIsPerSecond() {
        var s = TrafficSeries()
        for i in 0..<8 {
            var d = RPCDelta()
            d.succeeded = i < 4 ? 5 : 10
            s.apply(d, at: Millis(i * 250))
        }
        #expect(s.perSecond(tickMs: 250) == [20, 40])
    }
}

@Suite struct PickerTests {
    @Test func roundRobinCyclesFromTheStart() {
        var p = Picker(spec: PickerSpec(node: RoundRobin.Pick(ready: [4, 5, 6]), channelState: .ready), randomStart: 1)
        let picks = (0..<6).map { _ in p.pick(outstanding: { _ in 0 }, random: { 0 })! }
        #expect(picks == [5, 6, 4, 5, 6, 4])
    }

    @Test func leastRequestPrefersTheLessLoaded() {
        var p = Picker(spec: PickerSpec(node: LeastRequest.Pick(ready: [1, 2]), channelState: .ready), randomStart: 0)
        var n = 0
        let pick = p.pick(outstanding: { $0 == 1 ? 10 : 1 }, random: { n += 1; return n })  // samples 1 then 2
        #expect(pick == 2)
    }

    @Test func emptyPickerReturnsNil() {
        var p = Picker(spec: PickerSpec(node: RoundRobin.Pick(ready: []), channelState: .connecting), randomStart: 3)
        #expect(p.pick(outstanding: { _ in 0 }, random: { 0 }) == nil)
    }
}

@Suite struct RecentPercentileTests {
    /// The merged-sample percentiles equal what an HdrHistogram of the same samples reports.
    @Test func matchesTheHistogram() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var series = TrafficSeries()
            var reference = LatencyHistogram()
            for t in 0..<Int.random(in: 1...40, using: &rng) {
                var d = RPCDelta()
                var values: [UInt64: UInt32] = [:]
                for _ in 0..<Int.random(in: 0...30, using: &rng) {
                    let v = reference.bucketFloor(UInt64.random(in: 1...2_000_000, using: &rng))
                    values[v, default: 0] += 1
                }
                for (v, c) in values.sorted(by: { $0.key < $1.key }) {
                    d.latency.values.append(v)
                    d.latency.counts.append(c)
                }
                d.succeeded = values.values.reduce(0) { $0 + Int($1) }
                series.apply(d, at: Millis(t * 250))
                reference.add(d.latency)
            }
            for p in [0.0, 1, 50, 90, 99, 99.9, 100] {
                #expect(series.recentPercentile(p) == reference.percentile(p), "p\(p)")
            }
        }
    }
}
