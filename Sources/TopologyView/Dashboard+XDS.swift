import Foundation
import TopologyCore

/// The panes of an `xds:///` target: the xDS tree (clusters → priorities → localities, each
/// locality's configured weight next to the share it should get and the share it got), then
/// Endpoints (with cluster, priority, locality, health, weight), Subchannels, Traffic, Events.
/// The control plane's status line is drawn under the header.
extension Dashboard {
    static func drawXDSLayout(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState,
                              fairness: (index: Double?, word: String), top: Int, bottom: Int, width: Int, _ g: Glyphs) -> [Pane: Int] {
        var pages: [Pane: Int] = [:]
        let avail = bottom - top
        let tree = m.xdsRows
        if width >= 160 && avail >= 28 {
            let leftW = width / 2
            let xH = max(4, min(tree.count + 2, avail / 3))
            let epH = max(4, min(rows.endpoints.count + 2, (avail - xH) / 2))
            pages[.xds] = drawXDS(&grid, m, tree, rows, state, x: 0, y: top, w: leftW - 1, h: xH, g)
            pages[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: top + xH, w: leftW - 1, h: epH, g)
            pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: top + xH + epH, w: leftW - 1, h: avail - xH - epH, g)
            let trH = max(4, min(rows.traffic.count + 2, avail * 2 / 3))
            pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: leftW, y: top, w: width - leftW, h: trH, g)
            pages[.events] = drawEvents(&grid, m, rows, state, x: leftW, y: top + trH, w: width - leftW, h: avail - trH, g)
            return pages
        }
        let heights = stackedHeights(avail: avail, want: [tree.count + 2, rows.endpoints.count + 2, rows.subchannels.count + 2, rows.traffic.count + 2])
        var y = top
        pages[.xds] = drawXDS(&grid, m, tree, rows, state, x: 0, y: y, w: width, h: heights[0], g)
        y += heights[0]
        pages[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[1], g)
        y += heights[1]
        pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[2], g)
        y += heights[2]
        pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: 0, y: y, w: width, h: heights[3], g)
        y += heights[3]
        pages[.events] = drawEvents(&grid, m, rows, state, x: 0, y: y, w: width, h: bottom - y, g)
        return pages
    }

    static func pct(_ v: Double?) -> String { v.map { String(format: "%.0f%%", $0 * 100) } ?? "-" }

    static func drawXDS(_ grid: inout CellGrid, _ m: Model, _ tree: [XDSTreeRow], _ rows: PaneRows, _ state: ViewState,
                        x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let byID = Dictionary(tree.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let columns: [Column<XDSTreeRow>] = [
            Column(title: "CLUSTER › PRIORITY › LOCALITY", width: 22, priority: 0, flex: true) { r in
                switch r.kind {
                case .cluster: return ("\(r.cluster)\(r.note.map { "  \($0)" } ?? "")", .accent)
                case .priority: return ("  priority \(r.priority ?? 0)\(r.inUse == true ? " ◀ in use" : "")", r.inUse == true ? .normal : .muted)
                case .locality: return ("    \(r.locality ?? "")", .normal)
                }
            },
            Column(title: "STATE", width: 17, priority: 0) { r in
                guard let s = r.state else { return (r.kind == .cluster ? "-" : "not started", .muted) }
                return (s.rawValue, role(for: s))
            },
            Column(title: "WEIGHT", width: 6, right: true, priority: 1) { r in (r.kind == .priority ? "" : (r.weight.map(String.init) ?? "-"), .normal) },
            Column(title: "WANT", width: 5, right: true, priority: 1) { r in (r.kind == .locality ? pct(r.expectedShare) : "", .muted) },
            Column(title: "GOT", width: 5, right: true, priority: 1) { r in
                let off = r.kind == .locality && r.expectedShare != nil && r.observedShare != nil && abs(r.expectedShare! - r.observedShare!) > 0.1
                return (pct(r.observedShare), off ? .warning : .normal)
            },
            Column(title: "READY", width: 7, right: true, priority: 2) { r in ("\(r.ready)/\(r.total)", r.ready < r.total ? .warning : .normal) },
        ]
        let clusters = tree.filter { $0.kind == .cluster }.count
        var title = "xDS (\(clusters) cluster\(clusters == 1 ? "" : "s"))"
        if let problem = m.resolver.error?.message { title += " \(g.rule) \(problem)" }
        return drawTable(&grid, pane: .xds, title: title, state: state, x: x, y: y, w: w, h: h, rows: rows.xds,
                         lookup: { byID[$0] }, columns: columns, g)
    }
}
