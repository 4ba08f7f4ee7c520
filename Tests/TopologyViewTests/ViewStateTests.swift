import Testing
import TopologyCore
@testable import TopologyView

@Suite struct KeyMapTests {
    /// Every key listed in help dispatches to its action, and no key is bound twice.
    /// In each mode (live, demo, replay) every key is bound once and dispatches its binding.
    @Test(arguments: [(false, false), (true, false), (false, true)]) func everyHelpKeyDispatches(demo: Bool, replay: Bool) {
        var seen: [Key: Action] = [:]
        for b in KeyMap.bindings(demo: demo, replay: replay) {
            for k in b.keys {
                #expect(seen[k] == nil, "\(k) bound twice")
                seen[k] = b.action
                #expect(KeyMap.action(for: k, demo: demo, replay: replay) == b.action)
            }
            #expect(demo || !b.demoOnly)
            #expect(replay ? !b.liveOnly : !b.replayOnly)
        }
        // Replay takes Home/End/g from row navigation and drops what would change a live engine.
        #expect(KeyMap.action(for: .home, replay: true) == .replayStart && KeyMap.action(for: .home) == .top)
        #expect(KeyMap.action(for: .char("g"), replay: true) == .goToTime && KeyMap.action(for: .char("l"), replay: true) == nil)
    }

    @Test func helpScreenShowsEveryBinding() {
        var s = ViewState()
        s.showHelp = true
        let text = Dashboard.render(model: Script.healthyRoundRobin(), state: s, width: 120, height: 40).grid.lines.joined(separator: "\n")
        for b in KeyMap.bindings(demo: false) { #expect(text.contains(b.help), "help lacks \(b.help)") }
        for b in KeyMap.bindings where b.demoOnly || b.replayOnly { #expect(!text.contains(b.help), "live help shows \(b.help)") }
    }

    /// The footer shows the hints from the key map.
    @Test func footerHints() {
        let frame = Dashboard.render(model: Script.healthyRoundRobin(), state: ViewState(), width: 200, height: 40)
        let footer = frame.grid.lines.last ?? ""
        for (key, hint) in KeyMap.footerHints() { #expect(footer.contains("\(key) \(hint)"), "footer lacks \(key) \(hint)") }
    }
}

@Suite struct ViewStateTests {
    let model = Script.healthyRoundRobin()

    func rows(_ s: ViewState) -> PaneRows { PaneRows(model: model, state: s) }

    @Test func focusCyclesAndSelectionIsClamped() {
        var s = ViewState()
        #expect(s.focus == .traffic)
        _ = s.handle(.tab, rows: rows(s), model: model)
        #expect(s.focus == .events)
        _ = s.handle(.tab, rows: rows(s), model: model)
        #expect(s.focus == .endpoints)
        _ = s.handle(.backTab, rows: rows(s), model: model)
        #expect(s.focus == .events)
        s.focus = .subchannels
        for _ in 0..<10 { _ = s.handle(.down, rows: rows(s), model: model) }
        #expect(s.selected[.subchannels] == 2)
        _ = s.handle(.char("k"), rows: rows(s), model: model)
        #expect(s.selected[.subchannels] == 1)
        _ = s.handle(.home, rows: rows(s), model: model)
        #expect(s.selected[.subchannels] == 0)
    }

    @Test func enterOpensWhatIsHighlightedAndEscGoesBack() {
        var s = ViewState()
        s.focus = .subchannels
        _ = s.handle(.down, rows: rows(s), model: model)
        _ = s.handle(.enter, rows: rows(s), model: model)
        #expect(s.details == .subchannel(2))
        let text = Dashboard.render(model: model, state: s, width: 100, height: 30).grid.lines.joined(separator: "\n")
        #expect(text.contains("Subchannel #2"))
        #expect(text.contains("state timeline"))
        _ = s.handle(.escape, rows: rows(s), model: model)
        #expect(s.details == nil)
    }

    /// `x` renews the selected subchannel's connection; with no clear choice it does nothing.
    @Test func reconnectKeyTargetsTheSelectedSubchannel() {
        var s = ViewState()
        #expect(s.handle(.char("x"), rows: rows(s), model: model) == [], "3 subchannels, none selected: no guess")
        s.focus = .subchannels
        _ = s.handle(.down, rows: rows(s), model: model)
        #expect(s.handle(.char("x"), rows: rows(s), model: model) == [.reconnect(2)])
        s.focus = .endpoints
        _ = s.handle(.end, rows: rows(s), model: model)
        #expect(s.handle(.char("x"), rows: rows(s), model: model) == [.reconnect(3)])
    }

    /// `r` asks the resolver for a fresh answer.
    @Test func resolveNowKey() {
        var s = ViewState()
        #expect(s.handle(.char("r"), rows: rows(s), model: model) == [.resolveNow])
    }

    /// `n` (next scenario) exists only in the demo: elsewhere it is an unbound key.
    @Test func nextScenarioKeyOnlyInTheDemo() {
        var s = ViewState()
        #expect(s.handle(.char("n"), rows: rows(s), model: model) == [])
        var demo = ScriptedModel(target: "demo:rollout", resolver: "demo")
        demo.resolve([ScriptedModel.endpoint(0)])
        let m = demo.model
        #expect(s.handle(.char("n"), rows: PaneRows(model: m, state: s), model: m) == [.nextScenario])
        let footer = Dashboard.render(model: m, state: s, width: 200, height: 40).grid.lines.last ?? ""
        #expect(footer.contains("n next"))
        #expect(!(Dashboard.render(model: model, state: s, width: 200, height: 40).grid.lines.last ?? "").contains("n next"))
    }

    @Test func filterNarrowsEveryPane() {
        var s = ViewState()
        _ = s.handle(.char("/"), rows: rows(s), model: model)
        #expect(s.editingFilter)
        for c in "p1" { _ = s.handle(.char(c), rows: rows(s), model: model) }
        _ = s.handle(.enter, rows: rows(s), model: model)
        #expect(!s.editingFilter && s.filter == "p1")
        let r = rows(s)
        #expect(r.endpoints.map { model.endpoints[$0]!.endpoint.displayName } == ["greeter-7d9f8c6b5-p1"])
        #expect(r.traffic == ["greeter-7d9f8c6b5-p1"])
        #expect(r.subchannels == [2])
        // While typing, keys are text: 'q' does not quit.
        _ = s.handle(.char("/"), rows: r, model: model)
        #expect(s.handle(.char("q"), rows: r, model: model).isEmpty)
        _ = s.handle(.escape, rows: r, model: model)
        #expect(s.filter.isEmpty)
    }

    @Test func sortCyclesAndReverses() {
        var s = ViewState()
        s.focus = .traffic
        _ = s.handle(.char("S"), rows: rows(s), model: model)
        #expect(rows(s).traffic == ["greeter-7d9f8c6b5-p2", "greeter-7d9f8c6b5-p1", "greeter-7d9f8c6b5-p0"])
        _ = s.handle(.char("s"), rows: rows(s), model: model)
        #expect(s.sortColumn[.traffic] == 1)
        let title = Dashboard.render(model: model, state: s, width: 120, height: 40).grid.lines.first { $0.contains("Traffic per pod") } ?? ""
        #expect(title.contains("by rps"))
    }

    @Test func engineCommands() {
        var s = ViewState()
        #expect(s.handle(.char("l"), rows: rows(s), model: model) == [.setPolicy(.pickFirst)])
        #expect(s.handle(.char("+"), rows: rows(s), model: model) == [.setTraffic(.rate(600))])
        #expect(s.handle(.char("-"), rows: rows(s), model: model) == [.setTraffic(.rate(150))])
        // H: health checking on (service ""), and off again where it is on.
        #expect(s.handle(.char("H"), rows: rows(s), model: model) == [.setHealthCheck("")])
        let checked = Script.healthAndOutlier()
        #expect(s.handle(.char("H"), rows: rows(s), model: checked) == [.setHealthCheck(nil)])
        #expect(s.handle(.char("q"), rows: rows(s), model: model) == [.quit])
        #expect(s.handle(.ctrlC, rows: rows(s), model: model) == [.quit])
        _ = s.handle(.char("p"), rows: rows(s), model: model)
        #expect(s.paused)
        let header = Dashboard.render(model: model, state: s, width: 120, height: 40).grid.lines[0]
        #expect(header.contains("PAUSED"))
        _ = s.handle(.char("c"), rows: rows(s), model: model)
        #expect(!s.colors)
    }
}

@Suite struct LayoutTests {
    @Test func stackedHeightsFillTheScreenAndKeepMinimums() {
        for avail in [12, 21, 37, 57] {
            for want in [[3, 3, 3], [50, 50, 50], [1002, 1002, 1002], [4, 100, 4]] {
                let h = Dashboard.stackedHeights(avail: avail, want: want)
                #expect(h.reduce(0, +) == avail)
                #expect(h[0] >= 3 && h[1] >= 3 && h[2] >= 3 && h[3] >= 3, "\(avail) \(want) → \(h)")
            }
        }
    }

    @Test func everyPaneIsOnScreenAt80x24() {
        let lines = Dashboard.render(model: Script.healthyRoundRobin(), state: ViewState(), width: 80, height: 24).grid.lines
        for title in ["Endpoints (3)", "Subchannels (3)", "Traffic per pod (3)", "Events"] {
            #expect(lines.contains { $0.contains(title) }, "missing \(title)")
        }
        #expect(lines.filter { $0.contains("READY") }.count >= 3)
    }

    @Test func narrowColumnsKeepThePodSuffix() {
        let cut = Dashboard.fit("greeter-7d9f8c6b5-p0", 12, middle: true)
        #expect(cut == "greet…6b5-p0")
        #expect(cut.count == 12 && cut.hasSuffix("-p0"))
        #expect(Dashboard.fit("short", 12, middle: true) == "short")
    }

    @Test func tooSmall() {
        let lines = Dashboard.render(model: Model(), state: ViewState(), width: 59, height: 14).grid.lines
        #expect(lines.contains { $0.contains("terminal too small (59×14, need 60×15)") })
    }

    @Test func gridDiffFindsOnlyChangedCells() {
        var a = CellGrid(width: 10, height: 2)
        a.put("hello", x: 0, y: 0)
        var b = a
        #expect(b.changes(from: a).isEmpty)
        b.put("J", x: 0, y: 0)
        b.put("!", x: 9, y: 1, role: .failure)
        let runs = b.changes(from: a)
        #expect(runs.count == 2)
        #expect(runs[0].x == 0 && runs[0].y == 0 && runs[0].count == 1)
        #expect(runs[1].x == 9 && runs[1].y == 1)
        #expect(b.changes(from: CellGrid(width: 9, height: 2)).count == 2)  // size change: everything
    }

    @Test func stateIsNeverColourAlone() {
        // Every state word appears in the text of the backoff frame, not only as a colour.
        let text = Dashboard.render(model: Script.backendInBackoff(), state: ViewState(), width: 120, height: 40).grid.lines.joined()
        #expect(text.contains("TRANSIENT_FAILURE") && text.contains("READY") && text.contains("retry in"))
    }
}

@Suite struct FilterMatchTests {
    @Test func caseInsensitiveSubstring() {
        func has(_ h: String, _ n: String) -> Bool { PaneRows.containsIgnoringCase(h, Array(n.lowercased().utf8)) }
        #expect(has("greeter-7d9f8c6b5-P1", "p1"))
        #expect(has("READY", "ready"))
        #expect(has("10.0.0.1:50051", "0.1:5"))
        #expect(!has("pod-a", "pod-b"))
        #expect(!has("ab", "abc"))
        #expect(has("anything", ""))
        #expect(has("zone-é-x", "-x"))
    }
}

/// The Endpoints pane's title says what the resolver says of itself: refresh policy, TTL, the
/// age of the last answer and when the next lookup is due (relative to the model's clock).
@Suite struct ResolverStatusTests {
    @Test func dnsStatusInTheEndpointsTitle() {
        var s = ScriptedModel(target: "dns:///web.default.svc.cluster.local:50051", resolver: "dns")
        let startWallMs = 1_795_000_000_000.0
        s.send(.resolverUpdated(ResolverResult(endpoints: [ScriptedModel.endpoint(0)], info: [
            "refresh": "ttl (min 1.0s)", "ttl": "5s",
            "answeredAt": String(Int64(startWallMs) + 20), "nextAt": String(Int64(startWallMs) + 5020),
        ])))
        s.send(.notice(Notice(.info, "tick")), after: 2000)  // the clock moves 2 s on
        let text = Dashboard.resolverStatus(s.model)
        #expect(text == "refresh ttl (min 1.0s) · TTL 5s · answer 2.0s ago · next lookup in 3.0s", "\(text ?? "nil")")
        let frame = Dashboard.render(model: s.model, state: ViewState(), width: 120, height: 40).grid.lines.joined(separator: "\n")
        #expect(frame.contains("Endpoints (1) ─ refresh ttl (min 1.0s) · TTL 5s"))

        s.send(.resolverStatus(["next": "on disconnect", "nextAt": ""]))
        #expect(Dashboard.resolverStatus(s.model)?.hasSuffix("next lookup on disconnect") == true)
    }
}

/// What a Kubernetes rollout and a broken watch look like on screen.
@Suite struct KubernetesViewTests {
    /// Old and new revisions side by side: the Traffic title shows each revision's share, old → new.
    @Test func rolloutShowsTrafficByRevision() {
        var s = Script(target: "kubernetes:///greeter.shop:grpc", resolver: "kubernetes")
        var new = Script.endpoint(3)
        new.pod = "greeter-5c48d7f9b-q0"
        s.resolve((0..<3).map { Script.endpoint($0) })
        s.connect(1...3)
        s.send(.stats(StatsTick()), after: 2000)
        s.resolve((0..<3).map { Script.endpoint($0) } + [new])   // the surge pod, seen later
        s.connect(4...4)
        s.traffic(seconds: 12, perTick: ["greeter-7d9f8c6b5-p0": 10, "greeter-7d9f8c6b5-p1": 10, "greeter-7d9f8c6b5-p2": 10, "greeter-5c48d7f9b-q0": 10])
        let text = Dashboard.render(model: s.model, state: ViewState(), width: 200, height: 50).grid.lines.joined(separator: "\n")
        #expect(text.contains("by revision 7d9f8c6b5 75% → 5c48d7f9b 25%"), "\(text)")
        // One revision only: nothing to compare, no such line.
        let one = Dashboard.render(model: Script.healthyRoundRobin(), state: ViewState(), width: 200, height: 50).grid.lines.joined(separator: "\n")
        #expect(!one.contains("by revision"))
    }

    /// A watch that is down keeps the endpoints and says so in the Endpoints title and the header.
    @Test func watchDownIsShown() {
        var s = Script(target: "kubernetes:///greeter.shop:grpc", resolver: "kubernetes")
        s.resolve((0..<2).map { Script.endpoint($0) })
        s.send(.resolverFailed(ResolverFailure(message: "Kubernetes API https://10.96.0.1:443: connection refused; retry in 4s",
                                               info: ["watch": "down since 10:00:03 UTC, retry in 4s", "slices": "1"])))
        let text = Dashboard.render(model: s.model, state: ViewState(), width: 200, height: 50).grid.lines.joined(separator: "\n")
        #expect(text.contains("Endpoints (2)") && text.contains("watch down since 10:00:03 UTC, retry in 4s"), "\(text)")
        #expect(text.contains("connection refused"), "\(text)")
    }
}

/// `grpctop replay`'s keys, prompt and footer.
@Suite struct ReplayViewTests {
    func replayState() -> ViewState {
        var s = ViewState()
        s.timeline = Timeline(position: 83_000, duration: 300_000, speed: 4, paused: false, markers: [150_000])
        return s
    }

    @Test func keysBecomeReplayCommands() {
        var s = replayState()
        let m = Script.healthyRoundRobin()
        let rows = PaneRows(model: m, state: s)
        #expect(s.handle(.char(" "), rows: rows, model: m) == [.replay(.togglePause)])
        #expect(s.handle(.left, rows: rows, model: m) == [.replay(.seek(by: -10_000))])
        #expect(s.handle(.shiftRight, rows: rows, model: m) == [.replay(.seek(by: 60_000))])
        #expect(s.handle(.char("]"), rows: rows, model: m) == [.replay(.faster)])
        #expect(s.handle(.end, rows: rows, model: m) == [.replay(.end)])
        #expect(s.handle(.char("N"), rows: rows, model: m) == [.replay(.previousMarker)])
        #expect(s.handle(.char("l"), rows: rows, model: m) == [], "no policy changes in a replay")
        #expect(s.handle(.char("g"), rows: rows, model: m) == [] && s.goToText == "")
        for c in "1:30" { _ = s.handle(.char(c), rows: rows, model: m) }
        #expect(s.handle(.enter, rows: rows, model: m) == [.replay(.goTo(90_000))] && s.goToText == nil)
        #expect(ViewState.parseTime("1:02:03") == 3_723_000 && ViewState.parseTime("90s") == 90_000 && ViewState.parseTime("1:75") == nil)
        // The g prompt with ~25 digits trapped converting to Int64 (issue 15).
        #expect(ViewState.parseTime("9999999999999999999999999") == nil && ViewState.parseTime("99999999999999:00:00") == nil)
        #expect(ViewState.parseTime("1e300") == nil && ViewState.parseTime("8784:00:00") == DurationText.maxMillis)
    }

    @Test func footerShowsTheTimeline() {
        var s = replayState()
        let text = Dashboard.render(model: Script.healthyRoundRobin(), state: s, width: 160, height: 40).grid.lines
        let footer = text.last ?? ""
        #expect(footer.contains("▶ 01:23 / 05:00") && footer.contains("●") && footer.contains("▼") && footer.contains("4×"), "\(footer)")
        #expect(footer.contains("←→ seek") && footer.contains("[ ] speed"), "\(footer)")
        #expect(text[0].contains("REPLAY"))
        s.goToText = "2:"
        let prompt = Dashboard.render(model: Script.healthyRoundRobin(), state: s, width: 160, height: 40).grid.lines.last ?? ""
        #expect(prompt.contains("go to: 2:_"))
    }

    @Test func markerPromptAndRecordingIndicator() {
        var s = ViewState()
        let m = Script.healthyRoundRobin()
        let rows = PaneRows(model: m, state: s)
        #expect(s.handle(.char("m"), rows: rows, model: m) == [] && s.markerText == "")
        for c in "rollout v2" { _ = s.handle(.char(c), rows: rows, model: m) }
        let prompt = Dashboard.render(model: m, state: s, width: 120, height: 40).grid.lines.last ?? ""
        #expect(prompt.contains("marker label: rollout v2_"))
        #expect(s.handle(.enter, rows: rows, model: m) == [.marker("rollout v2")] && s.markerText == nil)
        s.recording = "REC 1.2 MB"
        #expect(Dashboard.render(model: m, state: s, width: 160, height: 40).grid.lines[0].contains("REC 1.2 MB"))
    }
}

@Suite struct EtcdViewTests {
    /// Registrations with leases: a TTL column, the one about to expire in the warning colour;
    /// resolvers without leases have no such column.
    @Test func leaseTTLColumn() throws {
        var s = Script(target: "etcd:///services/greeter", resolver: "etcd")
        var eps = (0..<3).map { Script.endpoint($0) }
        for i in eps.indices { eps[i].metadata = ["format": "etcd", "lease": "694d7a3b1c2e\(i)", "ttl": i == 1 ? "2s" : "9s"] }
        s.resolve(eps)
        let frame = Dashboard.render(model: s.model, state: ViewState(), width: 200, height: 50).grid
        let text = frame.lines.joined(separator: "\n")
        #expect(text.contains("TTL"), "\(text)")
        let row = try #require(frame.lines.firstIndex { $0.contains(eps[1].displayName) && $0.contains("2s") }, "\(text)")
        let col = try #require(frame.lines[row].range(of: " 2s")?.upperBound, "no TTL cell in \(frame.lines[row])")
        let x = frame.lines[row].distance(from: frame.lines[row].startIndex, to: col) - 1
        #expect(frame[x, row].role == .warning)
        // The healthy lease's TTL is not in the warning colour.
        let calm = try #require(frame.lines.firstIndex { $0.contains(eps[0].displayName) && $0.contains("9s") })
        let calmCol = try #require(frame.lines[calm].range(of: " 9s")?.upperBound)
        #expect(frame[frame.lines[calm].distance(from: frame.lines[calm].startIndex, to: calmCol) - 1, calm].role != .warning)
        let plain = Dashboard.render(model: Script.healthyRoundRobin(), state: ViewState(), width: 200, height: 50).grid.lines.joined(separator: "\n")
        #expect(!plain.contains(" TTL "))
    }
}

@Suite struct ConsulViewTests {
    /// Consul: a CHECKS column — the passing count, or the failing check with its output, in the
    /// failure colour; other resolvers have no such column.
    @Test func checksColumn() throws {
        var s = Script(target: "consul:///web", resolver: "consul")
        var eps = (0..<3).map { Script.endpoint($0) }
        eps[0].metadata = ["health": "passing", "checks": "2 passing"]
        eps[1].metadata = ["health": "critical", "checks": "1 passing, 1 critical", "failing": "critical service:web-1: TTL expired"]
        eps[1].ready = false
        eps[1].serving = false
        eps[2].metadata = ["health": "warning", "checks": "1 passing, 1 warning", "failing": "warning slow: p99 over 1s; warning disk"]
        s.resolve(eps)
        let frame = Dashboard.render(model: s.model, state: ViewState(), width: 200, height: 50).grid
        let text = frame.lines.joined(separator: "\n")
        #expect(text.contains("CHECKS"), "\(text)")
        let row = try #require(frame.lines.firstIndex { $0.contains(eps[1].displayName) }, "\(text)")
        let cell = try #require(frame.lines[row].range(of: "critical: TTL expired"), "\(frame.lines[row])")
        #expect(frame[frame.lines[row].distance(from: frame.lines[row].startIndex, to: cell.lowerBound), row].role == .failure)
        #expect(frame.lines.contains { $0.contains(eps[0].displayName) && $0.contains("2 passing") })
        #expect(frame.lines.contains { $0.contains(eps[2].displayName) && $0.contains("warning: p99 over 1s") && !$0.contains("disk") })
        let plain = Dashboard.render(model: Script.healthyRoundRobin(), state: ViewState(), width: 200, height: 50).grid.lines.joined(separator: "\n")
        #expect(!plain.contains("CHECKS"))
    }
}
