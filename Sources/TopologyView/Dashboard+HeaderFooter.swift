import Foundation
import TopologyCore

/// The dashboard's header (target, resolver, policy, rates, fairness, clock), the replay's
/// timeline and the key footer.
extension Dashboard {
    static func drawHeader(_ grid: inout CellGrid, _ m: Model, _ state: ViewState, _ f: (index: Double?, word: String), _ g: Glyphs) {
        grid.fill(y: 0, role: .header)
        grid.fill(y: 1, role: .header)
        let tick = m.tickMs
        let rps = m.channel.rate(seconds: 1, tickMs: tick)
        let errs = m.channel.errorRate(seconds: 1, tickMs: tick)
        let errPct = rps > 0 ? errs / rps * 100 : 0
        var right = clock(m)
        if state.paused { right = "PAUSED  " + right }
        if state.timeline != nil { right = "REPLAY  " + right }
        if let rec = state.recording { right = rec + "  " + right }
        // What must fit comes first; the target gets what is left, then the RPC kind and clock.
        var parts = "  \(m.policyName)\(m.policyExtras)  \(fmtRate(rps)) rps  err \(String(format: "%.1f", errPct))%"
        if m.channelQueued > 0 { parts += "  queued \(m.channelQueued)" }
        let fairText = "  fairness \(f.index.map { String(format: "%.2f", $0) } ?? "-") \(f.word)"
        let rpcText = "  \(m.session?.rpc ?? "")"
        let fixed = 9 + parts.count + fairText.count
        var showRPC = grid.width - fixed - rpcText.count - right.count - 2 >= 20
        var showClock = grid.width - fixed - right.count - 2 >= 16
        if !showClock && (state.paused || state.timeline != nil) { right = state.timeline != nil ? "REPLAY" : "PAUSED"; showClock = true }
        if !showClock { showRPC = false }
        let targetRoom = grid.width - fixed - (showRPC ? rpcText.count : 0) - (showClock ? right.count + 2 : 0) - 1
        var x = grid.put(" grpctop ", x: 0, y: 0, role: .accent)
        x += grid.put(fit(m.session?.target ?? "", max(8, targetRoom), middle: true), x: x, y: 0, role: .header)
        x += grid.put(parts, x: x, y: 0, role: .header)
        if showRPC { x += grid.put(rpcText, x: x, y: 0, role: .header) }
        let fairRole: StyleRole = f.word == "balanced" ? .ready : (f.word == "no traffic" ? .header : .warning)
        x += grid.put(fairText, x: x, y: 0, role: fairRole)
        let rx = grid.width - right.count - 1
        if showClock && rx > x { grid.put(right, x: rx, y: 0, role: state.paused ? .warning : .header) }

        // Second line: resolver and channel state.
        var x2 = grid.put(" resolver \(m.session?.resolver ?? "-"): ", x: 0, y: 1, role: .header)
        let r = m.resolver
        if let err = r.error {
            x2 += grid.put("ERROR \(err.message) (for \(formatDuration(m.now - err.since)), keeping \(r.endpoints.count))", x: x2, y: 1, role: .failure)
        } else if let last = r.lastUpdate {
            let ready = r.endpoints.filter(\.ready).count
            x2 += grid.put("\(r.endpoints.count) endpoints (\(ready) ready), updated \(formatDuration(m.now - last)) ago", x: x2, y: 1, role: .header)
        } else {
            x2 += grid.put("waiting for the first answer", x: x2, y: 1, role: .connecting)
        }
        x2 += grid.put("  channel ", x: x2, y: 1, role: .header)
        x2 += grid.put(m.channelState.rawValue, x: x2, y: 1, role: role(for: m.channelState))
        // An observed channel carries its application's load, not ours.
        x2 += grid.put(m.isObserved ? "  read, no load sent" : "  load \(m.traffic)", x: x2, y: 1, role: .header)
        let failed = m.channel.total.failed
        if failed > 0 {
            grid.put("  \(failed) failed", x: x2, y: 1, role: .failure)
        } else if m.channel.total.completed > 0 {
            grid.put("  0 failed", x: x2, y: 1, role: .ready)
        }
    }

    /// What the resolver says of itself, for the Endpoints pane's title: "refresh grpc (on
    /// disconnect, ≥ 30s apart) · TTL 1s · answer 2.1s ago · next lookup on disconnect". Times
    /// the resolver gives as wall-clock milliseconds are shown relative to the model's clock.
    public static func resolverStatus(_ m: Model) -> String? {
        let info = m.resolver.info
        var parts: [String] = []
        if let r = info["refresh"] { parts.append("refresh \(r)") }
        if let ttl = info["ttl"] { parts.append("TTL \(ttl)") }
        let wallNow = (m.session?.startedAt ?? 0) * 1000 + Double(m.now)
        // Times from a resolver (or a recording) are not trusted to be sane numbers.
        func ms(_ d: Double) -> Int64 { d.isFinite ? Int64(max(-1e15, min(1e15, d))) : 0 }
        if let a = info["answeredAt"].flatMap(Double.init) { parts.append("answer \(formatDuration(ms(wallNow - a))) ago") }
        if let n = info["nextAt"].flatMap(Double.init) {
            let d = ms(n - wallNow)
            parts.append(d > 0 ? "next lookup in \(formatDuration(d))" : "lookup due")
        } else if let n = info["next"], !n.isEmpty {
            parts.append("next lookup \(n)")
        }
        for key in ["policy", "watch"] { if let v = info[key] { parts.append("\(key) \(v)") } }
        return parts.isEmpty ? nil : parts.joined(separator: " · ")
    }

    static func clock(_ m: Model) -> String {
        m.session == nil ? formatDuration(m.now) : clockAt(m, m.now) + " UTC"
    }

    /// `▶ 01:23 / 05:00 ━━━━●─────── 4×` with markers as `▼` on the bar; returns the width used.
    static func drawTimeline(_ grid: inout CellGrid, _ t: Timeline, y: Int, _ g: Glyphs) -> Int {
        func mmss(_ ms: Millis) -> String {
            let s = max(0, ms) / 1000
            return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%02d:%02d", s / 60, s % 60)
        }
        let speed = t.speed == t.speed.rounded() ? "\(Int(t.speed))×" : "\(t.speed)×"
        var x = grid.put(" \(t.paused ? (g.ascii ? "||" : "‖") : (g.ascii ? ">" : "▶")) \(mmss(t.position)) / \(mmss(t.duration)) ", x: 0, y: y, role: .footerKey)
        let barWidth = max(10, min(40, grid.width / 4))
        var bar = Array(repeating: g.ascii ? Character("-") : Character("─"), count: barWidth)
        let frac = t.duration > 0 ? Double(t.position) / Double(t.duration) : 0
        let head = min(barWidth - 1, Int(frac * Double(barWidth - 1)))
        for i in 0..<head { bar[i] = g.ascii ? "=" : "━" }
        for m in t.markers where t.duration > 0 { bar[min(barWidth - 1, Int(Double(m) / Double(t.duration) * Double(barWidth - 1)))] = g.ascii ? "v" : "▼" }
        bar[head] = g.ascii ? "o" : "●"
        x += grid.put(" " + String(bar) + " ", x: x, y: y, role: .footer)
        x += grid.put(speed + " ", x: x, y: y, role: t.speed == 1 ? .footer : .warning)
        return x
    }

    static func drawFooter(_ grid: inout CellGrid, _ state: ViewState, y: Int, _ g: Glyphs, demo: Bool = false, observed: Bool = false, policyFixed: Bool = false) {
        grid.fill(y: y, role: .footer)
        if state.editingFilter {
            let x = grid.put(" filter: ", x: 0, y: y, role: .footerKey)
            grid.put(state.filter + "_   (Enter keep, Esc clear)", x: x, y: y, role: .footer)
            return
        }
        if let text = state.markerText {
            let x = grid.put(" marker label: ", x: 0, y: y, role: .footerKey)
            grid.put(text + "_   (Enter mark, Esc cancel; empty is fine)", x: x, y: y, role: .footer)
            return
        }
        if let text = state.goToText {
            let x = grid.put(" go to: ", x: 0, y: y, role: .footerKey)
            grid.put(text + "_   (mm:ss or 90s; Enter go, Esc cancel)", x: x, y: y, role: .footer)
            return
        }
        var x = 0
        if let t = state.timeline { x = drawTimeline(&grid, t, y: y, g) }
        if !state.filter.isEmpty {
            x += grid.put(" filter \"\(state.filter)\" ", x: x, y: y, role: .warning)
        }
        let hints: [(String, String)] = state.showHelp ? [("Esc", "back"), ("?", "close help"), ("q", "quit")]
            : (state.details != nil ? [("Esc", "back"), ("q", "quit"), ("?", "help")] : KeyMap.footerHints(demo: demo, replay: state.timeline != nil, observed: observed, policyFixed: policyFixed))
        for (key, hint) in hints {
            let k = key == "↑↓" ? g.arrows : key
            if x + k.count + hint.count + 2 > grid.width { break }
            x += grid.put(" " + k, x: x, y: y, role: .footerKey)
            x += grid.put(" " + hint + " ", x: x, y: y, role: .footer)
        }
    }
}
