/// An *observed* channel: another process's channel (read through channelz) or a proxy's cluster
/// (read from its admin API). No policy runs here: the source reports the subchannels, their
/// states and the channel's state (`Event.observedChannel`), and this type only mirrors them into
/// the table, so the same panes, statistics, recordings and replays serve it. A *driven* channel
/// is one our own client runs, where a policy (`PickFirst`, `RoundRobin`, `LeastRequest`, or a
/// tree of them) decides.
public struct Observed: LoadBalancingPolicy {
    public static let name = "observed"
    public private(set) var owned = OwnedSubchannels()
    /// The channel's state as the source last reported it.
    private var reported: ConnectivityState = .idle

    public init() {}

    /// A source's report: rows for new subchannels, SHUTDOWN for those gone, states as reported.
    public mutating func apply(_ report: ObservedChannel, table: inout SubchannelTable) {
        reported = report.state
        let wanted = Set(report.subchannels.map(\.endpoint.key))
        for id in owned.ids.sorted() {
            if let key = table.record(id)?.key, !wanted.contains(key) {
                owned.shutDown(id, why: "gone from \(report.source)", table: &table)
            }
        }
        for sub in report.subchannels {
            let id: SubchannelID
            if let existing = table.live(for: sub.endpoint.key) {
                id = existing
                table.refresh(id, endpoint: sub.endpoint)
            } else {
                id = table.create(sub.endpoint, connect: false)
            }
            owned.adopt(id, state: table.state(of: id) ?? .idle)
            if let from = table.transition(id, to: sub.state, reason: sub.reason, backoffMs: nil) {
                owned.changed(id, from: from, to: sub.state)
                let why = sub.reason.map { ": \($0)" } ?? ""
                table.logLines.append((sub.state == .transientFailure ? .warning : .info,
                                       "subchannel #\(id) \(sub.endpoint.displayName) \(from.rawValue) → \(sub.state.rawValue)\(why)"))
            }
        }
        table.changed = true
    }

    // A resolver does not feed an observed channel; its source does.
    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {}
    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        owned.changed(id, from: from, to: to)
    }
    public func owns(_ id: SubchannelID) -> Bool { owned.owns(id) }
    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for id in owned.ids.sorted() { owned.shutDown(id, why: why, table: &table) }
    }
    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState { reported }
    /// Nothing is picked here: the observed process picks for itself.
    public func pickNode(table: SubchannelTable) -> any PickNode { NoPick() }
}

/// One report from an observed source (one poll): the channel's state, its subchannels, and
/// what each counted since the previous report — the model applies the counts as a stats tick,
/// so rates, shares and fairness come out as for our own client.
public struct ObservedChannel: Sendable, Codable, Equatable {
    /// Where it was read (`channelz 10.0.0.7:50051`, `envoy admin`): in the log's wording.
    public var source: String
    public var state: ConnectivityState
    public var subchannels: [ObservedSubchannel]
    /// Calls the channel saw since the previous report that no subchannel counted (failed
    /// before a pick).
    public var unassigned: RPCDelta?
    public init(source: String, state: ConnectivityState, subchannels: [ObservedSubchannel], unassigned: RPCDelta? = nil) {
        self.source = source
        self.state = state
        self.subchannels = subchannels
        self.unassigned = unassigned
    }
}

public struct ObservedSubchannel: Sendable, Codable, Equatable {
    public var endpoint: Endpoint
    public var state: ConnectivityState
    public var reason: String?
    /// Calls since the previous report (nil: the source does not count them).
    public var calls: RPCDelta?
    /// Streams open now (started − succeeded − failed on its socket), when known.
    public var activeStreams: Int?
    public init(endpoint: Endpoint, state: ConnectivityState, reason: String? = nil, calls: RPCDelta? = nil, activeStreams: Int? = nil) {
        self.endpoint = endpoint
        self.state = state
        self.reason = reason
        self.calls = calls
        self.activeStreams = activeStreams
    }
}
