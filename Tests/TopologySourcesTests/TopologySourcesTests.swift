import ChannelzAPI
import Testing
import TopologyCore
@testable import TopologySources

@Suite struct TraceCursorTests {
    func channel(_ events: [(String, Int64, Int32, Int32)]) -> Channelz.Channel {
        var c = Channelz.Channel()
        var ref = Channelz.ChannelRef()
        ref.channelId = 2
        c.ref = ref
        var data = Channelz.ChannelData()
        var trace = Channelz.ChannelTrace()
        trace.events = events.map { text, s, n, severity in
            var e = Channelz.ChannelTraceEvent()
            e.description = text
            var t = Channelz.Timestamp()
            t.seconds = s
            t.nanos = n
            e.timestamp = t
            e.severity = severity
            return e
        }
        data.trace = trace
        c.data = data
        return c
    }

    /// grpcio recomputes trace timestamps on every read (a few nanoseconds apart): the same
    /// event is reported once; a new one (later, or the same text again much later) is reported.
    @Test func eachEventOnceDespiteTimestampJitter() {
        var cursor = TraceCursor()
        let first = cursor.newEvents(channel: channel([("Channel state change to CONNECTING", 100, 396_747_353, 1),
                                                      ("Channel state change to READY", 100, 399_747_354, 1)]), poll: ChannelzPoll())
        #expect(first.map(\.text) == ["channelz: channel #2: Channel state change to CONNECTING", "channelz: channel #2: Channel state change to READY"])
        let again = cursor.newEvents(channel: channel([("Channel state change to CONNECTING", 100, 396_747_366, 1),
                                                      ("Channel state change to READY", 100, 399_747_361, 1)]), poll: ChannelzPoll())
        #expect(again.isEmpty)
        let later = cursor.newEvents(channel: channel([("Channel state change to READY", 100, 399_747_361, 1),
                                                      ("Channel state change to TRANSIENT_FAILURE", 130, 0, 3),
                                                      ("Channel state change to READY", 131, 0, 1)]), poll: ChannelzPoll())
        #expect(later.map(\.text) == ["channelz: channel #2: Channel state change to TRANSIENT_FAILURE", "channelz: channel #2: Channel state change to READY"])
        #expect(later.first?.level == .error)
    }
}

@Suite struct ObservedSessionTests {
    /// Events are applied in order, observers see each, and effects go nowhere.
    @Test func appliesReportsAndPublishes() {
        let session = ObservedSession()
        nonisolated(unsafe) var seen: [String] = []
        session.observe { timed, _ in seen.append("\(timed.event)".prefix(20).description) }
        session.submit(.sessionStarted(SessionInfo(target: "channelz:x", resolver: "channelz", policy: .roundRobin, rpc: "", identityHeader: nil,
                                                   traffic: .rate(0), tickMs: 1000, startedAt: 0, host: "h", version: "t", observed: true)))
        let sub = ObservedSubchannel(endpoint: Endpoint(addresses: [.tcp(host: "10.0.0.1", port: 1)]), state: .ready)
        session.submit(.observedChannel(ObservedChannel(source: "channelz x", state: .ready, subchannels: [sub])))
        #expect(seen.count == 2)
        session.withModel { m in
            #expect(m.isObserved)
            #expect(m.channelState == .ready)
            #expect(m.subchannelRows.map(\.state) == [.ready])
        }
    }
}
