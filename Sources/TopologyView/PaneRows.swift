import TopologyCore

/// One row of the Traffic pane: a backend (pod), with or without traffic so far.
public struct TrafficRow: Sendable {
    public var name: String
    public var traffic: TrafficSeries?
    /// The endpoint this backend is, when backends are endpoints.
    public var endpoint: Endpoint?
}

/// The rows each pane shows, after the filter and the sort — shared by rendering and key
/// handling so that Enter opens what is highlighted.
public struct PaneRows: Sendable {
    public var endpoints: [EndpointRow]
    public var subchannels: [SubchannelRecord]
    public var traffic: [TrafficRow]
    public var events: [LogEntry]

    public static func sortColumns(_ pane: Pane) -> [String] {
        switch pane {
        case .endpoints: ["resolver order", "name", "condition", "zone", "age", "revision"]
        case .subchannels: ["id", "state", "streams", "failed", "rtt"]
        case .traffic: ["name", "rps", "p99", "errors"]
        case .events: []
        }
    }

    public init(model m: Model, state: ViewState) {
        let needle = state.filter.lowercased()
        func keep(_ parts: String?...) -> Bool {
            needle.isEmpty || parts.contains { $0?.lowercased().contains(needle) == true }
        }
        let tick = m.tickMs

        var eps = m.endpointRows.filter { r in
            keep(r.endpoint.displayName, r.endpoint.addresses.map(\.description).joined(separator: " "), r.endpoint.zone, r.endpoint.node)
        }
        switch state.sortColumn[.endpoints] ?? 0 {
        case 1: eps.sort { $0.endpoint.displayName < $1.endpoint.displayName }
        case 2: eps.sort { $0.endpoint.condition.rawValue < $1.endpoint.condition.rawValue }
        case 3: eps.sort { ($0.endpoint.zone ?? "") < ($1.endpoint.zone ?? "") }
        case 4: eps.sort { $0.firstSeen < $1.firstSeen }
        case 5: eps.sort { ($0.endpoint.revision ?? "", $0.endpoint.displayName) < ($1.endpoint.revision ?? "", $1.endpoint.displayName) }
        default: break
        }
        if state.sortReversed[.endpoints] == true { eps.reverse() }
        endpoints = eps

        var subs = m.subchannelRows.filter { keep($0.endpoint.displayName, $0.remote, $0.state.rawValue, "#\($0.id)") }
        switch state.sortColumn[.subchannels] ?? 0 {
        case 1: subs.sort { ($0.state.rawValue, $0.id) < ($1.state.rawValue, $1.id) }
        case 2: subs.sort { ($1.activeStreams, $0.id) < ($0.activeStreams, $1.id) }
        case 3: subs.sort { ($1.traffic.total.failed, $0.id) < ($0.traffic.total.failed, $1.id) }
        case 4: subs.sort { ($1.rttMicros ?? -1, $0.id) < ($0.rttMicros ?? -1, $1.id) }
        default: break
        }
        if state.sortReversed[.subchannels] == true { subs.reverse() }
        subchannels = subs

        var rows: [String: TrafficRow] = [:]
        if m.session?.identityHeader == nil {
            for r in m.endpointRows where r.removedAt == nil {
                rows[r.endpoint.displayName] = TrafficRow(name: r.endpoint.displayName, traffic: nil, endpoint: r.endpoint)
            }
        }
        for (name, b) in m.backends {
            var row = rows[name] ?? TrafficRow(name: name, traffic: nil, endpoint: nil)
            row.traffic = b.traffic
            rows[name] = row
        }
        var tr = rows.values.filter { keep($0.name) }
        switch state.sortColumn[.traffic] ?? 0 {
        case 1: tr.sort { ($1.traffic?.rate(seconds: 1, tickMs: tick) ?? 0, $0.name) < ($0.traffic?.rate(seconds: 1, tickMs: tick) ?? 0, $1.name) }
        case 2: tr.sort { ($1.traffic?.recentPercentile(99) ?? 0, $0.name) < ($0.traffic?.recentPercentile(99) ?? 0, $1.name) }
        case 3: tr.sort { ($1.traffic?.total.failed ?? 0, $0.name) < ($0.traffic?.total.failed ?? 0, $1.name) }
        default: tr.sort { $0.name < $1.name }
        }
        if state.sortReversed[.traffic] == true { tr.reverse() }
        traffic = tr

        events = needle.isEmpty ? m.log.entries : m.log.entries.filter { $0.text.lowercased().contains(needle) }
    }

    public func count(_ pane: Pane) -> Int {
        switch pane {
        case .endpoints: endpoints.count
        case .subchannels: subchannels.count
        case .traffic: traffic.count
        case .events: events.count
        }
    }

    public func target(_ pane: Pane, index: Int) -> DetailTarget? {
        switch pane {
        case .endpoints: endpoints.indices.contains(index) ? .endpoint(endpoints[index].endpoint.key) : nil
        case .subchannels: subchannels.indices.contains(index) ? .subchannel(subchannels[index].id) : nil
        case .traffic: traffic.indices.contains(index) ? .backend(traffic[index].name) : nil
        case .events: nil
        }
    }
}
