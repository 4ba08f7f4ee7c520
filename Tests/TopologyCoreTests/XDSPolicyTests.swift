import Foundation
import Testing
@testable import TopologyCore

/// The xDS policy tree (clusters → priorities → localities → round_robin) in virtual time.
@Suite struct XDSPolicyTests {
    static func endpoint(_ port: Int, cluster: String = "greeter", priority: Int = 0, locality: String = "us/a",
                         localityWeight: Int = 1, clusterWeight: Int = 1, ready: Bool = true) -> Endpoint {
        Endpoint(addresses: [.tcp(host: "127.0.0.1", port: port)], pod: "pod-\(port)", ready: ready,
                 metadata: ["cluster": cluster, "cluster_weight": "\(clusterWeight)", "priority": "\(priority)",
                            "locality": locality, "locality_weight": "\(localityWeight)"])
    }

    static func xds(_ h: inout Harness, _ eps: [Endpoint]) -> [Effect] {
        h.send(.resolverUpdated(ResolverResult(endpoints: eps, lbTree: "xds")))
    }

    /// Picks from the current picker, `n` times, with a deterministic random source.
    static func picks(_ h: Harness, _ n: Int) -> [SubchannelID: Int] {
        guard let spec = h.picker else { return [:] }
        var p = Picker(spec: spec, randomStart: 0)
        var counts: [SubchannelID: Int] = [:]
        var r = 0
        for _ in 0..<n {
            r += 1
            if let id = p.pick(outstanding: { _ in 0 }, random: { r }) { counts[id, default: 0] += 1 }
        }
        return counts
    }

    /// Priority 1 is only started when priority 0 fails; priority 0 READY again takes the RPCs
    /// back and priority 1's subchannels go.
    @Test func priorityFailoverAndBack() {
        var h = Harness(policy: .roundRobin)
        let e = Self.xds(&h, [Self.endpoint(1), Self.endpoint(2), Self.endpoint(3, priority: 1)])
        #expect(h.model.policyName == "xds")
        #expect(h.created(e) == [1, 2], "priority 1 is not started while priority 0 may work")
        h.state(1, .connecting)
        h.state(1, .ready)
        #expect(h.picker?.ready == [1])
        #expect(h.model.policyTree.find(["greeter"])?.note == "priority 0 READY")
        h.state(1, .transientFailure, "connection refused")
        h.state(2, .connecting)
        let fail = h.state(2, .transientFailure, "connection refused")
        #expect(h.created(fail) == [3], "priority 1 starts when priority 0 fails")
        #expect(h.model.log.entries.contains { $0.text == "priority 0 → priority 1 in use: priority 0 TRANSIENT_FAILURE" })
        h.state(3, .connecting)
        h.state(3, .ready)
        #expect(h.picker?.ready == [3])
        #expect(h.model.channelState == .ready)
        let tree = h.model.policyTree.find(["greeter"])
        #expect(tree?.note == "priority 1: priority 0 TRANSIENT_FAILURE")
        #expect(tree?.children.map { $0.inUse } == [false, true])

        h.state(1, .connecting)
        let back = h.state(1, .ready)
        #expect(h.picker?.ready == [1])
        #expect(h.shutdowns(back) == [3], "priority 1 is shut down once priority 0 is READY again")
    }

    /// A priority that stays CONNECTING is given up after the failover timer (10 s, checked on
    /// the stats ticks).
    @Test func failoverTimer() {
        var h = Harness(policy: .roundRobin)
        _ = Self.xds(&h, [Self.endpoint(1), Self.endpoint(2, priority: 1)])
        h.state(1, .connecting)
        var created: [SubchannelID] = []
        for _ in 0..<50 {
            h.t += 240  // with send's 10 ms: one tick per 250 ms
            created += h.created(h.send(.stats(StatsTick())))
            if !created.isEmpty { break }
        }
        #expect(created == [2])
        #expect(h.t >= Priority.failoverMs && h.t < Priority.failoverMs + 600, "at \(h.t) ms")
        #expect(h.model.log.entries.contains { $0.text.contains("priority 0 not READY within 10s (failover timer)") })
    }

    /// Localities weighted 1:3, round_robin inside each.
    @Test func weightedLocalities() {
        var h = Harness(policy: .roundRobin)
        _ = Self.xds(&h, [Self.endpoint(1, locality: "us/a", localityWeight: 1), Self.endpoint(2, locality: "us/b", localityWeight: 3),
                          Self.endpoint(3, locality: "us/b", localityWeight: 3)])
        for id in 1...3 { h.state(id, .connecting); h.state(id, .ready) }
        let counts = Self.picks(h, 4000)
        #expect(counts[1] == 1000)
        #expect(counts[2] == 1500 && counts[3] == 1500)
        let localities = h.model.policyTree.find(["greeter", "0"])?.children
        #expect(localities?.map { $0.label ?? "" } == ["us/a", "us/b"])
        #expect(localities?.map { $0.weight ?? 0 } == [1, 3])
    }

    /// A route's weighted clusters, 80/20.
    @Test func weightedClusters() {
        var h = Harness(policy: .roundRobin)
        _ = Self.xds(&h, [Self.endpoint(1, cluster: "green", clusterWeight: 80), Self.endpoint(2, cluster: "blue", clusterWeight: 20)])
        for id in 1...2 { h.state(id, .connecting); h.state(id, .ready) }
        let counts = Self.picks(h, 1000)
        #expect(counts[1] == 800 && counts[2] == 200, "\(counts)")
    }

    /// An endpoint that moves to another locality ends up owned, connected and picked there
    /// (not shut down by the locality it left after the new one took it).
    @Test func endpointMovesLocality() {
        var h = Harness(policy: .roundRobin)
        _ = Self.xds(&h, [Self.endpoint(1, locality: "us/a"), Self.endpoint(2, locality: "us/b")])
        for id in 1...2 { h.state(id, .connecting); h.state(id, .ready) }
        let moved = Self.xds(&h, [Self.endpoint(1, locality: "us/a"), Self.endpoint(2, locality: "us/a")])
        #expect(h.shutdowns(moved) == [2])
        let new = h.created(moved)
        #expect(new.count == 1)
        h.state(new[0], .connecting)
        h.state(new[0], .ready)
        #expect(h.picker?.ready == [1, new[0]])
        #expect(h.model.policyTree.find(["greeter", "0"])?.children.map { $0.label } == ["us/a"])
    }

    /// The user's policy key does not replace the control plane's tree; a keyframe keeps it.
    @Test func treeIsTheControlPlanesAndRoundTrips() throws {
        var h = Harness(policy: .roundRobin)
        _ = Self.xds(&h, [Self.endpoint(1), Self.endpoint(2, priority: 1)])
        h.state(1, .transientFailure, "refused")
        h.send(.policyChanged(.pickFirst))
        #expect(h.model.policyName == "xds")
        let copy = try JSONDecoder().decode(Model.self, from: JSONEncoder().encode(h.model))
        #expect(copy.policyName == "xds")
        #expect(copy.policyTree == h.model.policyTree)
    }
}
