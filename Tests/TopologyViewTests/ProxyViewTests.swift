import Testing
import TopologyCore
@testable import TopologyView

/// The proxy's level beside the client's (`--envoy-admin`): the balancing line, the Proxy pane.
@Suite struct ProxyViewTests {
    static func report(_ calls: [Int], failing: Int? = nil) -> ObservedChannel {
        let subs = calls.enumerated().map { i, n -> ObservedSubchannel in
            var d = RPCDelta()
            d.started = n
            d.succeeded = n
            let ok = i != failing
            return ObservedSubchannel(endpoint: Endpoint(addresses: [.tcp(host: "10.0.0.\(i + 1)", port: 50051)], ready: ok), state: ok ? .ready : .transientFailure,
                                      reason: ok ? nil : "failed Envoy's active health check", calls: d, activeStreams: 1,
                                      lifetime: ObservedCalls(started: Int64(n * 10), succeeded: Int64(n * 10), failed: 0))
        }
        var r = ObservedChannel(source: "envoy http://127.0.0.1:9901", state: .ready, subchannels: subs,
                                process: ObservedProcess(channels: [ObservedChannelRow(id: 1, parent: nil, target: "greeter", state: .ready, callsStarted: 0,
                                                                                       callsSucceeded: 0, callsFailed: 0, subchannels: calls.count)],
                                                         watched: 1, kind: "envoy 1.40.0"))
        r.intervalMs = 1000
        return r
    }

    @Test func bothLevels() {
        var m = Model()
        var t: Millis = 0
        func send(_ e: Event) { t += 10; _ = m.apply(TimedEvent(at: t, e)) }
        send(.sessionStarted(SessionInfo(target: "envoy:10000", resolver: "dns", policy: .roundRobin, rpc: "greeter", identityHeader: "x-served-by",
                                         traffic: .rate(100), tickMs: 250, startedAt: 0, host: "h", version: "t")))
        send(.resolverUpdated(ResolverResult(endpoints: [Endpoint(addresses: [.tcp(host: "127.0.0.1", port: 10000)])])))
        send(.subchannel(1, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
        send(.subchannel(1, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
        for _ in 0..<3 { t += 990; send(.proxyReport(Self.report([50, 50, 0], failing: 2))) }
        #expect(m.balancingNote == "client → 1 connection to Envoy; Envoy → 2/3 hosts: balancing happens at the proxy")
        let text = Dashboard.render(model: m, state: ViewState(), width: 130, height: 40).grid.lines.joined(separator: "\n")
        #expect(text.contains("client → 1 connection to Envoy; Envoy → 2/3 hosts: balancing happens at the proxy"))
        #expect(text.contains("Envoy 1.40.0 ─ cluster greeter (3 hosts) ─ fairness 1.00"), "\(text)")
        let failing = text.split(separator: "\n").first { $0.contains("10.0.0.3:50051") && $0.contains("unhealthy") }
        #expect(failing?.contains("failed Envoy's active health check") == true, "\(text)")
        let healthy = text.split(separator: "\n").first { $0.contains("10.0.0.1:50051") && $0.contains("healthy") }
        #expect(healthy?.contains("50%") == true && healthy?.contains("50") == true)
        #expect(m.log.entries.contains { $0.text.contains("proxy host 10.0.0.3:50051") } == false, "no change, no line")
        send(.proxyReport(Self.report([50, 50, 0], failing: 1)))
        #expect(m.log.entries.contains { $0.text == "proxy host 10.0.0.2:50051 healthy → unhealthy: failed Envoy's active health check" })
        send(.proxyFailed("envoy admin at http://127.0.0.1:9901: connection refused; retry in 1s"))
        #expect(m.proxy?.hosts.count == 3, "the picture is kept")
        let snap = Snapshot(m)
        #expect(snap.proxy?.error?.contains("connection refused") == true && snap.proxy?.hosts.count == 3)
        #expect(Pane.order(m) == [.endpoints, .subchannels, .traffic, .proxy, .events])
    }
}
