import Foundation
import Testing
@testable import TopologyCore

/// A parent policy as the xDS issue needs them (weighted localities over round_robin): one
/// RoundRobin child per zone, weights per zone. Written here, outside the module, so the test
/// shows the protocol is enough to build a tree.
struct ByZone: LoadBalancingPolicy {
    static let name = "test_by_zone"
    var weights: [String: UInt32] = [:]
    var children: [String: AnyPolicy] = [:]

    init() {}
    init(weights: [String: UInt32]) { self.weights = weights }

    mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        let byZone = Dictionary(grouping: endpoints) { $0.zone ?? "" }
        for zone in children.keys.sorted() where byZone[zone] == nil {
            children[zone]!.shutDownAll(why: "zone \(zone) gone", table: &table)
            children[zone] = nil
        }
        for zone in byZone.keys.sorted() {
            var child = children[zone] ?? AnyPolicy(RoundRobin())
            child.update(endpoints: byZone[zone]!, table: &table)
            children[zone] = child
        }
    }
    mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        for zone in children.keys.sorted() where children[zone]!.owns(id) {
            children[zone]!.subchannelChanged(id, from: from, to: to, table: &table)
        }
    }
    func owns(_ id: SubchannelID) -> Bool { children.values.contains { $0.owns(id) } }
    mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for zone in children.keys.sorted() { children[zone]!.shutDownAll(why: why, table: &table) }
    }
    func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState {
        let states = children.values.map { $0.state(previous: previous, table: table) }
        return states.contains(.ready) ? .ready : (states.contains(.connecting) ? .connecting : .transientFailure)
    }
    func pickNode(table: SubchannelTable) -> any PickNode {
        WeightedPick(children.keys.sorted().map { (weights[$0] ?? 1, children[$0]!.pickNode(table: table)) })
    }
}

@Suite struct PolicyTreeTests {
    func endpoint(_ port: Int, zone: String) -> Endpoint {
        Endpoint(addresses: [.tcp(host: "127.0.0.1", port: port)], pod: "pod-\(port)", zone: zone)
    }

    /// A parent hands each child its endpoints; the children's subchannels share one table; a
    /// state change reaches only the owner; the weighted picker splits by zone weight.
    @Test func weightedZonesOverRoundRobin() {
        var table = SubchannelTable()
        var tree = ByZone(weights: ["a": 3, "b": 1])
        tree.update(endpoints: [endpoint(1, zone: "a"), endpoint(2, zone: "a"), endpoint(3, zone: "b")], table: &table)
        #expect(table.records.count == 3)
        #expect(table.takeWork().effects.filter { if case .connect = $0 { true } else { false } }.count == 3)
        for id in 1...3 {
            let from = table.transition(id, to: .ready, reason: nil, backoffMs: nil)!
            tree.subchannelChanged(id, from: from, to: .ready, table: &table)
        }
        #expect(tree.state(previous: .idle, table: table) == .ready)
        let node = tree.pickNode(table: table)
        #expect(node.ready.sorted() == [1, 2, 3])
        let picker = node.makePicker(randomStart: 0)
        var counts: [SubchannelID: Int] = [:]
        var n = 0
        for _ in 0..<4000 {
            n += 1
            counts[picker.pick(outstanding: { _ in 0 }, random: { n })!, default: 0] += 1
        }
        // zone a (3/4) spread over its two pods, zone b (1/4) on its one.
        #expect(counts[3] == 1000)
        #expect(counts[1]! + counts[2]! == 3000)

        // Zone b leaves: only its child shuts its subchannel down.
        _ = table.takeWork()
        tree.update(endpoints: [endpoint(1, zone: "a"), endpoint(2, zone: "a")], table: &table)
        let work = table.takeWork()
        #expect(work.effects == [.shutDown(3)])
        #expect(work.log.map(\.text) == ["subchannel #3 pod-3 → SHUTDOWN: zone b gone"])
        #expect(!tree.owns(3) && tree.owns(1))
    }

    /// The tree is encoded in keyframes by policy name and read back through the registry.
    @Test func policyTreeRoundTripsThroughAKeyframe() throws {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2])
        h.state(1, .connecting)
        h.state(1, .ready)
        let data = try JSONEncoder().encode(h.model)
        var copy = try JSONDecoder().decode(Model.self, from: data)
        #expect(copy.lb.name == "pick_first")
        #expect((copy.lb.policy as? PickFirst)?.selected == 1)
        // The copy goes on deciding as the original does.
        let a = h.state(1, .idle, "GOAWAY NO_ERROR")
        let b = copy.apply(TimedEvent(at: h.t, .subchannel(1, .stateChanged(to: .idle, reason: "GOAWAY NO_ERROR", backoffMs: nil))))
        #expect(a == b)
    }

    /// A keyframe written before policies were types (no `lb`, pick_first's state under
    /// `pickFirst`) is read back into the same decisions.
    @Test func keyframeWithoutPolicyTreeIsReadBack() throws {
        var h = Harness(policy: .pickFirst)
        _ = h.resolve([1, 2])
        h.state(1, .connecting)
        h.state(1, .ready)
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(h.model)) as! [String: Any]
        json["lb"] = nil
        json["listed"] = nil
        json["pickFirst"] = ["list": [], "index": 0, "selected": 1, "passFailed": false]
        var old = try JSONDecoder().decode(Model.self, from: JSONSerialization.data(withJSONObject: json))
        #expect((old.lb.policy as? PickFirst)?.selected == 1)
        #expect(old.lb.owns(1))
        let a = h.send(.resolverUpdated(ResolverResult(endpoints: [])))
        let b = old.apply(TimedEvent(at: h.t, .resolverUpdated(ResolverResult(endpoints: []))))
        #expect(a == b)
        #expect(h.shutdowns(a) == [1])
    }
}

@Suite struct ObservedChannelTests {
    func sub(_ port: Int, _ state: ConnectivityState, _ reason: String? = nil) -> ObservedSubchannel {
        ObservedSubchannel(endpoint: Endpoint(addresses: [.tcp(host: "10.0.0.\(port)", port: 50051)]), state: state, reason: reason)
    }

    /// Another process's channel: rows mirror the reports, nothing is connected, nothing is picked,
    /// the channel's state is the one reported, and the user's policy switch does not apply.
    @Test func reportsBecomeRowsWithoutAPolicy() {
        var h = Harness(policy: .roundRobin)
        let first = h.send(.observedChannel(ObservedChannel(source: "channelz", state: .connecting,
                                                            subchannels: [sub(1, .connecting), sub(2, .ready)])))
        #expect(h.model.isObserved)
        #expect(h.connects(first).isEmpty)
        #expect(h.model.channelState == .connecting)
        #expect(h.model.subchannelRows.map(\.state) == [.connecting, .ready])
        #expect(h.picker?.ready == [])

        let second = h.send(.observedChannel(ObservedChannel(source: "channelz", state: .ready,
                                                             subchannels: [sub(2, .ready), sub(3, .transientFailure, "connection refused")])))
        #expect(h.connects(second).isEmpty)
        #expect(h.model.channelState == .ready)
        #expect(h.model.subchannels[1]?.state == .shutdown)
        #expect(h.model.subchannels[3]?.state == .transientFailure)
        #expect(h.model.subchannels[3]?.lastDisconnectReason == "connection refused")
        #expect(h.model.log.entries.contains { $0.text == "subchannel #1 10.0.0.1:50051 → SHUTDOWN: gone from channelz" })

        #expect(h.send(.policyChanged(.pickFirst)).isEmpty)
        #expect(h.model.policy == .roundRobin)
    }
}

@Suite struct EventPumpTests {
    /// An effect that emits (a subchannel reporting CONNECTING while told to connect) queues its
    /// event behind: every effect of the outer event runs before the nested one is applied.
    @Test func effectsOfOneEventRunBeforeTheNextIsApplied() {
        var trace: [String] = []
        var pump: EventPump<String, String>!
        pump = EventPump(
            apply: { e in
                trace.append("apply \(e)")
                return e == "resolved" ? ["connect 1", "connect 2", "picker"] : []
            },
            perform: { effect in
                trace.append("do \(effect)")
                if effect.hasPrefix("connect") { pump.emit("\(effect.dropFirst(8)) connecting") }
            })
        pump.emit("resolved")
        #expect(trace == [
            "apply resolved", "do connect 1", "do connect 2", "do picker",
            "apply 1 connecting", "apply 2 connecting",
        ])
        #expect(pump.queued == 0)
    }
}
