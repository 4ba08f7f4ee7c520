/// gRPC's `weighted_target`: one child policy per group of endpoints, RPCs split between the
/// children with a READY subchannel in proportion to their weights. Groups and weights ride on
/// the endpoints' metadata (`groupKey`, `weightKey`), as the xDS resolver writes them: localities
/// with their `load_balancing_weight`, or the clusters of a route's `weighted_clusters`.
public struct WeightedTarget: LoadBalancingPolicy {
    public static let name = "weighted_target_experimental"
    /// The metadata key naming an endpoint's group (`locality`, `cluster`).
    public var groupKey = "locality"
    /// The metadata key holding the group's weight (the first endpoint of a group that has one
    /// gives it; 1 when none does).
    public var weightKey = "locality_weight"
    /// What a new child starts as.
    public var childTemplate: AnyPolicy? = AnyPolicy(RoundRobin())
    public private(set) var children: [String: AnyPolicy] = [:]
    public private(set) var weights: [String: UInt32] = [:]
    /// Each child's last reported state (round_robin's TRANSIENT_FAILURE is sticky).
    private var states: [String: ConnectivityState] = [:]

    public init() {}
    public init(groupKey: String, weightKey: String, child: AnyPolicy) {
        self.groupKey = groupKey
        self.weightKey = weightKey
        self.childTemplate = child
    }

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        var groups: [String: [Endpoint]] = [:]
        var order: [String] = []
        var newWeights: [String: UInt32] = [:]
        for e in endpoints {
            let g = e.metadata[groupKey] ?? ""
            if groups[g] == nil { order.append(g) }
            groups[g, default: []].append(e)
            if newWeights[g] == nil, let w = e.metadata[weightKey].flatMap(UInt32.init) { newWeights[g] = w }
        }
        weights = Dictionary(uniqueKeysWithValues: order.map { ($0, newWeights[$0] ?? 1) })
        // Children that lost their group go first, then each child releases what moved to
        // another (an endpoint whose locality changed), then every child takes its group.
        for g in children.keys.sorted() where groups[g] == nil {
            children[g]!.shutDownAll(why: "\(groupKey) \(g.isEmpty ? "(none)" : g) gone", table: &table)
            children[g] = nil
            states[g] = nil
        }
        for g in children.keys.sorted() {
            let own = groups[g]!.filter { e in table.live(for: e.key).map { children[g]!.owns($0) } ?? true }
            children[g]!.update(endpoints: own, table: &table)
        }
        for g in order {
            var child = children[g] ?? childTemplate ?? AnyPolicy(RoundRobin())
            child.update(endpoints: groups[g]!, table: &table)
            children[g] = child
        }
    }

    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        for g in children.keys.sorted() where children[g]!.owns(id) {
            children[g]!.subchannelChanged(id, from: from, to: to, table: &table)
            states[g] = children[g]!.state(previous: states[g] ?? .idle, table: table)
        }
    }

    public mutating func tick(table: inout SubchannelTable) {
        for g in children.keys.sorted() { children[g]!.tick(table: &table) }
    }

    public func owns(_ id: SubchannelID) -> Bool { children.values.contains { $0.owns(id) } }

    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for g in children.keys.sorted() { children[g]!.shutDownAll(why: why, table: &table) }
    }

    /// READY if a child is, else CONNECTING, else IDLE, else TRANSIENT_FAILURE (gRPC's
    /// weighted_target aggregation).
    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState {
        let all = children.keys.map { childState($0, table: table) }
        if all.contains(.ready) { return .ready }
        if all.contains(.connecting) { return .connecting }
        if all.contains(.idle) { return .idle }
        return .transientFailure
    }

    public func childState(_ g: String, table: SubchannelTable) -> ConnectivityState {
        children[g].map { $0.state(previous: states[g] ?? .idle, table: table) } ?? .transientFailure
    }

    public func pickNode(table: SubchannelTable) -> any PickNode {
        WeightedPick(children.keys.sorted().map { (weights[$0] ?? 1, children[$0]!.pickNode(table: table)) })
    }

    public func describe(table: SubchannelTable) -> PolicyDescription {
        var d = PolicyDescription(name: Self.name, state: state(previous: .idle, table: table))
        d.children = children.keys.sorted().map { g in
            var c = children[g]!.describe(table: table)
            c.label = g
            c.weight = weights[g]
            c.state = childState(g, table: table)
            return c
        }
        return d
    }
}
