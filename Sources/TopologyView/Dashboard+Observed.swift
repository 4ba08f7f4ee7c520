import TopologyCore

/// The panes of an observed process (`grpctop attach`): its Channels (pick the one to watch),
/// the watched channel's Subchannels and Traffic, its Servers with the client connections they
/// hold, and Events.
///
/// ```
/// ┌ Channels (3) ─ watching #4      ┐┌ Traffic per pod ─ fairness 1.00 ┐
/// │ * #4 dns:///web:50051 READY …   ││ …                               │
/// │   └ #9 child …                  │├ Servers (1) ─ 41 clients ───────┤
/// ├ Subchannels (3) observed ───────┤│ server #1 [::]:50051 …          │
/// │ …                               │├ Events ─────────────────────────┤
/// ```
extension Dashboard {
    static func drawObserved(_ grid: inout CellGrid, _ m: Model, _ process: ObservedProcess, _ rows: PaneRows, _ state: ViewState,
                             fairness: (index: Double?, word: String), top: Int, bottom: Int, width: Int, _ g: Glyphs) -> [Pane: Int] {
        var pages: [Pane: Int] = [:]
        let avail = bottom - top
        let servers = !process.servers.isEmpty
        if width >= 160 && avail >= 28 {
            let leftW = width / 2
            let chH = max(4, min(rows.channels.count + 2, avail / 3))
            pages[.channels] = drawChannels(&grid, m, process, rows, state, x: 0, y: top, w: leftW - 1, h: chH, g)
            pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: top + chH, w: leftW - 1, h: avail - chH, g)
            let trH = max(4, min(rows.traffic.count + 2, avail / 2))
            var y = top
            pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: leftW, y: y, w: width - leftW, h: trH, g)
            y += trH
            if servers {
                let svH = max(4, min(rows.servers.count + 2, (avail - trH) / 2))
                pages[.servers] = drawServers(&grid, m, process, rows, state, x: leftW, y: y, w: width - leftW, h: svH, g)
                y += svH
            }
            pages[.events] = drawEvents(&grid, m, rows, state, x: leftW, y: y, w: width - leftW, h: bottom - y, g)
            return pages
        }
        var want = [rows.channels.count + 2, rows.subchannels.count + 2, rows.traffic.count + 2]
        if servers { want.append(rows.servers.count + 2) }
        let heights = stackedHeights(avail: avail, want: want)
        var y = top
        pages[.channels] = drawChannels(&grid, m, process, rows, state, x: 0, y: y, w: width, h: heights[0], g)
        y += heights[0]
        pages[.subchannels] = drawSubchannels(&grid, m, rows, state, x: 0, y: y, w: width, h: heights[1], g)
        y += heights[1]
        pages[.traffic] = drawTraffic(&grid, m, rows, state, fairness: fairness, x: 0, y: y, w: width, h: heights[2], g)
        y += heights[2]
        if servers {
            pages[.servers] = drawServers(&grid, m, process, rows, state, x: 0, y: y, w: width, h: heights[3], g)
            y += heights[3]
        }
        pages[.events] = drawEvents(&grid, m, rows, state, x: 0, y: y, w: width, h: bottom - y, g)
        return pages
    }

    /// The model's wall-clock time (a replay's own), seconds since 1970.
    static func wallNow(_ m: Model) -> Double? { m.session.map { $0.startedAt + Double(m.now) / 1000 } }

    /// "2s ago" for a wall-clock time, "-" when unknown.
    static func ago(_ m: Model, _ t: Double?) -> String {
        guard let t, let now = wallNow(m) else { return "-" }
        return formatDuration(Millis(max(0, min(1e12, (now - t) * 1000)))) + " ago"
    }

    struct ChannelRow {
        var row: ObservedChannelRow
        var depth: Int
        var watched: Bool
    }

    static func drawChannels(_ grid: inout CellGrid, _ m: Model, _ process: ObservedProcess, _ rows: PaneRows, _ state: ViewState,
                             x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let byID = Dictionary(process.channels.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let columns: [Column<ChannelRow>] = [
            Column(title: process.isProxy ? "  CLUSTER" : "  CHANNEL", width: 10, priority: 0) { r in
                (String(repeating: "  ", count: min(r.depth, 4)) + (r.depth > 0 ? "└" : (r.watched ? "*" : " ")) + " #\(r.row.id)", r.watched ? .accent : .muted)
            },
            Column(title: "TARGET", width: 20, priority: 0, flex: true, middleEllipsis: true) { r in (r.row.target.isEmpty ? "(no target)" : r.row.target, r.watched ? .accent : .normal) },
            Column(title: "STATE", width: 17, priority: 0) { r in (r.row.state.rawValue, role(for: r.row.state)) },
            Column(title: "SUBCH", width: 5, right: true, priority: 2) { r in ("\(r.row.subchannels)", .normal) },
            Column(title: "RPS", width: 6, right: true, priority: 1) { r in (r.row.startedPerSecond.map(fmtRate) ?? "-", .normal) },
            Column(title: "STARTED", width: 9, right: true, priority: 4) { r in ("\(r.row.callsStarted)", .normal) },
            Column(title: "OK", width: 9, right: true, priority: 3) { r in ("\(r.row.callsSucceeded)", .normal) },
            Column(title: "FAILED", width: 7, right: true, priority: 3) { r in ("\(r.row.callsFailed)", r.row.callsFailed > 0 ? .failure : .normal) },
            Column(title: "LAST CALL", width: 10, right: true, priority: 5) { r in (ago(m, r.row.lastCallStarted), .muted) },
        ]
        let noun = process.isProxy ? "Clusters" : "Channels"
        var title = "\(noun) (\(process.channels.filter { $0.parent == nil }.count))"
        if process.isProxy, let kind = process.kind { title += " \(g.rule) \(kind)" }
        if let id = process.watched { title += " \(g.rule) watching #\(id)" }
        for n in process.notes ?? [] { title += " \(g.rule) \(n)" }
        if state.focus == .channels && process.channels.count > 1 && state.timeline == nil { title += " \(g.rule) Enter watches the selected one" }
        return drawTable(&grid, pane: .channels, title: title, state: state, x: x, y: y, w: w, h: h, rows: rows.channels,
                         lookup: { entry in byID[entry.id].map { ChannelRow(row: $0, depth: entry.depth, watched: $0.id == process.watched) } },
                         columns: columns, g)
    }

    /// A server or one of its client connections.
    struct ServerRow {
        var server: ObservedServer
        var socket: ObservedSocket?
    }

    static func drawServers(_ grid: inout CellGrid, _ m: Model, _ process: ObservedProcess, _ rows: PaneRows, _ state: ViewState,
                            x: Int, y: Int, w: Int, h: Int, _ g: Glyphs) -> Int {
        let servers = Dictionary(process.servers.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        let columns: [Column<ServerRow>] = [
            Column(title: "SERVER / CLIENT CONNECTION", width: 22, priority: 0, flex: true) { r in
                if let so = r.socket { return ("  \(so.remote)", .normal) }
                let listen = r.server.listen.isEmpty ? "" : " " + r.server.listen.joined(separator: ",")
                return ("server #\(r.server.id)\(listen)", .accent)
            },
            Column(title: "CLIENTS", width: 7, right: true, priority: 0) { r in (r.socket == nil ? "\(r.server.socketCount)" : "", .normal) },
            Column(title: "ACTIVE", width: 6, right: true, priority: 1) { r in
                if let so = r.socket { return ("\(so.activeStreams)", .normal) }
                return ("\(r.server.sockets.reduce(Int64(0)) { $0 &+ $1.activeStreams })", .muted)
            },
            Column(title: "STARTED", width: 9, right: true, priority: 2) { r in ("\(r.socket?.streamsStarted ?? r.server.callsStarted)", .normal) },
            Column(title: "OK", width: 9, right: true, priority: 3) { r in ("\(r.socket?.streamsSucceeded ?? r.server.callsSucceeded)", .normal) },
            Column(title: "FAILED", width: 7, right: true, priority: 2) { r in
                let f = r.socket?.streamsFailed ?? r.server.callsFailed
                return ("\(f)", f > 0 ? .failure : .normal)
            },
            Column(title: "MSGS IN", width: 9, right: true, priority: 4) { r in (r.socket.map { "\($0.messagesReceived)" } ?? "", .normal) },
            Column(title: "MSGS OUT", width: 9, right: true, priority: 5) { r in (r.socket.map { "\($0.messagesSent)" } ?? "", .normal) },
            Column(title: "LAST MSG", width: 9, right: true, priority: 6) { r in (r.socket.map { ago(m, $0.lastMessageReceived) } ?? "", .muted) },
        ]
        let clients = process.servers.reduce(0) { $0 + $1.socketCount }
        let title = "Servers (\(process.servers.count)) \(g.rule) \(clients) client connection\(clients == 1 ? "" : "s")"
        return drawTable(&grid, pane: .servers, title: title, state: state, x: x, y: y, w: w, h: h, rows: rows.servers,
                         lookup: { target in
                             switch target {
                             case .server(let id): return servers[id].map { ServerRow(server: $0) }
                             case .serverSocket(let sid, let so):
                                 guard let s = servers[sid], let socket = s.sockets.first(where: { $0.id == so }) else { return nil }
                                 return ServerRow(server: s, socket: socket)
                             default: return nil
                             }
                         }, columns: columns, g)
    }

    /// An observed subchannel's details: what the process counted, and its connection.
    static func observedSubchannelLines(_ m: Model, _ s: SubchannelRecord) -> [(String, StyleRole)] {
        var out: [(String, StyleRole)] = []
        let t = s.traffic.total
        if let l = s.observedLifetime {
            out.append(("calls        started \(l.started)  ok \(l.succeeded)  failed \(l.failed) (the process's counts)  last started \(ago(m, l.lastStarted))",
                        l.failed > 0 ? .warning : .normal))
        }
        out.append(("since attach started \(t.started)  ok \(t.succeeded)  failed \(t.failed)", .normal))
        if let so = s.observedSocket {
            out += socketLines(m, so)
        } else {
            out.append(("connection   none (no socket: not connected)", .muted))
        }
        return out
    }

    /// One connection as the process reports it (channelz's Socket).
    static func socketLines(_ m: Model, _ so: ObservedSocket) -> [(String, StyleRole)] {
        var out: [(String, StyleRole)] = []
        out.append(("connection   local \(so.local)  remote \(so.remote)  socket #\(so.id)  \(so.securityText)", .normal))
        let limit = so.peerMaxStreams.map { " / \($0) (peer's MAX_CONCURRENT_STREAMS)" } ?? ""
        out.append(("streams      \(so.activeStreams) active\(limit)  started \(so.streamsStarted)  ok \(so.streamsSucceeded)  failed \(so.streamsFailed)  last created \(ago(m, so.lastStreamCreated))",
                    so.streamsFailed > 0 ? .warning : .normal))
        out.append(("messages     sent \(so.messagesSent) (last \(ago(m, so.lastMessageSent)))  received \(so.messagesReceived) (last \(ago(m, so.lastMessageReceived)))", .normal))
        out.append(("keepalives   \(so.keepAlivesSent) pings sent", .normal))
        if so.localWindow != nil || so.remoteWindow != nil {
            out.append(("flow control local window \(so.localWindow.map { bytes($0) } ?? "-")  remote window \(so.remoteWindow.map { bytes($0) } ?? "-")",
                        (so.remoteWindow ?? 1) <= 0 ? .warning : .normal))
        } else {
            out.append(("flow control windows not reported by this gRPC implementation", .muted))
        }
        if let code = so.goAwayCode { out.append(("GOAWAY       received, error code \(code)", .draining)) }
        return out
    }

    /// A window in bytes, exact and readable: `65535 (64 KiB)`.
    static func bytes(_ n: Int64) -> String {
        let a = Double(n.magnitude)
        if a < 1024 { return "\(n) B" }
        let human = a < 1_048_576 ? String(format: "%.0f KiB", a / 1024) : String(format: "%.0f MiB", a / 1_048_576)
        return "\(n) (\(n < 0 ? "-" : "")\(human))"
    }

    /// The details of a server or a client connection; returns the title.
    static func serverDetails(_ m: Model, _ target: DetailTarget, _ g: Glyphs, _ add: (String, StyleRole) -> Void) -> String {
        let servers = m.observedProcess?.servers ?? []
        switch target {
        case .server(let id):
            guard let s = servers.first(where: { $0.id == id }) else { add("server #\(id) is gone", .muted); return "Server #\(id)" }
            add("listening    \(s.listen.isEmpty ? "-" : s.listen.joined(separator: ", "))", .normal)
            add("calls        started \(s.callsStarted)  ok \(s.callsSucceeded)  failed \(s.callsFailed)", s.callsFailed > 0 ? .warning : .normal)
            add("clients      \(s.socketCount) connection\(s.socketCount == 1 ? "" : "s")\(s.socketCount > s.sockets.count ? " (\(s.sockets.count) read in detail)" : "")", .normal)
            add("", .normal)
            add("client connections (remote, active streams, streams started, messages in)", .columnHeader)
            for so in s.sockets.sorted(by: { $0.streamsStarted > $1.streamsStarted }).prefix(200) {
                add("  \(pad(so.remote, 28, right: false)) \(pad("\(so.activeStreams)", 6, right: true)) \(pad("\(so.streamsStarted)", 10, right: true)) \(pad("\(so.messagesReceived)", 10, right: true))", .normal)
            }
            return "Server #\(id)"
        case .serverSocket(let sid, let id):
            guard let so = servers.first(where: { $0.id == sid })?.sockets.first(where: { $0.id == id }) else {
                add("client connection #\(id) is gone", .muted)
                return "Client connection #\(id)"
            }
            for (text, role) in socketLines(m, so) { add(text, role) }
            return "Client connection \(so.remote) \(g.rule) server #\(sid)"
        default:
            return "Details"
        }
    }
}
