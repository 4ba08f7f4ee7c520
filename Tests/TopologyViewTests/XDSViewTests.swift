import Testing
import TopologyCore
@testable import TopologyView

/// An `xds:///` target in the dashboard: the status line, the tree with weights and shares,
/// the endpoints' xDS columns.
@Suite struct XDSViewTests {
    static func endpoint(_ port: Int, priority: Int, locality: String, weight: Int, health: String = "HEALTHY") -> Endpoint {
        let ok = health == "HEALTHY"
        return Endpoint(addresses: [.tcp(host: "127.0.0.1", port: port)], zone: String(locality.split(separator: "/").last ?? ""), ready: ok,
                        metadata: ["cluster": "greeter", "cluster_weight": "1", "priority": "\(priority)", "locality": locality,
                                   "locality_weight": "\(weight)", "health": health, "weight": "1"])
    }

    static func model() -> Model {
        var m = Model()
        var t: Millis = 0
        func send(_ e: Event) { t += 10; _ = m.apply(TimedEvent(at: t, e)) }
        send(.sessionStarted(SessionInfo(target: "xds:///greeter", resolver: "xds", policy: .roundRobin, rpc: "greeter", identityHeader: nil,
                                         traffic: .rate(100), tickMs: 250, startedAt: 1_000_000, host: "h", version: "t")))
        send(.resolverUpdated(ResolverResult(endpoints: [
            endpoint(1, priority: 0, locality: "us/zone-a", weight: 1), endpoint(2, priority: 0, locality: "us/zone-a", weight: 1, health: "UNHEALTHY"),
            endpoint(3, priority: 0, locality: "us/zone-b", weight: 3), endpoint(4, priority: 1, locality: "eu/zone-c", weight: 1),
        ], lbTree: "xds")))
        for id in 1...2 {
            send(.subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
            send(.subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
        }
        // 40 RPCs a tick to 127.0.0.1:1 (zone-a), 120 to 127.0.0.1:3 (zone-b), for 2 s.
        for _ in 0..<8 {
            var tick = StatsTick()
            var a = RPCDelta(), b = RPCDelta()
            a.started = 40; a.succeeded = 40
            b.started = 120; b.succeeded = 120
            tick.subchannels = [SubchannelTick(id: 1, activeStreams: 0, queued: 0, delta: a), SubchannelTick(id: 2, activeStreams: 0, queued: 0, delta: b)]
            tick.backends = [BackendTick(name: "127.0.0.1:1", delta: a), BackendTick(name: "127.0.0.1:3", delta: b)]
            t += 240
            send(.stats(tick))
        }
        send(.xdsStatus(XDSStatus(server: "127.0.0.1:18000", connection: "connected", since: 1_000_000, resources: [
            XDSResourceStatus(type: "LDS", name: "greeter", version: "1", state: "acked", updated: 1_000_000),
            XDSResourceStatus(type: "CDS", name: "greeter", version: "2", state: "nacked", nackReason: "cluster greeter: type STATIC is not supported", updated: 1_000_000),
        ])))
        return m
    }

    @Test func treeRows() {
        let rows = Self.model().xdsRows
        #expect(rows.map(\.id) == ["greeter", "greeter/0", "greeter/0/us/zone-a", "greeter/0/us/zone-b", "greeter/1", "greeter/1/eu/zone-c"])
        #expect(rows[1].inUse == true && rows[4].inUse == false && rows[4].state == nil, "priority 1 is not started")
        #expect(rows[2].expectedShare == 0.25 && rows[3].expectedShare == 0.75)
        #expect(rows[2].observedShare == 0.25 && rows[3].observedShare == 0.75)
        #expect((rows[2].ready, rows[2].total) == (1, 2))
        #expect(rows[0].note == "priority 0 READY")
    }

    @Test func paneAndStatusLine() {
        let m = Self.model()
        let text = Dashboard.render(model: m, state: ViewState(), width: 140, height: 44).grid.lines.joined(separator: "\n")
        #expect(text.contains("xDS 127.0.0.1:18000 connected") && text.contains("LDS v1 ACK")
                && text.contains("CDS greeter NACK (keeping v2): cluster greeter: type STATIC is not supported"), "\(text)")
        #expect(text.contains("xDS (1 cluster)") && text.contains("priority 0 ◀ in use") && text.contains("not started"))
        #expect(text.contains("greeter  priority 0 READY"), "the cluster row says which priority is in use and why")
        let zoneB = text.split(separator: "\n").first { $0.contains("    us/zone-b") }.map(String.init) ?? ""
        #expect(zoneB.contains("READY") && zoneB.contains("75%"), "\(zoneB)")
        #expect(text.contains("CLUSTER") && text.contains("LOCALITY") && text.contains("UNHEALTHY"))
        #expect(m.policyName == "xds" && text.contains("  xds  "))
        #expect(!text.contains(" policy ") && KeyMap.action(for: .char("l"), policyFixed: true) == nil, "the control plane chooses the policy: no l")
        // Tab order starts at the xDS pane.
        var state = ViewState()
        state.focus = .events
        _ = state.handle(.tab, rows: PaneRows(model: m, state: state), model: m)
        #expect(state.focus == .xds)
        let table = Snapshot(m).table()
        #expect(table.contains("cluster greeter") && table.contains("priority 1") && table.contains("us/zone-b"))
    }
}
