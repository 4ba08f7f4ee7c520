/// One row of the xDS tree the dashboard and snapshots show: a cluster, one of its priorities,
/// or a locality of a priority — with the configured weight, what share of the RPCs it should get
/// and what it got (last 10 s), its state in the policy tree and how many of its endpoints are
/// usable.
public struct XDSTreeRow: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable { case cluster, priority, locality }
    public var kind: Kind
    public var cluster: String
    public var priority: Int?
    public var locality: String?
    /// A cluster's weight in the route (weighted_clusters), a locality's load_balancing_weight.
    public var weight: UInt32?
    /// Its state in the policy tree; nil when not started (a priority not needed yet).
    public var state: ConnectivityState?
    /// A priority: whether RPCs go to it.
    public var inUse: Bool?
    /// A cluster: which priority is in use and why.
    public var note: String?
    /// The share of all RPCs it should get (cluster weight × locality weight, over the
    /// localities of the priority in use that have a READY endpoint).
    public var expectedShare: Double?
    /// The share of the RPCs completed in the last 10 s it got.
    public var observedShare: Double?
    public var ready: Int
    public var total: Int
    /// `cluster`, `cluster/0`, `cluster/0/us/zone-a`: a stable id for the row.
    public var id: String { [cluster, priority.map(String.init), locality].compactMap { $0 }.joined(separator: "/") }
}

extension Model {
    /// The xDS tree (clusters → priorities → localities) from the endpoints' metadata and the
    /// policy tree; empty unless the resolver chose the xDS tree.
    public var xdsRows: [XDSTreeRow] {
        guard isXDS else { return [] }
        struct Group { var endpoints: [Endpoint] = [] }
        var clusterOrder: [String] = []
        var clusterWeights: [String: UInt32] = [:]
        var byLocality: [String: [Int: [(name: String, weight: UInt32, endpoints: [Endpoint])]]] = [:]
        for e in resolver.endpoints {
            let c = e.metadata["cluster"] ?? ""
            if clusterWeights[c] == nil {
                clusterOrder.append(c)
                clusterWeights[c] = e.metadata["cluster_weight"].flatMap(UInt32.init) ?? 1
            }
            let p = e.metadata["priority"].flatMap(Int.init) ?? 0
            let l = e.metadata["locality"] ?? ""
            var list = byLocality[c, default: [:]][p, default: []]
            if let i = list.firstIndex(where: { $0.name == l }) {
                list[i].endpoints.append(e)
            } else {
                list.append((l, e.metadata["locality_weight"].flatMap(UInt32.init) ?? 1, [e]))
            }
            byLocality[c, default: [:]][p] = list
        }
        let tree = policyTree
        let completed = Double(max(0, backendsCompleted10s))
        func got(_ eps: [Endpoint]) -> Double? {
            guard completed > 0 else { return nil }
            let n = eps.reduce(0) { $0 + (backends[$1.displayName]?.traffic.completed(lastSeconds: 10, tickMs: tickMs) ?? 0) }
            return Double(n) / completed
        }
        let clusterTotal = Double(clusterOrder.reduce(UInt64(0)) { $0 + UInt64(clusterWeights[$1] ?? 1) })
        var rows: [XDSTreeRow] = []
        for c in clusterOrder {
            let node = tree.find([c])
            let priorities = byLocality[c] ?? [:]
            let all = priorities.values.flatMap { $0.flatMap(\.endpoints) }
            let clusterShare = clusterTotal > 0 ? Double(clusterWeights[c] ?? 1) / clusterTotal : 0
            rows.append(XDSTreeRow(kind: .cluster, cluster: c, weight: clusterWeights[c], state: node?.state, note: node?.note,
                                   observedShare: got(all), ready: all.filter(\.ready).count, total: all.count))
            for p in priorities.keys.sorted() {
                let pnode = node?.find(["\(p)"])
                let localities = priorities[p]!
                let eps = localities.flatMap(\.endpoints)
                let inUse = pnode?.inUse ?? false
                rows.append(XDSTreeRow(kind: .priority, cluster: c, priority: p, state: pnode?.state, inUse: inUse,
                                       observedShare: got(eps), ready: eps.filter(\.ready).count, total: eps.count))
                // Only localities with a READY child get RPCs (weighted_target).
                let live = localities.filter { pnode?.find([$0.name])?.state == .ready }
                let liveTotal = Double(live.reduce(UInt64(0)) { $0 + UInt64($1.weight) })
                for l in localities {
                    let lnode = pnode?.find([l.name])
                    var expected: Double?
                    if inUse { expected = lnode?.state == .ready && liveTotal > 0 ? clusterShare * Double(l.weight) / liveTotal : 0 }
                    rows.append(XDSTreeRow(kind: .locality, cluster: c, priority: p, locality: l.name, weight: l.weight, state: lnode?.state,
                                           expectedShare: expected, observedShare: got(l.endpoints),
                                           ready: l.endpoints.filter(\.ready).count, total: l.endpoints.count))
                }
            }
        }
        return rows
    }
}
