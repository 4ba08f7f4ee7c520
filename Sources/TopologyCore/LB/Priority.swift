/// gRPC's `priority` policy (gRFC A56, as xDS uses it for EDS priorities): one child per
/// priority, started lazily from the best (0). The best priority whose child is READY gets every
/// RPC; a child that reports TRANSIENT_FAILURE, or that has not become READY within the failover
/// timer (10 s), makes the next priority start. When a better priority is READY again, RPCs go
/// back to it and the worse children are shut down. Priorities ride on the endpoints' metadata
/// (`priority`), as the xDS resolver writes them.
public struct Priority: LoadBalancingPolicy {
    public static let name = "priority_experimental"
    /// gRPC's failover timer.
    public static let failoverMs: Millis = 10_000
    public var groupKey = "priority"
    public var childTemplate: AnyPolicy? = AnyPolicy(WeightedTarget())
    /// Started children, by priority.
    public private(set) var children: [Int: AnyPolicy] = [:]
    /// The endpoints of each priority present.
    private var groups: [Int: [Endpoint]] = [:]
    /// When each child started (its failover timer), and whether it has been READY since.
    private var startedAt: [Int: Millis] = [:]
    private var wasReady: Set<Int> = []
    private var states: [Int: ConnectivityState] = [:]
    /// The priority RPCs go to, and why.
    public private(set) var current: Int?
    public private(set) var why = ""

    public init() {}
    public init(child: AnyPolicy) { childTemplate = child }

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        var g: [Int: [Endpoint]] = [:]
        for e in endpoints {
            let p = e.metadata[groupKey].flatMap(Int.init) ?? 0
            g[p, default: []].append(e)
        }
        groups = g
        for p in children.keys.sorted() where groups[p] == nil {
            children[p]!.shutDownAll(why: "priority \(p) gone", table: &table)
            drop(p)
        }
        // As in WeightedTarget: release endpoints that moved to another priority first.
        for p in children.keys.sorted() {
            let own = groups[p]!.filter { e in table.live(for: e.key).map { children[p]!.owns($0) } ?? true }
            children[p]!.update(endpoints: own, table: &table)
        }
        for p in children.keys.sorted() { children[p]!.update(endpoints: groups[p]!, table: &table) }
        choose(table: &table)
    }

    private mutating func drop(_ p: Int) {
        children[p] = nil
        startedAt[p] = nil
        wasReady.remove(p)
        states[p] = nil
    }

    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        for p in children.keys.sorted() where children[p]!.owns(id) {
            children[p]!.subchannelChanged(id, from: from, to: to, table: &table)
        }
        choose(table: &table)
    }

    /// The failover timer is checked on every tick.
    public mutating func tick(table: inout SubchannelTable) {
        for p in children.keys.sorted() { children[p]!.tick(table: &table) }
        choose(table: &table)
    }

    /// Picks the priority in use: the first, in order, that is READY, or still connecting within
    /// its failover timer, or not started yet (then started); past a failing one, the next.
    private mutating func choose(table: inout SubchannelTable) {
        var reasons: [String] = []
        var chosen: Int?
        let order = groups.keys.sorted()
        for p in order {
            if children[p] == nil {
                var child = childTemplate ?? AnyPolicy(WeightedTarget())
                child.update(endpoints: groups[p]!, table: &table)
                children[p] = child
                startedAt[p] = table.now
                if !reasons.isEmpty { table.logLines.append((.warning, "priority \(p) started: \(reasons.joined(separator: "; "))")) }
            }
            let s = children[p]!.state(previous: states[p] ?? .idle, table: table)
            states[p] = s
            if s == .ready { wasReady.insert(p) }
            switch s {
            case .ready:
                chosen = p
            case .transientFailure, .shutdown:
                reasons.append("priority \(p) \(s.rawValue)")
            case .connecting, .idle:
                let (waited, overflow) = table.now.subtractingReportingOverflow(startedAt[p] ?? table.now)
                if wasReady.contains(p) || (!overflow && waited < Self.failoverMs) {
                    chosen = p
                } else {
                    reasons.append("priority \(p) not READY within \(formatDuration(Self.failoverMs)) (failover timer)")
                }
            }
            if chosen != nil { break }
        }
        let next = chosen ?? order.last
        // A better priority is READY: the worse ones are no longer needed.
        if let n = next, states[n] == .ready {
            for p in children.keys.sorted() where p > n {
                children[p]!.shutDownAll(why: "priority \(n) is READY again", table: &table)
                drop(p)
            }
        }
        if next != current {
            if let n = next {
                let from = current.map { "priority \($0) → " } ?? ""
                table.logLines.append((n == order.first ? .info : .warning,
                                       "\(from)priority \(n) in use\(reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; "))"))
            }
            current = next
        }
        why = next.map { n in
            reasons.isEmpty ? "priority \(n) \((states[n] ?? .idle).rawValue)" : "priority \(n): " + reasons.joined(separator: "; ")
        } ?? "no priorities"
    }

    public func owns(_ id: SubchannelID) -> Bool { children.values.contains { $0.owns(id) } }

    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for p in children.keys.sorted() { children[p]!.shutDownAll(why: why, table: &table) }
    }

    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState {
        guard let c = current, let child = children[c] else { return groups.isEmpty ? .transientFailure : .connecting }
        return child.state(previous: states[c] ?? previous, table: table)
    }

    public func pickNode(table: SubchannelTable) -> any PickNode {
        guard let c = current, let child = children[c] else { return NoPick() }
        return child.pickNode(table: table)
    }

    public func describe(table: SubchannelTable) -> PolicyDescription {
        var d = PolicyDescription(name: Self.name, state: state(previous: .idle, table: table), note: why)
        d.children = children.keys.sorted().map { p in
            var c = children[p]!.describe(table: table)
            c.label = "\(p)"
            c.state = children[p]!.state(previous: states[p] ?? .idle, table: table)
            c.inUse = p == current
            return c
        }
        return d
    }
}
