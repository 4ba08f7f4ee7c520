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

    /// A process with two top channels (the first with a nested child channel) and a server
    /// holding two client connections, as channelz reports it.
    func processModel() -> Model {
        var m = observedModel()
        var socket = ObservedSocket(id: 31, remote: "10.0.0.1:50051", local: "10.0.9.9:40000", streamsStarted: 90, streamsSucceeded: 88,
                                    streamsFailed: 1, messagesSent: 90, messagesReceived: 88, keepAlivesSent: 3)
        socket.localWindow = 65_535
        socket.remoteWindow = 4_194_304
        socket.peerMaxStreams = 100
        socket.tlsCipher = "TLS_AES_128_GCM_SHA256"
        socket.peerSubject = "CN=web.shop, DNS:web.shop"
        socket.lastMessageSent = 3.5
        let sub = ObservedSubchannel(endpoint: Endpoint(addresses: [.tcp(host: "10.0.0.1", port: 50051)]), state: .ready, calls: RPCDelta(),
                                     activeStreams: 1, socket: socket, lifetime: ObservedCalls(started: 90, succeeded: 88, failed: 1, lastStarted: 3.9))
        var clients: [ObservedSocket] = []
        for i in 1...2 {
            let n = Int64(i * 10)
            clients.append(ObservedSocket(id: Int64(40 + i), remote: "10.1.0.\(i):5\(i)000", local: "10.0.9.9:50051", streamsStarted: n,
                                          streamsSucceeded: n, streamsFailed: 0, messagesSent: n, messagesReceived: n, keepAlivesSent: 0))
        }
        let process = ObservedProcess(
            channels: [
                ObservedChannelRow(id: 1, parent: nil, target: "dns:///web.shop:50051", state: .ready, callsStarted: 90, callsSucceeded: 88, callsFailed: 1,
                                   subchannels: 0, startedPerSecond: 42),
                ObservedChannelRow(id: 5, parent: nil, target: "dns:///db.shop:5432", state: .idle, callsStarted: 0, callsSucceeded: 0, callsFailed: 0, subchannels: 0),
                ObservedChannelRow(id: 3, parent: 1, target: "xds-child-cluster", state: .ready, callsStarted: 90, callsSucceeded: 88, callsFailed: 1, subchannels: 1),
            ],
            servers: [ObservedServer(id: 7, listen: ["[::]:50051"], callsStarted: 30, callsSucceeded: 30, callsFailed: 0, sockets: clients, socketCount: 2)],
            watched: 1)
        _ = m.apply(TimedEvent(at: 4000, .observedChannel(ObservedChannel(source: "channelz", state: .ready, subchannels: [sub], process: process))))
        return m
    }

    /// Channels (the watched one marked, the child nested under its parent) and Servers (each
    /// client connection a row) are panes; Tab reaches them; Enter on a channel watches it.
    @Test func channelsAndServersPanes() {
        let m = processModel()
        let text = Dashboard.render(model: m, state: ViewState(), width: 120, height: 40).grid.lines
        let joined = text.joined(separator: "\n")
        #expect(joined.contains("Channels (2)") && joined.contains("watching #1"))
        #expect(!joined.contains("Endpoints ("), "an observed channel's endpoints are its subchannels")
        let parent = text.firstIndex { $0.contains("* #1") && $0.contains("dns:///web.shop:50051") }
        let child = text.firstIndex { $0.contains("└ #3") && $0.contains("xds-child-cluster") }
        let other = text.firstIndex { $0.contains("#5") && $0.contains("dns:///db.shop:5432") }
        #expect(parent != nil && child != nil && other != nil, "\(joined)")
        if let parent, let child, let other { #expect(parent < child && child < other) }
        #expect(joined.contains("Servers (1)") && joined.contains("2 client connections"))
        #expect(joined.contains("server #7 [::]:50051") && joined.contains("10.1.0.1:51000") && joined.contains("10.1.0.2:52000"))

        var state = ViewState()
        let rows = PaneRows(model: m, state: state)
        #expect(rows.channels.map(\.id) == [1, 3, 5])
        var focus: [Pane] = []
        for _ in 0..<5 {
            _ = state.handle(.tab, rows: rows, model: m)
            focus.append(state.focus)
        }
        #expect(focus == [.servers, .events, .channels, .subchannels, .traffic])
        state.focus = .channels
        #expect(state.handle(.enter, rows: rows, model: m).isEmpty, "Enter on the watched channel changes nothing")
        _ = state.handle(.down, rows: rows, model: m)
        _ = state.handle(.down, rows: rows, model: m)
        #expect(state.handle(.enter, rows: rows, model: m) == [.watchChannel(5)])
        #expect(state.details == nil)
        state.timeline = Timeline(position: 0, duration: 1, speed: 1, paused: true, markers: [])
        #expect(state.handle(.enter, rows: rows, model: m).isEmpty, "a replay shows what was recorded")
    }

    /// The choice goes through the model: logged, and an effect for the source.
    @Test func chosenChannelIsAnEffect() {
        var m = processModel()
        let effects = m.apply(TimedEvent(at: 5000, .channelChosen(5)))
        #expect(effects.contains(.watchChannel(5)))
        #expect(m.log.entries.last?.text == "watching channel #5 dns:///db.shop:5432 (chosen)")
        #expect(!m.apply(TimedEvent(at: 5100, .channelChosen(1))).contains(.watchChannel(1)), "already watched")
    }

    /// Details: an observed subchannel's connection (streams, windows, keepalives, TLS), and a
    /// server's client connection.
    @Test func socketDetails() {
        let m = processModel()
        let id = m.subchannelRows.first { $0.endpoint.addresses.first?.description == "10.0.0.1:50051" && $0.state == .ready }!.id
        var state = ViewState()
        state.details = .subchannel(id)
        let text = Dashboard.render(model: m, state: state, width: 140, height: 40).grid.lines.joined(separator: "\n")
        #expect(text.contains("calls        started 90  ok 88  failed 1 (the process's counts)"))
        #expect(text.contains("remote 10.0.0.1:50051") && text.contains("TLS TLS_AES_128_GCM_SHA256, peer CN=web.shop, DNS:web.shop"))
        #expect(text.contains("streams      1 active / 100 (peer's MAX_CONCURRENT_STREAMS)"))
        #expect(text.contains("flow control local window 65535 (64 KiB)  remote window 4194304 (4 MiB)"))
        #expect(text.contains("keepalives   3 pings sent"))
        #expect(text.contains("sent 90 (last 500ms ago)"), "\(text)")

        state.details = nil
        state.focus = .servers
        let rows = PaneRows(model: m, state: state)
        _ = state.handle(.down, rows: rows, model: m)
        _ = state.handle(.enter, rows: rows, model: m)
        #expect(state.details == .serverSocket(server: 7, socket: 41))
        let socket = Dashboard.render(model: m, state: state, width: 140, height: 40).grid.lines.joined(separator: "\n")
        #expect(socket.contains("Client connection 10.1.0.1:51000") && socket.contains("plaintext") && socket.contains("windows not reported"))
        state.details = .server(7)
        let server = Dashboard.render(model: m, state: state, width: 140, height: 40).grid.lines.joined(separator: "\n")
        #expect(server.contains("clients      2 connections") && server.contains("listening    [::]:50051"))
    }

    /// Every pane of an attached process is on screen, stacked at 80×24 and side by side at
    /// 170×45, no line wider than the terminal.
    @Test(arguments: [(80, 24), (120, 34), (170, 45)])
    func everyPaneFits(width: Int, height: Int) {
        let m = processModel()
        let lines = Dashboard.render(model: m, state: ViewState(), width: width, height: height).grid.lines
        let text = lines.joined(separator: "\n")
        for title in ["Channels (2)", "Subchannels (", "Traffic per pod", "Servers (1)", "Events ("] {
            #expect(text.contains(title), "\(title) at \(width)×\(height):\n\(text)")
        }
        #expect(lines.allSatisfy { $0.count <= width })
        #expect(!text.contains("P99") && !text.contains("QUEUED"), "channelz times no calls and queues none")
    }
}
