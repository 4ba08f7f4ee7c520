import TopologyCore

/// The rows each pane shows, after the filter and the sort — shared by rendering and key
/// handling so that Enter opens what is highlighted. Rows are ids and names, not copies of the
/// records: with thousands of endpoints only the visible rows are looked up.
public struct PaneRows: Sendable {
    public var endpoints: [EndpointKey]
    public var subchannels: [SubchannelID]
    /// Backend (pod) names: every live endpoint when backends are endpoints, plus every backend
    /// that answered.
    public var traffic: [String]
    public var events: [LogEntry]
    /// An observed process's channels, each after its parent (depth: how far it is nested).
    public var channels: [(id: Int64, depth: Int)] = []
    /// An observed process's servers, each followed by its client connections.
    public var servers: [DetailTarget] = []
    /// An xDS target's tree rows (`XDSTreeRow.id`), taken fresh every frame.
    public var xds: [String] = []
    /// A proxy's hosts (their names), taken fresh every frame.
    public var proxy: [String] = []

    public static func sortColumns(_ pane: Pane) -> [String] {
        switch pane {
        case .endpoints: ["resolver order", "name", "condition", "zone", "age", "revision"]
        case .subchannels: ["id", "state", "streams", "failed", "rtt"]
        case .traffic: ["name", "rps", "p99", "errors"]
        case .events, .channels, .servers, .xds, .proxy: []
        }
    }

    /// What these rows were built from, to tell whether they can be reused.
    struct Basis: Equatable, Sendable {
        var rowsVersion: Int
        var filter: String
        var sortColumn: [Pane: Int]
        var sortReversed: [Pane: Bool]
    }
    var basis: Basis?

    /// Rows for `state`, reusing `previous` when nothing they depend on changed: same model
    /// rows version, filter and sort, and only sorts that do not depend on live numbers
    /// (rps, p99, streams… re-sort every frame). Events are always taken fresh.
    public init(model m: Model, state: ViewState, reusing previous: PaneRows?) {
        let basis = Basis(rowsVersion: m.rowsVersion, filter: state.filter, sortColumn: state.sortColumn, sortReversed: state.sortReversed)
        let live = (state.sortColumn[.subchannels] ?? 0) >= 2 || (state.sortColumn[.traffic] ?? 0) >= 1
        if var p = previous, p.basis == basis, !live {
            p.events = state.filter.isEmpty ? m.log.entries : m.log.entries.filter { Self.containsIgnoringCase($0.text, Array(state.filter.lowercased().utf8)) }
            p.xds = m.isXDS ? m.xdsRows.map(\.id) : []
            p.proxy = m.proxy?.hosts.map(\.name) ?? []
            self = p
            return
        }
        self.init(model: m, state: state)
        self.basis = basis
    }

    public init(model m: Model, state: ViewState) {
        let needle = Array(state.filter.lowercased().utf8)
        let all = needle.isEmpty
        func keep(_ parts: String?...) -> Bool {
            parts.contains { $0.map { Self.containsIgnoringCase($0, needle) } == true }
        }
        let tick = m.tickMs

        // Endpoints: resolver order (removed rows last) unless sorted otherwise.
        var eps: [(key: EndpointKey, row: EndpointRow)] = []
        eps.reserveCapacity(m.endpoints.count)
        for (key, row) in m.endpoints {
            if all || keep(row.endpoint.displayName, row.endpoint.addresses.map(\.description).joined(separator: " "), row.endpoint.zone, row.endpoint.node) {
                eps.append((key, row))
            }
        }
        let reversedEP = state.sortReversed[.endpoints] == true
        switch state.sortColumn[.endpoints] ?? 0 {
        case 1: eps.sort { $0.row.endpoint.displayName < $1.row.endpoint.displayName }
        case 2: eps.sort { ($0.row.endpoint.condition.rawValue, $0.row.order) < ($1.row.endpoint.condition.rawValue, $1.row.order) }
        case 3: eps.sort { ($0.row.endpoint.zone ?? "", $0.row.order) < ($1.row.endpoint.zone ?? "", $1.row.order) }
        case 4: eps.sort { ($0.row.firstSeen, $0.row.order) < ($1.row.firstSeen, $1.row.order) }
        case 5: eps.sort { ($0.row.endpoint.revision ?? "", $0.row.endpoint.displayName) < ($1.row.endpoint.revision ?? "", $1.row.endpoint.displayName) }
        default:
            eps.sort { a, b in
                let ar = a.row.removedAt == nil, br = b.row.removedAt == nil
                if ar != br { return ar }
                return a.row.order < b.row.order
            }
        }
        endpoints = reversedEP ? eps.reversed().map(\.key) : eps.map(\.key)

        // Subchannels: by id unless sorted otherwise.
        var subs: [SubchannelID]
        if all {
            subs = Array(m.subchannels.keys)
        } else {
            subs = m.subchannels.compactMap { id, s in keep(s.endpoint.displayName, s.remote, s.state.rawValue, "#\(id)") ? id : nil }
        }
        switch state.sortColumn[.subchannels] ?? 0 {
        case 1:
            let k = Dictionary(uniqueKeysWithValues: subs.map { ($0, m.subchannels[$0]!.state.rawValue) })
            subs.sort { (k[$0]!, $0) < (k[$1]!, $1) }
        case 2:
            let k = Dictionary(uniqueKeysWithValues: subs.map { ($0, m.subchannels[$0]!.activeStreams) })
            subs.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        case 3:
            let k = Dictionary(uniqueKeysWithValues: subs.map { ($0, m.subchannels[$0]!.traffic.total.failed) })
            subs.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        case 4:
            let k = Dictionary(uniqueKeysWithValues: subs.map { ($0, m.subchannels[$0]!.rttMicros ?? -1) })
            subs.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        default:
            subs.sort()
        }
        if state.sortReversed[.subchannels] == true { subs.reverse() }
        subchannels = subs

        // Traffic per pod.
        var names = Set(m.backends.keys)
        if m.session?.identityHeader == nil {
            for e in m.resolver.endpoints { names.insert(e.displayName) }
        }
        var tr = all ? Array(names) : names.filter { keep($0) }
        switch state.sortColumn[.traffic] ?? 0 {
        case 1:
            let k = Dictionary(uniqueKeysWithValues: tr.map { ($0, m.backends[$0]?.traffic.rate(seconds: 1, tickMs: tick) ?? 0) })
            tr.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        case 2:
            let k = Dictionary(uniqueKeysWithValues: tr.map { ($0, m.backends[$0]?.traffic.recentPercentile(99) ?? 0) })
            tr.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        case 3:
            let k = Dictionary(uniqueKeysWithValues: tr.map { ($0, m.backends[$0]?.traffic.total.failed ?? 0) })
            tr.sort { (k[$1]!, $0) < (k[$0]!, $1) }
        default:
            tr.sort()
        }
        if state.sortReversed[.traffic] == true { tr.reverse() }
        traffic = tr

        events = all ? m.log.entries : m.log.entries.filter { Self.containsIgnoringCase($0.text, needle) }

        if m.isXDS { xds = m.xdsRows.map(\.id) }
        proxy = m.proxy?.hosts.map(\.name) ?? []
        if let process = m.observedProcess {
            channels = Self.channelTree(process.channels, keep: { all || keep($0.target, "#\($0.id)", $0.state.rawValue) })
            for server in process.servers {
                let sockets = server.sockets.filter { all || keep($0.remote, $0.local) }
                guard all || !sockets.isEmpty || keep(server.listen.joined(separator: " "), "#\(server.id)") else { continue }
                servers.append(.server(server.id))
                servers += sockets.map { .serverSocket(server: server.id, socket: $0.id) }
            }
        }
    }

    /// Channels in tree order: top channels by id, each followed by its children (depth ≤ 8; a
    /// child whose parent is missing is shown at the top; a cycle cannot loop).
    static func channelTree(_ rows: [ObservedChannelRow], keep: (ObservedChannelRow) -> Bool) -> [(id: Int64, depth: Int)] {
        var children: [Int64: [ObservedChannelRow]] = [:]
        let ids = Set(rows.map(\.id))
        var roots: [ObservedChannelRow] = []
        for r in rows {
            if let p = r.parent, p != r.id, ids.contains(p) { children[p, default: []].append(r) } else { roots.append(r) }
        }
        var out: [(id: Int64, depth: Int)] = []
        var placed = Set<Int64>()
        func visit(_ r: ObservedChannelRow, _ depth: Int) {
            guard placed.insert(r.id).inserted else { return }
            if keep(r) { out.append((r.id, depth)) }
            guard depth < 8 else { return }
            for c in (children[r.id] ?? []).sorted(by: { $0.id < $1.id }) { visit(c, depth + 1) }
        }
        for r in roots.sorted(by: { $0.id < $1.id }) { visit(r, 0) }
        // Rows only reachable through a cycle.
        for r in rows.sorted(by: { $0.id < $1.id }) where !placed.contains(r.id) { visit(r, 0) }
        return out
    }

    /// Substring search on UTF-8 bytes, ASCII letters case-folded; no allocation per call
    /// (filtering 5,000 rows on every key must stay well under a frame).
    static func containsIgnoringCase(_ haystack: String, _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        var h = haystack
        return h.withUTF8 { hay in
            let n = needle.count
            guard hay.count >= n else { return false }
            let first = needle[0]
            var i = 0
            while i <= hay.count - n {
                var c = hay[i]
                if c >= 65 && c <= 90 { c += 32 }
                if c == first {
                    var j = 1
                    while j < n {
                        var d = hay[i + j]
                        if d >= 65 && d <= 90 { d += 32 }
                        if d != needle[j] { break }
                        j += 1
                    }
                    if j == n { return true }
                }
                i += 1
            }
            return false
        }
    }

    public func count(_ pane: Pane) -> Int {
        switch pane {
        case .endpoints: endpoints.count
        case .subchannels: subchannels.count
        case .traffic: traffic.count
        case .events: events.count
        case .channels: channels.count
        case .servers: servers.count
        case .xds: xds.count
        case .proxy: proxy.count
        }
    }

    public func target(_ pane: Pane, index: Int) -> DetailTarget? {
        switch pane {
        case .endpoints: endpoints.indices.contains(index) ? .endpoint(endpoints[index]) : nil
        case .subchannels: subchannels.indices.contains(index) ? .subchannel(subchannels[index]) : nil
        case .traffic: traffic.indices.contains(index) ? .backend(traffic[index]) : nil
        case .events, .channels, .xds, .proxy: nil
        case .servers: servers.indices.contains(index) ? servers[index] : nil
        }
    }
}
