/// The subchannel management round_robin and least_request share (gRPC's "endpoint list"): one
/// subchannel per endpoint, each kept connected; an IDLE one reconnects at once (traffic is
/// continuous); an endpoint that leaves the list has its subchannel shut down.
public struct EndpointList: Sendable, Codable {
    public private(set) var owned = OwnedSubchannels()
    /// The endpoints in the list, by key.
    private var wanted = Set<EndpointKey>()
    /// The resolver has answered at least once.
    private var updated = false

    public init() {}

    /// From a keyframe written before policies were types: it owned every live subchannel.
    init(legacy endpoints: [Endpoint], table: SubchannelTable) {
        wanted = Set(endpoints.map(\.key))
        updated = true
        for sc in table.live { if let s = table.state(of: sc.id) { owned.adopt(sc.id, state: s) } }
    }

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        wanted = Set(endpoints.map(\.key))
        updated = true
        // Only this list's own subchannels, in id order (a parent's many lists must not each
        // walk the whole table).
        for id in owned.ids.sorted() {
            guard let key = table.record(id)?.key, !wanted.contains(key) else { continue }
            owned.shutDown(id, why: endpointGoneReason(key, table: table), table: &table)
        }
        table.records.reserveCapacity(table.records.count + endpoints.count)
        for e in endpoints {
            if let id = table.live(for: e.key) {
                table.refresh(id, endpoint: e)
                if let s = table.state(of: id) { owned.adopt(id, state: s) }
                if table.state(of: id) == .idle { table.connect(id) }
            } else {
                let id = table.create(e, connect: true)
                owned.adopt(id, state: .idle)
            }
        }
    }

    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        guard owned.owns(id) else { return }
        owned.changed(id, from: from, to: to)
        if to == .idle, let key = table.record(id)?.key, wanted.contains(key) { table.connect(id) }
    }

    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for id in owned.ids.sorted() { owned.shutDown(id, why: why, table: &table) }
    }

    /// gRPC's aggregation for round_robin: READY if any is; TRANSIENT_FAILURE stays until one is
    /// READY again (sticky); then CONNECTING, IDLE.
    public func state(previous: ConnectivityState) -> ConnectivityState {
        let ready = owned.count(.ready), connecting = owned.count(.connecting), idle = owned.count(.idle)
        let live = ready + connecting + idle + owned.count(.transientFailure)
        if ready > 0 { return .ready }
        if previous == .transientFailure && live > 0 { return .transientFailure }
        if connecting > 0 { return .connecting }
        if idle > 0 { return .idle }
        return updated ? .transientFailure : .idle
    }

    /// READY subchannels, by id.
    public var ready: [SubchannelID] { owned.ready.sorted() }
}

/// Why a live subchannel's endpoint is no longer wanted.
func endpointGoneReason(_ key: EndpointKey, table: SubchannelTable) -> String {
    table.listed.contains(key) ? "endpoint not ready" : "endpoint removed"
}

/// A policy that manages its subchannels as an `EndpointList` (round_robin, least_request): all
/// but the picker comes from here.
public protocol EndpointListPolicy: LoadBalancingPolicy {
    var list: EndpointList { get set }
}

extension EndpointListPolicy {
    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) { list.update(endpoints: endpoints, table: &table) }
    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        list.subchannelChanged(id, from: from, to: to, table: &table)
    }
    public func owns(_ id: SubchannelID) -> Bool { list.owned.owns(id) }
    public mutating func shutDownAll(why: String, table: inout SubchannelTable) { list.shutDownAll(why: why, table: &table) }
    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState { list.state(previous: previous) }
}
