import Testing
import TopologyCore
@testable import TopologyView

/// An observed channel (`grpctop attach`) in the dashboard: the same panes; the keys that would
/// drive traffic are gone.
@Suite struct ObservedViewTests {
    func observedModel() -> Model {
        var m = Model()
        _ = m.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(
            target: "channelz:127.0.0.1:50052", resolver: "channelz", policy: .roundRobin, rpc: "(observed)", identityHeader: nil,
            traffic: .rate(0), tickMs: 1000, startedAt: 0, host: "h", version: "t", observed: true))))
        var calls = RPCDelta()
        calls.started = 40
        calls.succeeded = 40
        let subs = (1...2).map { i in
            ObservedSubchannel(endpoint: Endpoint(addresses: [.tcp(host: "10.0.0.\(i)", port: 50051)]), state: .ready, calls: calls)
        }
        for t in 1...3 {
            _ = m.apply(TimedEvent(at: Millis(t * 1000), .observedChannel(ObservedChannel(source: "channelz", state: .ready, subchannels: subs))))
        }
        return m
    }

    @Test func panesShowTheObservedChannel() {
        let m = observedModel()
        #expect(m.isObserved && m.policyName == "observed")
        let text = Dashboard.render(model: m, state: ViewState(), width: 160, height: 40).grid.lines.joined(separator: "\n")
        #expect(text.contains("observed  80 rps"))
        #expect(text.contains("Subchannels (2) observed"))
        #expect(text.contains("10.0.0.1:50051") && text.contains("10.0.0.2:50051"))
        #expect(text.contains("attached to channelz:127.0.0.1:50052"))
        #expect(!text.contains("policy") && !text.contains("+/-"))
        #expect(text.contains("read, no load sent") && !text.contains("load rate"))
    }

    @Test func keysThatDriveTrafficAreGone() {
        for key: Key in [.char("l"), .char("+"), .char("-"), .char("x"), .char("r")] {
            #expect(KeyMap.action(for: key, observed: true) == nil, "\(key)")
            #expect(KeyMap.action(for: key) != nil, "\(key)")
        }
        #expect(KeyMap.action(for: .char("m"), observed: true) == .marker)
        #expect(!KeyMap.footerHints(observed: true).contains { $0.hint == "policy" || $0.hint == "rate" })
    }
}
