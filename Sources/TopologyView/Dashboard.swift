import Foundation
import TopologyCore

/// Characters for borders, bars and sparklines: Unicode, or ASCII when the locale is not UTF-8.
public struct Glyphs: Sendable {
    public var rule: Character
    public var sparks: [Character]
    public var barFull: Character
    public var barEmpty: Character
    public var arrows: String
    public var sortUp: Character
    public var sortDown: Character
    /// Between revisions in the Traffic title (old → new).
    public var arrowRight: String

    /// Only ASCII reaches the terminal (LANG=C): other characters are replaced after drawing.
    public var ascii: Bool

    public static let unicode = Glyphs(rule: "─", sparks: Array(" ▁▂▃▄▅▆▇█"), barFull: "█", barEmpty: "░", arrows: "↑↓", sortUp: "▲", sortDown: "▼", arrowRight: "→", ascii: false)
    public static let ascii = Glyphs(rule: "-", sparks: Array(" .,:;+=*#"), barFull: "#", barEmpty: ".", arrows: "jk", sortUp: "^", sortDown: "v", arrowRight: "->", ascii: true)
}

/// The whole screen as a pure function of the model, the view state and the terminal size.
///
/// ```
/// ┌ header (2 rows): target, resolver, policy, RPS, errors, fairness, marks, clock ┐
/// │ Endpoints        (resolver's answer, added / removed marks)                     │
/// │ Subchannels      (state, streams/max, queued, counters, RTT, reason, backoff)   │
/// │ Traffic per pod  (RPS, 60 s sparkline, share bar, p50/p99, errors)             │
/// │ Events           (scrolling log)                                                │
/// └ footer: key hints from KeyMap (or the filter prompt)                           ┘
/// ```
/// At 160 columns and more the panes go side by side (Endpoints + Subchannels left, Traffic +
/// Events right). Details and Help replace the panes; below 60×15 a centred message says so.
public enum Dashboard {
    public static let minWidth = 60
    public static let minHeight = 15

    public struct Frame: Sendable {
        public var grid: CellGrid
        public var rows: PaneRows
        public var pageSizes: [Pane: Int]
    }

    /// - Parameter previousRows: the last frame's rows, reused when the model's rows did not
    ///   change (see `PaneRows.init(model:state:reusing:)`).
    public static func render(
        model m: Model, state: ViewState, width: Int, height: Int, glyphs g: Glyphs = .unicode, caption: String? = nil,
        previousRows: PaneRows? = nil
    ) -> Frame {
        var grid = CellGrid(width: width, height: height)
        let rows = PaneRows(model: m, state: state, reusing: previousRows)
        guard width >= minWidth, height >= minHeight else {
            let msg = "terminal too small (\(width)×\(height), need \(minWidth)×\(minHeight))"
            let short = "too small \(width)x\(height)"
            let text = msg.count <= width ? msg : short
            grid.put(text, x: max(0, (width - text.count) / 2), y: height / 2, role: .warning)
            return Frame(grid: grid, rows: rows, pageSizes: [:])
        }
        let fairness = m.liveFairness()
        drawHeader(&grid, m, state, fairness, g)
        var top = 2
        if let x = m.xds {
            let line = XDSStatusText.line(x, now: wallNow(m))
            let bad = x.resources.contains { $0.state == "nacked" }
            grid.fill(y: top, role: .header)
            grid.put(" " + line, x: 0, y: top, role: bad ? .failure : (x.connection.hasPrefix("down") ? .warning : .header))
            top += 1
        }
        if let note = m.balancingNote {
            grid.fill(y: top, role: .header)
            grid.put(" " + note, x: 0, y: top, role: .header)
            top += 1
        }
        if let caption = caption ?? m.caption, !caption.isEmpty {
            grid.fill(y: top, role: .accent)
            grid.put(" " + caption, x: 0, y: top, role: .accent)
            top += 1
        }
        let bottom = height - 1
        var pageSizes: [Pane: Int] = [:]
        if state.showHelp {
            drawHelp(&grid, top: top, bottom: bottom, g, demo: m.isDemo, replay: state.timeline != nil, observed: m.isObserved, policyFixed: m.isXDS)
        } else if let target = state.details {
            drawDetails(&grid, m, target, top: top, bottom: bottom, g)
        } else if m.proxy != nil && m.observedProcess == nil && !m.isXDS {
            pageSizes = drawProxyLayout(&grid, m, rows, state, fairness: fairness, top: top, bottom: bottom, width: width, g)
        } else if m.isXDS {
            pageSizes = drawXDSLayout(&grid, m, rows, state, fairness: fairness, top: top, bottom: bottom, width: width, g)
        } else if let process = m.observedProcess {
            pageSizes = drawObserved(&grid, m, process, rows, state, fairness: fairness, top: top, bottom: bottom, width: width, g)
        } else if width >= 160 && height >= 30 {
            let leftW = width / 2
            let avail = bottom - top
            let epH = max(4, min(rows.endpoints.count + 2, avail / 2))
            pageSizes[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: top, w: leftW - 1, h: epH, g)
            pageSizes[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: top + epH, w: leftW - 1, h: avail - epH, g)
            let trH = max(4, min(rows.traffic.count + 2, avail * 2 / 3))
            pageSizes[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: leftW, y: top, w: width - leftW, h: trH, g)
            pageSizes[.events] = drawEvents(&grid, m, rows, state, x: leftW, y: top + trH, w: width - leftW, h: avail - trH, g)
        } else {
            let heights = stackedHeights(avail: bottom - top, want: [rows.endpoints.count + 2, rows.subchannels.count + 2, rows.traffic.count + 2])
            var y = top
            pageSizes[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[0], g)
            y += heights[0]
            pageSizes[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[1], g)
            y += heights[1]
            pageSizes[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: 0, y: y, w: width, h: heights[2], g)
            y += heights[2]
            pageSizes[.events] = drawEvents(&grid, m, rows, state, x: 0, y: y, w: width, h: bottom - y, g)
        }
        drawFooter(&grid, state, y: bottom, g, demo: m.isDemo, observed: m.isObserved, policyFixed: m.isXDS)
        if g.ascii { grid.asciify() }
        return Frame(grid: grid, rows: rows, pageSizes: pageSizes)
    }

    /// Heights of Endpoints, Subchannels, Traffic and Events stacked in `avail` rows: each table
    /// gets what it wants up to a fair share (at least title + header + 1 row), Events at
    /// least 3 rows and whatever is left.
    static func stackedHeights(avail: Int, want: [Int]) -> [Int] {
        let eventsMin = max(3, avail / 6)
        var h = want.map { _ in 3 }
        var left = avail - eventsMin - 3 * want.count
        // Hand out rows one at a time to the table furthest below what it wants (fair share).
        while left > 0 {
            var best = -1
            var bestGap = 0
            for i in want.indices where want[i] > h[i] {
                let gap = want[i] - h[i]
                if best < 0 || h[i] < h[best] || (h[i] == h[best] && gap > bestGap) { best = i; bestGap = gap }
            }
            if best < 0 { break }
            h[best] += 1
            left -= 1
        }
        return h + [avail - h.reduce(0, +)]
    }

    // MARK: - table machinery

    struct Column<Row> {
        var title: String
        var width: Int
        var right = false
        /// Lower is kept first when the terminal is narrow.
        var priority: Int
        /// Takes the columns left over (the first chosen flex column does).
        var flex = false
        /// Names keep their distinguishing ends: "greeter-7d9…b5-p0".
        var middleEllipsis = false
        var cell: (Row) -> (String, StyleRole)
    }

    /// Fits text into `w` columns, cutting the middle ("…") or the end.
    static func fit(_ s: String, _ w: Int, middle: Bool) -> String {
        guard s.count > w, w > 0 else { return s }
        guard middle, w >= 5 else { return String(s.prefix(w)) }
        let head = (w - 1) / 2
        let tail = w - 1 - head
        return String(s.prefix(head)) + "…" + String(s.suffix(tail))
    }

    /// Draws a titled table; returns the number of data rows it can show (its page size).
    @discardableResult
    static func drawTable<ID, Row>(
        _ grid: inout CellGrid, pane: Pane, title: String, state: ViewState, x: Int, y: Int, w: Int, h: Int,
        rows ids: [ID], lookup: (ID) -> Row?, columns: [Column<Row>], _ g: Glyphs
    ) -> Int {
        let rows = ids
        guard h >= 1, w > 0 else { return 0 }
        let focused = state.focus == pane && state.details == nil
        var t = "\(g.rule) \(title) "
        let sorts = PaneRows.sortColumns(pane)
        if let c = state.sortColumn[pane], c != 0, sorts.indices.contains(c) {
            t += "\(g.rule) by \(sorts[c]) \(state.sortReversed[pane] == true ? g.sortDown : g.sortUp) "
        } else if state.sortReversed[pane] == true {
            t += "\(g.rule) reversed "
        }
        grid.fill(y: y, from: x, to: x + w, char: g.rule, role: focused ? .titleFocused : .title)
        grid.put(t, x: x, y: y, role: focused ? .titleFocused : .title, maxWidth: w)
        guard h >= 2 else { return 0 }

        // Choose the columns that fit, by priority; the last one chosen takes what is left.
        var chosen: [Int] = []
        var used = 0
        for i in columns.indices.sorted(by: { columns[$0].priority < columns[$1].priority }) {
            let need = columns[i].width + (chosen.isEmpty ? 0 : 1)
            if used + need <= w { chosen.append(i); used += need }
        }
        chosen.sort()
        var widths = chosen.map { columns[$0].width }
        if let flex = chosen.firstIndex(where: { columns[$0].flex }) ?? widths.indices.last { widths[flex] += w - used }

        var cx = x
        for (k, i) in chosen.enumerated() {
            let c = columns[i]
            let text = c.right ? pad(c.title, widths[k], right: true) : c.title
            grid.put(text, x: cx, y: y + 1, role: .columnHeader, maxWidth: widths[k])
            cx += widths[k] + 1
        }
        grid.restyle(y: y + 1, from: x, to: x + w, role: .columnHeader)
        let page = h - 2
        guard page > 0 else { return 0 }
        let sel = min(state.selected[pane] ?? 0, max(0, rows.count - 1))
        var first = 0
        if sel >= page { first = sel - page + 1 }
        if rows.isEmpty {
            grid.put(state.filter.isEmpty ? "(none)" : "(no match for \"\(state.filter)\")", x: x + 1, y: y + 2, role: .muted, maxWidth: w - 1)
            return page
        }
        for r in 0..<page {
            let idx = first + r
            guard idx < rows.count else { break }
            guard let row = lookup(rows[idx]) else { continue }
            let ry = y + 2 + r
            var cx = x
            for (k, i) in chosen.enumerated() {
                let (raw, role) = columns[i].cell(row)
                let text = fit(raw, widths[k], middle: columns[i].middleEllipsis)
                let shown = columns[i].right ? pad(text, widths[k], right: true) : text
                grid.put(shown, x: cx, y: ry, role: role, maxWidth: widths[k])
                cx += widths[k] + 1
            }
            if focused && idx == sel { grid.restyle(y: ry, from: x, to: x + w, role: .selected) }
        }
        if rows.count > page {
            let more = "\(first + 1)-\(min(rows.count, first + page))/\(rows.count)"
            grid.put(" " + more + " ", x: x + w - more.count - 3, y: y, role: focused ? .titleFocused : .title)
        }
        return page
    }

    static func pad(_ s: String, _ w: Int, right: Bool) -> String {
        guard s.count < w else { return s }
        let p = String(repeating: " ", count: w - s.count)
        return right ? p + s : s + p
    }

    static func role(for state: ConnectivityState) -> StyleRole {
        switch state {
        case .ready: .ready
        case .connecting: .connecting
        case .idle: .idle
        case .transientFailure: .failure
        case .shutdown: .muted
        }
    }

    static func role(for c: EndpointCondition) -> StyleRole {
        switch c {
        case .ready: .ready
        case .draining: .draining
        case .notReady: .failure
        }
    }

    static func fmtRate(_ r: Double) -> String {
        if r >= 100 || r == r.rounded() { return String(Int(r.rounded())) }
        return String(format: "%.1f", r)
    }

    static func fmtMicros(_ us: UInt64?) -> String {
        guard let us else { return "-" }
        if us < 1000 { return "\(us)µs" }
        if us < 100_000 { return String(format: "%.1fms", Double(us) / 1000) }
        if us < 10_000_000 { return "\(us / 1000)ms" }
        return String(format: "%.1fs", Double(us) / 1e6)
    }

    // MARK: - panes

    static func drawEndpoints(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState, x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let now = m.now
        var columns: [Column<EndpointRow>] = [
            Column(title: "  POD / ADDRESS", width: 24, priority: 0, flex: true, middleEllipsis: true) { r in
                let mark = r.removedAt != nil ? "- " : (r.isNew(now: now) ? "+ " : "  ")
                return (mark + r.endpoint.displayName, r.removedAt != nil ? .removed : (r.isNew(now: now) ? .added : .normal))
            },
            Column(title: "ADDRESSES", width: 21, priority: 2) { r in (r.endpoint.addresses.map(\.description).joined(separator: ","), .normal) },
            Column(title: "CONDITION", width: 9, priority: 1) { r in
                r.removedAt != nil ? ("removed", .removed) : (r.endpoint.condition.rawValue, role(for: r.endpoint.condition))
            },
            Column(title: "NODE", width: 10, priority: 6) { r in (r.endpoint.node ?? "-", .muted) },
            Column(title: "ZONE", width: 8, priority: 4) { r in (r.endpoint.zone ?? "-", .normal) },
            Column(title: "REV", width: 10, priority: 7) { r in (r.endpoint.revision ?? "-", .muted) },
            Column(title: "AGE", width: 6, right: true, priority: 3) { r in (formatDuration(now - r.firstSeen), .normal) },
            Column(title: "SUB", width: 4, right: true, priority: 5) { r in
                (r.removedAt == nil ? (m.subchannel(for: r.endpoint.key).map { "#\($0.id)" } ?? "-") : "-", .muted)
            },
        ]
        if m.isXDS {
            // Where the control plane put each endpoint, and what it says of it.
            columns.removeAll { $0.title == "NODE" || $0.title == "REV" || $0.title == "ZONE" }
            columns.insert(contentsOf: [
                Column(title: "CLUSTER", width: 10, priority: 2, middleEllipsis: true) { r in (r.endpoint.metadata["cluster"] ?? "-", .normal) },
                Column(title: "PRI", width: 3, right: true, priority: 2) { r in (r.endpoint.metadata["priority"] ?? "-", .normal) },
                Column(title: "LOCALITY", width: 14, priority: 3, middleEllipsis: true) { r in (r.endpoint.metadata["locality"] ?? "-", .normal) },
                Column(title: "HEALTH", width: 9, priority: 1) { r in
                    let h = r.endpoint.metadata["health"] ?? "-"
                    return (h, h == "HEALTHY" || h == "UNKNOWN" ? .ready : (h == "DRAINING" ? .draining : .failure))
                },
                Column(title: "W", width: 3, right: true, priority: 5) { r in (r.endpoint.metadata["weight"] ?? "-", .muted) },
            ], at: 3)
        }
        if m.session?.resolver == "consul" {
            // Consul: the instance's checks, the failing one's name and output.
            columns.insert(Column(title: "CHECKS", width: 24, priority: 1, middleEllipsis: true) { r in
                let h = r.endpoint.metadata["health"] ?? "-"
                var text = h == "passing" ? (r.endpoint.metadata["checks"] ?? h) : (r.endpoint.metadata["failing"]?.split(separator: ";").first.map(String.init) ?? h)
                // "critical grpc: output" → "critical: output" (the check's name is in the details).
                if h != "passing", let colon = text.range(of: ": "), let space = text.firstIndex(of: " "), space < colon.lowerBound {
                    text = String(text[..<space]) + String(text[colon.lowerBound...])
                }
                return (text, r.removedAt != nil ? .removed : (h == "passing" ? .ready : (h == "warning" ? .warning : .failure)))
            }, at: 3)
        }
        if m.resolver.endpoints.contains(where: { $0.metadata["ttl"] != nil }) {
            // Registries with leases (etcd): the time the registration has left, a pod about to
            // vanish in the warning colour.
            columns.insert(Column(title: "TTL", width: 7, right: true, priority: 1) { r in
                guard let ttl = r.endpoint.metadata["ttl"] else { return ("-", .muted) }
                let seconds = Int(ttl.dropLast()) ?? 0
                return (ttl, r.removedAt != nil ? .removed : (ttl == "expired" || seconds <= 3 ? .warning : .normal))
            }, at: 3)
        }
        let live = m.resolver.endpoints.count
        let status = resolverStatus(m).map { " \(g.rule) \($0)" } ?? ""
        return drawTable(&grid, pane: .endpoints, title: "Endpoints (\(live))\(status)", state: state, x: x, y: y, w: w, h: h,
                         rows: rows.endpoints, lookup: { m.endpoints[$0] }, columns: columns, g)
    }

    static func drawSubchannels(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState, x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let now = m.now
        var columns: [Column<SubchannelRecord>] = [
            Column(title: "#", width: 3, priority: 0) { s in ("#\(s.id)", .muted) },
            Column(title: "ENDPOINT", width: 18, priority: 0, flex: true, middleEllipsis: true) { s in (s.endpoint.displayName, s.state == .shutdown ? .muted : .normal) },
            Column(title: "STATE", width: 17, priority: 0) { s in
                m.isHeldBack(s) ? (m.stateLabel(s), .warning) : (s.state.rawValue, role(for: s.state))
            },
            Column(title: "FOR", width: 6, right: true, priority: 2) { s in (formatDuration(now - s.stateSince), .normal) },
            Column(title: "STREAMS", width: 8, right: true, priority: 1) { s in
                (m.streamsText(s), m.streamsHeld(s) >= s.effectiveStreamLimit ? .warning : .normal)
            },
            Column(title: "QUEUED", width: 6, right: true, priority: 3) { s in ("\(s.queued)", s.queued > 0 ? .warning : .normal) },
            Column(title: "STARTED", width: 8, right: true, priority: 6) { s in ("\(s.traffic.total.started)", .normal) },
            Column(title: "OK", width: 7, right: true, priority: 4) { s in ("\(s.traffic.total.succeeded)", .normal) },
            Column(title: "FAILED", width: 6, right: true, priority: 4) { s in ("\(s.traffic.total.failed)", s.traffic.total.failed > 0 ? .failure : .normal) },
            Column(title: "RTT", width: 7, right: true, priority: 5) { s in (s.rttMicros.map { fmtMicros(UInt64($0)) } ?? "-", .normal) },
            Column(title: "LAST REASON / RETRY", width: 14, priority: 2, flex: true) { s in
                if s.state == .ready, m.isHeldBack(s) {
                    if let o = m.outlierState(s.id), o.ejected, let t = m.outlierText(s) { return (t, .warning) }
                    if let h = m.healthText(s) { return (h, .warning) }
                }
                if s.state == .transientFailure, let until = s.backoffUntil {
                    return ("retry in \(formatDuration(until - now))  \(s.lastDisconnectReason ?? "")", .failure)
                }
                if let ga = s.lastGoAway, s.state != .ready { return ("GOAWAY \(ga.code) \(formatDuration(now - ga.at)) ago", .draining) }
                return (s.lastDisconnectReason ?? "-", s.lastDisconnectReason == nil ? .muted : .normal)
            },
        ]
        if m.isObserved {
            // Another process's subchannels: no queue or PING RTT is known; streams are its
            // socket's, the limit only when the process reports the peer's; the time of the
            // last call instead.
            columns.removeAll { ["QUEUED", "RTT", "STREAMS"].contains($0.title) }
            columns.insert(Column(title: "STREAMS", width: 8, right: true, priority: 1) { s in
                ("\(s.activeStreams)\(s.maxConcurrentStreams.map { "/\($0)" } ?? "")", .normal)
            }, at: 4)
            columns.insert(Column(title: "LAST CALL", width: 10, right: true, priority: 5) { s in (ago(m, s.observedLifetime?.lastStarted), .muted) }, at: 8)
        }
        let live = m.liveSubchannelCount
        return drawTable(&grid, pane: .subchannels, title: "Subchannels (\(live)) \(m.policyName)", state: state, x: x, y: y, w: w, h: h,
                         rows: rows.subchannels, lookup: { m.subchannels[$0] }, columns: columns, g)
    }

    /// One row of the Traffic pane, looked up for visible rows only.
    struct TrafficRow {
        var name: String
        var traffic: TrafficSeries?
    }

    static func drawTraffic(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState, fairness: (index: Double?, word: String),
                            x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let tick = m.tickMs
        let recentTotal = m.backendsCompleted10s
        let maxRate = max(1, m.backendsPeakPerSecond)
        let sparkWidth = w >= 150 ? 60 : (w >= 110 ? 30 : (w >= 90 ? 20 : 12))
        let barWidth = w >= 110 ? 20 : 9
        var columns: [Column<TrafficRow>] = [
            Column(title: "POD", width: 20, priority: 0, flex: true, middleEllipsis: true) { r in (r.name, r.traffic == nil ? .muted : .normal) },
            Column(title: "RPS", width: 6, right: true, priority: 0) { r in (fmtRate(r.traffic?.rate(seconds: 1, tickMs: tick) ?? 0), .normal) },
            Column(title: "LAST 60s", width: sparkWidth, priority: 2) { r in
                (sparkline(r.traffic?.perSecond(tickMs: tick) ?? [], width: sparkWidth, max: maxRate, g), .spark)
            },
            Column(title: "SHARE", width: barWidth + 6, priority: 1) { r in
                let share = recentTotal > 0 ? Double(r.traffic?.completed(lastSeconds: 10, tickMs: tick) ?? 0) / Double(recentTotal) : 0
                let filled = Int((share * Double(barWidth)).rounded())
                let bar = String(repeating: g.barFull, count: filled) + String(repeating: g.barEmpty, count: barWidth - filled)
                return (bar + String(format: " %3.0f%%", share * 100), .bar)
            },
            Column(title: "P50", width: 7, right: true, priority: 1) { r in (fmtMicros(r.traffic?.recentPercentile(50)), .normal) },
            Column(title: "P99", width: 7, right: true, priority: 1) { r in (fmtMicros(r.traffic?.recentPercentile(99)), .normal) },
            Column(title: "ERRORS", width: 6, right: true, priority: 1) { r in
                let f = r.traffic?.total.failed ?? 0
                return ("\(f)", f > 0 ? .failure : .normal)
            },
            Column(title: "TOTAL", width: 8, right: true, priority: 4) { r in ("\(r.traffic?.total.completed ?? 0)", .muted) },
        ]
        // channelz counts calls, it does not time them.
        if m.isObserved { columns.removeAll { $0.title == "P50" || $0.title == "P99" } }
        var title = "Traffic per pod (\(rows.traffic.count)) \(g.rule) fairness \(fairness.index.map { String(format: "%.2f", $0) } ?? "-") \(fairness.word)"
        let revisions = m.revisionShares()
        if !revisions.isEmpty {
            title += " \(g.rule) by revision " + revisions.map { "\($0.revision) \(String(format: "%.0f%%", $0.share * 100))" }.joined(separator: " \(g.arrowRight) ")
        }
        return drawTable(&grid, pane: .traffic, title: title, state: state, x: x, y: y, w: w, h: h, rows: rows.traffic,
                         lookup: { name in TrafficRow(name: name, traffic: m.backends[name]?.traffic) }, columns: columns, g)
    }

    static func sparkline(_ values: [Double], width: Int, max top: Double, _ g: Glyphs) -> String {
        let tail = Array(values.suffix(width))
        var s = String(repeating: " ", count: width - tail.count)
        let levels = g.sparks.count - 1
        for v in tail {
            let i = v <= 0 ? 0 : max(1, min(levels, Int((v / top * Double(levels)).rounded(.up))))
            s.append(g.sparks[i])
        }
        return s
    }

    static func drawEvents(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState, x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        guard h >= 1 else { return 0 }
        let focused = state.focus == .events && state.details == nil
        grid.fill(y: y, from: x, to: x + w, char: g.rule, role: focused ? .titleFocused : .title)
        grid.put("\(g.rule) Events (\(m.log.total)) ", x: x, y: y, role: focused ? .titleFocused : .title, maxWidth: w)
        let page = h - 1
        guard page > 0 else { return 0 }
        // Newest at the bottom; moving up scrolls back in time.
        let entries = rows.events
        let sel = state.selected[.events]
        let back = sel.map { max(0, entries.count - 1 - $0) } ?? 0
        let end = max(0, entries.count - back)
        let start = max(0, end - page)
        for (i, e) in entries[start..<end].enumerated() {
            let ry = y + 1 + i
            let t = clockAt(m, e.at)
            grid.put(t, x: x, y: ry, role: .muted, maxWidth: w)
            let role: StyleRole = switch e.level {
            case .info: .normal
            case .warning: .warning
            case .error: .failure
            case .marker: .accent
            case .caption: .accent
            }
            grid.put(e.text, x: x + t.count + 1, y: ry, role: role, maxWidth: w - t.count - 1)
        }
        return page
    }

    static func clockAt(_ m: Model, _ at: Millis) -> String {
        guard let start = m.session?.startedAt else { return formatDuration(at) }
        // A recording's start time is not trusted to be a sane number of seconds.
        let wall = start + Double(at) / 1000
        guard wall.isFinite, abs(wall) < 1e15 else { return "--:--:--" }
        let t = Int(wall)
        let s = ((t % 86_400) + 86_400) % 86_400
        return String(format: "%02d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
    }

    // MARK: - details and help

    static func drawDetails(_ grid: inout CellGrid, _ m: Model, _ target: DetailTarget, top: Int, bottom: Int, _ g: Glyphs) {
        var lines: [(String, StyleRole)] = []
        func add(_ s: String, _ r: StyleRole = .normal) { lines.append((s, r)) }
        var title = "Details"
        var histogram: LatencyHistogram?
        switch target {
        case .subchannel(let id):
            guard let s = m.subchannels[id] else { add("subchannel #\(id) is gone", .muted); break }
            title = "Subchannel #\(id) \(g.rule) \(s.endpoint.displayName)"
            add("state        \(m.stateLabel(s)) for \(formatDuration(m.now - s.stateSince))", m.isHeldBack(s) ? .warning : role(for: s.state))
            add("addresses    \(s.endpoint.addresses.map(\.description).joined(separator: ", "))")
            let t = s.traffic.total
            if m.isObserved {
                for (text, role) in observedSubchannelLines(m, s) { add(text, role) }
            } else {
                add("connection   local \(s.local ?? "-")  remote \(s.remote ?? "-")  connect \(s.connectMs.map { "\($0)ms" } ?? "-")  connections \(s.connections)")
                let healthStream = m.streamsHeld(s) > s.activeStreams ? " + 1 health-check Watch" : ""
                add("streams      \(s.activeStreams) active\(healthStream) / \(s.maxConcurrentStreams.map(String.init) ?? "100 (peer sent no MAX_CONCURRENT_STREAMS; NIO's cap)")  queued \(s.queued)")
                if let h = m.healthText(s) { add("health       \(h)", m.isHeldBack(s) ? .warning : .normal) }
                if let o = m.outlierText(s) { add("outlier      \(o)", (m.outlierState(s.id)?.ejected ?? false) ? .warning : .normal) }
                add("RPCs         started \(t.started)  ok \(t.succeeded)  failed \(t.failed)  messages sent \(t.messagesSent) received \(t.messagesReceived)")
            }
            if !t.codes.isEmpty { add("errors       " + t.codes.sorted { $0.key < $1.key }.map { "\(GRPCStatusName.name($0.key)) \($0.value)" }.joined(separator: ", "), .failure) }
            if !m.isObserved { add("rtt          \(s.rttMicros.map { fmtMicros(UInt64($0)) } ?? "-")") }
            if let ga = s.lastGoAway {
                add("last GOAWAY  \(ga.code) last-stream \(ga.lastStreamID) \(ga.debug.isEmpty ? "" : "\"\(ga.debug)\" ")\(formatDuration(m.now - ga.at)) ago (\(s.goAways) in all)", .draining)
            }
            if let b = s.backoffUntil, s.state == .transientFailure { add("retry in     \(formatDuration(b - m.now))", .failure) }
            if !s.endpoint.metadata.isEmpty {
                add("metadata     " + s.endpoint.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            }
            add("")
            add("state timeline", .columnHeader)
            for tr in s.transitions.suffix(20) {
                add("  \(clockAt(m, tr.at))  \(tr.from.rawValue) → \(tr.to.rawValue)\(tr.reason.map { "  \($0)" } ?? "")", role(for: tr.to))
            }
            histogram = s.traffic.latency
        case .backend(let name):
            title = "Pod \(name)"
            guard let b = m.backends[name] else { add("no traffic yet", .muted); break }
            let t = b.traffic.total
            add("RPCs         ok \(t.succeeded)  failed \(t.failed)  total \(t.completed)")
            add("rate         \(fmtRate(b.traffic.rate(seconds: 1, tickMs: m.tickMs))) rps now, \(fmtRate(b.traffic.rate(seconds: 10, tickMs: m.tickMs))) over 10s, \(fmtRate(b.traffic.rate(seconds: 60, tickMs: m.tickMs))) over 60s")
            add("latency      p50 \(fmtMicros(b.traffic.latency.percentile(50)))  p90 \(fmtMicros(b.traffic.latency.percentile(90)))  p99 \(fmtMicros(b.traffic.latency.percentile(99)))  max \(fmtMicros(b.traffic.latency.percentile(100)))")
            if !t.codes.isEmpty { add("errors       " + t.codes.sorted { $0.key < $1.key }.map { "\(GRPCStatusName.name($0.key)) \($0.value)" }.joined(separator: ", "), .failure) }
            if let e = m.resolver.endpoints.first(where: { $0.displayName == name }) {
                add("endpoint     \(e.addresses.map(\.description).joined(separator: ", "))  \(e.condition.rawValue)  zone \(e.zone ?? "-")  node \(e.node ?? "-")")
            }
            histogram = b.traffic.latency
        case .server, .serverSocket:
            title = serverDetails(m, target, g, add)
        case .endpoint(let key):
            guard let row = m.endpoints[key] else { add("endpoint is gone", .muted); break }
            let e = row.endpoint
            title = "Endpoint \(e.displayName)"
            add("addresses    \(e.addresses.map(\.description).joined(separator: ", "))")
            add("condition    \(e.condition.rawValue) (ready \(e.ready), serving \(e.serving), terminating \(e.terminating)) for \(formatDuration(m.now - row.conditionSince))", role(for: e.condition))
            add("pod          \(e.pod ?? "-")  node \(e.node ?? "-")  zone \(e.zone ?? "-")  hostname \(e.hostname ?? "-")  revision \(e.revision ?? "-")")
            add("seen         \(formatDuration(m.now - row.firstSeen)) ago\(row.removedAt.map { ", removed \(formatDuration(m.now - $0)) ago" } ?? "")")
            if let s = m.subchannel(for: key) { add("subchannel   #\(s.id) \(s.state.rawValue)", role(for: s.state)) }
            for (k, v) in e.metadata.sorted(by: { $0.key < $1.key }) { add("\(pad(k, 12, right: false)) \(v)") }
        }
        if let h = histogram, h.count > 0 {
            add("")
            add("latency histogram (whole session)", .columnHeader)
            let buckets = h.log2Buckets()
            let top = max(1, buckets.map(\.count).max() ?? 1)
            let barMax = max(10, grid.width - 30)
            for b in buckets {
                let n = Int((Double(b.count) / Double(top) * Double(barMax)).rounded(.up))
                add("  ≤ \(pad(fmtMicros(b.upTo), 8, right: true))  \(pad(String(b.count), 8, right: true)) \(String(repeating: g.barFull, count: n))", .bar)
            }
        }
        grid.fill(y: top, char: g.rule, role: .titleFocused)
        grid.put("\(g.rule) \(title) ", x: 0, y: top, role: .titleFocused)
        for (i, (text, role)) in lines.enumerated() where top + 1 + i < bottom {
            grid.put(" " + text, x: 0, y: top + 1 + i, role: role)
        }
    }

    static func drawHelp(_ grid: inout CellGrid, top: Int, bottom: Int, _ g: Glyphs, demo: Bool = false, replay: Bool = false, observed: Bool = false,
                         policyFixed: Bool = false) {
        grid.fill(y: top, char: g.rule, role: .titleFocused)
        grid.put("\(g.rule) Help \(g.rule) keys ", x: 0, y: top, role: .titleFocused)
        var y = top + 1
        var lines = KeyMap.bindings(demo: demo, replay: replay, observed: observed, policyFixed: policyFixed).map { (label: $0.keyLabel, help: $0.help, action: $0.action) }
        // Too short for one line per key: the six movement keys share one line.
        let movement: Set<Action> = [.up, .down, .pageUp, .pageDown, .top, .bottom]
        if lines.count > bottom - y, let first = lines.firstIndex(where: { movement.contains($0.action) }) {
            lines.removeAll { movement.contains($0.action) }
            lines.insert((label: "↑↓ PgUp", help: "move by row (also k/j), by page, to the first/last row (Home/End, g/G)", action: .up), at: first)
        }
        for line in lines where y < bottom {
            var label = line.label
            if g.ascii { label = label.replacingOccurrences(of: "↑↓", with: "Up/Dn").replacingOccurrences(of: "↑", with: "Up").replacingOccurrences(of: "↓", with: "Down") }
            grid.put("  " + pad(label, 8, right: false), x: 0, y: y, role: .footerKey)
            grid.put(line.help, x: 10, y: y, role: .normal)
            y += 1
        }
        if y + 1 < bottom {
            grid.put("  States: READY, CONNECTING, IDLE, TRANSIENT_FAILURE (TF), SHUTDOWN; READY · unhealthy / checking / ejected: connected, no picks (A17 health, A50 outlier detection); conditions ready, draining (serving+terminating), not-ready.", x: 0, y: y + 1, role: .muted)
        }
    }
}
