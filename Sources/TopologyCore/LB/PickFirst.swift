/// pick_first (gRFC A61/A62): one connection. It keeps the selected subchannel while its endpoint
/// is still in the list; otherwise it tries the endpoints in order, one at a time, and keeps the
/// first that becomes READY (shutting the others down). After a pass in which every endpoint
/// failed, the channel is TRANSIENT_FAILURE and each subchannel retries on its own when its
/// backoff ends.
public struct PickFirst: LoadBalancingPolicy {
    public static let name = "pick_first"
    public private(set) var owned = OwnedSubchannels()
    /// The endpoints to try, in order.
    private var endpoints: [Endpoint] = []
    private var list: [EndpointKey] { endpoints.map(\.key) }
    /// The one being tried in this pass.
    private var index = 0
    public private(set) var selected: SubchannelID?
    private var passFailed = false
    /// The resolver has answered at least once.
    private var updated = false

    public init() {}

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        updated = true
        self.endpoints = endpoints
        let list = self.list
        let wanted = Set(list)
        for e in endpoints {
            if let id = table.live(for: e.key) {
                table.refresh(id, endpoint: e)
                if let s = table.state(of: id) { owned.adopt(id, state: s) }
            }
        }
        if selected == nil {
            // Adopt a READY subchannel (after a policy switch), in list order.
            selected = list.compactMap { table.live(for: $0) }.first { table.state(of: $0) == .ready }
        }
        if let sel = selected, let sc = table.record(sel), sc.state == .ready, wanted.contains(sc.key) {
            for other in owned.ids.sorted() where other != sel {
                owned.shutDown(other, why: "pick_first keeps \(sc.endpoint.displayName)", table: &table)
            }
            return
        }
        selected = nil
        for id in owned.ids.sorted() {
            if let key = table.record(id)?.key, !wanted.contains(key) {
                owned.shutDown(id, why: endpointGoneReason(key, table: table), table: &table)
            }
        }
        startPass(table: &table)
    }

    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        guard owned.owns(id) else { return }
        owned.changed(id, from: from, to: to)
        switch to {
        case .ready:
            if selected.map({ table.state(of: $0) != .ready }) ?? true {
                selected = id
                passFailed = false
                for other in owned.ids.sorted() where other != id {
                    owned.shutDown(other, why: "pick_first chose \(table.name(of: id))", table: &table)
                }
            }
        case .transientFailure:
            if index < endpoints.count, table.live(for: endpoints[index].key) == id {
                index += 1
                attempt(table: &table)
            }
        case .idle:
            if selected == id {
                // The connection we used is gone: start over from the top of the list (traffic
                // is continuous, so the policy leaves IDLE at once).
                selected = nil
                startPass(table: &table)
            } else if passFailed {
                // After a failed pass each subchannel retries on its own when its backoff ends.
                table.connect(id)
            }
        case .connecting, .shutdown:
            break
        }
    }

    /// From a keyframe written before policies were types (`PickFirstState`): it owned every
    /// live subchannel.
    init(legacy list: [EndpointKey], index: Int, selected: SubchannelID?, passFailed: Bool, endpoints all: [Endpoint], table: SubchannelTable) {
        let byKey = Dictionary(all.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        endpoints = list.compactMap { byKey[$0] }
        self.index = index
        self.selected = selected
        self.passFailed = passFailed
        updated = true
        for sc in table.live { if let s = table.state(of: sc.id) { owned.adopt(sc.id, state: s) } }
    }

    public func owns(_ id: SubchannelID) -> Bool { owned.owns(id) }

    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        selected = nil
        for id in owned.ids.sorted() { owned.shutDown(id, why: why, table: &table) }
    }

    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState {
        if let s = selected, table.state(of: s) == .ready { return .ready }
        let live = owned.ids.count
        if passFailed || (updated && live == 0) { return .transientFailure }
        if owned.count(.connecting) > 0 { return .connecting }
        return updated && live > 0 ? .connecting : .idle
    }

    public func pickNode(table: SubchannelTable) -> any PickNode {
        Pick(selected.flatMap { table.state(of: $0) == .ready ? $0 : nil })
    }

    private mutating func startPass(table: inout SubchannelTable) {
        passFailed = false
        index = 0
        attempt(table: &table)
    }

    /// Connects the endpoint at `index`, skipping ones in backoff.
    private mutating func attempt(table: inout SubchannelTable) {
        while index < endpoints.count {
            let e = endpoints[index]
            let id: SubchannelID
            if let existing = table.live(for: e.key) {
                id = existing
            } else {
                id = table.create(e, connect: false)
                owned.adopt(id, state: .idle)
            }
            switch table.state(of: id) {
            case .idle?:
                table.connect(id)
                return
            case .connecting?, .ready?:
                return
            case .transientFailure?, .shutdown?, nil:
                index += 1
            }
        }
        if !endpoints.isEmpty { passFailed = true }
    }

    /// The selected subchannel when it is READY.
    public struct Pick: PickNode, Equatable {
        public var selected: SubchannelID?
        public init(_ selected: SubchannelID?) { self.selected = selected }
        public var ready: [SubchannelID] { selected.map { [$0] } ?? [] }
        public func makePicker(randomStart: Int) -> any SubchannelPicker { Picker(selected) }

        final class Picker: SubchannelPicker {
            let selected: SubchannelID?
            init(_ selected: SubchannelID?) { self.selected = selected }
            func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? { selected }
        }
    }
}
