import TopologyCore

/// The proxy's level beside the client's (`watch TARGET --envoy-admin URL`): a line under the
/// header says where the balancing happens ("client → 1 connection to Envoy; Envoy → 3/3 hosts:
/// balancing happens at the proxy"), and the Proxy pane lists the proxy's hosts — health as the
/// proxy judges it, requests per second, share, fairness — next to Traffic per pod, the
/// client's level.
extension Dashboard {
    static func drawProxyLayout(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState,
                                fairness: (index: Double?, word: String), top: Int, bottom: Int, width: Int, _ g: Glyphs) -> [Pane: Int] {
        var pages: [Pane: Int] = [:]
        let avail = bottom - top
        if width >= 160 && avail >= 28 {
            let leftW = width / 2
            let epH = max(4, min(rows.endpoints.count + 2, avail / 2))
            pages[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: top, w: leftW - 1, h: epH, g)
            pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: top + epH, w: leftW - 1, h: avail - epH, g)
            let trH = max(4, min(rows.traffic.count + 2, avail / 3))
            let pxH = max(4, min(rows.proxy.count + 2, avail / 3))
            pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: leftW, y: top, w: width - leftW, h: trH, g)
            pages[.proxy] = drawProxy(&grid, m, rows, state, x: leftW, y: top + trH, w: width - leftW, h: pxH, g)
            pages[.events] = drawEvents(&grid, m, rows, state, x: leftW, y: top + trH + pxH, w: width - leftW, h: avail - trH - pxH, g)
            return pages
        }
        let heights = stackedHeights(avail: avail, want: [rows.endpoints.count + 2, rows.subchannels.count + 2, rows.traffic.count + 2, rows.proxy.count + 2])
        var y = top
        pages[.endpoints] = drawEndpoints(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[0], g)
        y += heights[0]
        pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[1], g)
        y += heights[1]
        pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: 0, y: y, w: width, h: heights[2], g)
        y += heights[2]
        pages[.proxy] = drawProxy(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[3], g)
        y += heights[3]
        pages[.events] = drawEvents(&grid, m, rows, state, x: 0, y: y, w: width, h: bottom - y, g)
        return pages
    }

    static func drawProxy(_ grid: inout CellGrid, _ m: Model, _ rows: PaneRows, _ state: ViewState, x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        guard let p = m.proxy else { return 0 }
        let byName = Dictionary(p.hosts.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let all = p.completed10s
        let tick = p.tickMs
        let barWidth = w >= 110 ? 20 : 9
        let columns: [Column<ProxyHost>] = [
            Column(title: "HOST", width: 22, priority: 0, middleEllipsis: true) { hst in (hst.name, hst.state == .ready ? .normal : .muted) },
            Column(title: "HEALTH", width: 9, priority: 0) { hst in hst.state == .ready ? ("healthy", .ready) : ("unhealthy", .failure) },
            Column(title: "RPS", width: 6, right: true, priority: 0) { hst in (fmtRate(hst.traffic.rate(seconds: 1, tickMs: tick)), .normal) },
            Column(title: "SHARE", width: barWidth + 6, priority: 1) { hst in
                let share = all > 0 ? Double(hst.traffic.completed(lastSeconds: 10, tickMs: tick)) / Double(all) : 0
                let filled = Int((share * Double(barWidth)).rounded())
                return (String(repeating: g.barFull, count: filled) + String(repeating: g.barEmpty, count: barWidth - filled) + String(format: " %3.0f%%", share * 100), .bar)
            },
            Column(title: "ACTIVE", width: 6, right: true, priority: 2) { hst in ("\(hst.activeRequests)", .normal) },
            Column(title: "REQUESTS", width: 9, right: true, priority: 3) { hst in (hst.lifetime.map { "\($0.started)" } ?? "-", .muted) },
            Column(title: "ERRORS", width: 6, right: true, priority: 2) { hst in
                let f = hst.lifetime?.failed ?? 0
                return ("\(f)", f > 0 ? .failure : .normal)
            },
            Column(title: "WHY", width: 12, priority: 1, flex: true) { hst in (hst.reason ?? "", .failure) },
        ]
        // Fairness over the proxy's healthy hosts (the proxy's own balancing).
        let counts = p.hosts.filter { $0.state == .ready }.map { Double($0.traffic.completed(lastSeconds: 10, tickMs: tick)) }
        let sum = counts.reduce(0, +), squares = counts.reduce(0) { $0 + $1 * $1 }
        let jain = counts.isEmpty || squares == 0 ? nil : sum * sum / (Double(counts.count) * squares)
        var title = "\(p.kind.map { $0.hasPrefix("envoy") ? "Envoy" + $0.dropFirst(5) : $0 } ?? "Proxy") \(g.rule) cluster \(p.cluster) (\(p.hosts.count) host\(p.hosts.count == 1 ? "" : "s"))"
        title += " \(g.rule) fairness \(jain.map { String(format: "%.2f", $0) } ?? "-")"
        for n in p.notes { title += " \(g.rule) \(n)" }
        if let e = p.error { title += " \(g.rule) \(e)" }
        return drawTable(&grid, pane: .proxy, title: title, state: state, x: x, y: y, w: w, h: h, rows: rows.proxy,
                         lookup: { byName[$0] }, columns: columns, g)
    }
}
