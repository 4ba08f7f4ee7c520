import TopologyCore

/// The client side of one ADS stream, state of the world (the xDS transport protocol), as a pure
/// value: responses in, requests (ACKs, NACKs, new subscriptions) out. It follows the chain
/// gRPC follows for `xds:///NAME` — the listener NAME → its route configuration (inline or RDS)
/// → the clusters of the route for the RPC → their ClusterLoadAssignments — and derives the
/// endpoints from what was last accepted. A response that fails validation is NACKed with the
/// reason; the previous version stays in use.
public struct XDSState: Sendable {
    /// What one resource type stands at: the names subscribed, the version accepted last, the
    /// nonce of the last response, why the last response was NACKed.
    public struct TypeState: Sendable, Equatable {
        public var names: [String] = []
        public var version = ""
        public var nonce = ""
        public var nack: String?
        /// When the version in use arrived (seconds since 1970; the caller's clock).
        public var updated: Double?
        public var answered = false
        /// A request with the current names was sent on this stream.
        var requested = false
    }

    public let listenerName: String
    /// The RPC's path, for route matching (`/helloworld.Greeter/SayHello`).
    public let rpcPath: String
    public var node: XDS.Node
    public private(set) var types: [XDSType: TypeState] = [:]
    public private(set) var listener: XDSListener?
    public private(set) var routeConfigurations: [String: XDSRouteConfiguration] = [:]
    public private(set) var clusters: [String: XDSCluster] = [:]
    public private(set) var assignments: [String: XDSAssignment] = [:]
    /// Why the chain does not lead to endpoints right now, if it does not.
    public private(set) var problem: String?
    private var sentNode = false

    public init(listenerName: String, rpcPath: String, node: XDS.Node) {
        self.listenerName = listenerName
        self.rpcPath = rpcPath
        self.node = node
        for t in XDSType.allCases { types[t] = TypeState() }
        types[.lds]!.names = [listenerName]
        problem = "waiting for the listener \(listenerName) (LDS)"
    }

    /// The chain is still being fetched (RPCs wait, as gRPC's do) rather than broken.
    public var waiting: Bool { problem?.hasPrefix("waiting") ?? false }

    // MARK: - the stream

    /// A new stream (the first, or after a reconnect): every subscription again, with the
    /// versions accepted so far and no nonce, the node on the first request.
    public mutating func streamStarted() -> [XDS.DiscoveryRequest] {
        sentNode = false
        var out: [XDS.DiscoveryRequest] = []
        for t in XDSType.allCases {
            types[t]!.nonce = ""
            types[t]!.requested = false
            if t == .lds || !types[t]!.names.isEmpty {
                out.append(request(t))
                types[t]!.requested = true
            }
        }
        return out
    }

    private mutating func request(_ t: XDSType, error: String? = nil) -> XDS.DiscoveryRequest {
        var r = XDS.DiscoveryRequest()
        let s = types[t]!
        r.typeUrl = t.url
        r.versionInfo = s.version
        r.resourceNames = s.names
        r.responseNonce = s.nonce
        if !sentNode {
            r.node = node
            sentNode = true
        }
        if let error {
            var status = XDS.Status()
            status.code = 3  // INVALID_ARGUMENT, as gRPC NACKs
            status.message = error
            r.errorDetail = status
        }
        return r
    }

    /// What changed with a response: the ACK or NACK and any new subscriptions to send, and the
    /// lines for the event log.
    public struct Outcome: Sendable {
        public var requests: [XDS.DiscoveryRequest] = []
        public var notices: [Notice] = []
        /// The endpoints (or the problem) may have changed.
        public var changed = false
    }

    /// Handles one response; `now` stamps accepted versions.
    public mutating func handle(_ response: XDS.DiscoveryResponse, now: Double) -> Outcome {
        var out = Outcome()
        guard let t = XDSType(url: response.typeUrl) else {
            out.notices.append(Notice(.warning, "xDS: a response of type \(String(response.typeUrl.prefix(100))) that was not asked for, ignored"))
            return out
        }
        types[t]!.nonce = String(response.nonce.prefix(1000))
        types[t]!.answered = true
        let version = String(response.versionInfo.prefix(200))
        do {
            let summary = try accept(t, response.resources)
            let changed = version != types[t]!.version || types[t]!.nack != nil || summary.changed
            types[t]!.version = version
            types[t]!.nack = nil
            if changed {
                types[t]!.updated = now
                out.changed = summary.changed
                if let line = summary.line { out.notices.append(Notice(summary.warning ? .warning : .info, "\(t.rawValue) \(line) v\(version)" + (summary.detail.isEmpty ? "" : ": " + summary.detail))) }
            }
            out.requests.append(request(t))
        } catch {
            types[t]!.nack = error.description
            out.requests.append(request(t, error: error.description))
        }
        let subscriptions = resubscribe()
        if !subscriptions.isEmpty { out.changed = true }
        out.requests += subscriptions
        let before = problem
        problem = computeProblem()
        if before != problem { out.changed = true }
        return out
    }

    /// The subscriptions the accepted resources call for; a request for each type whose names
    /// changed.
    private mutating func resubscribe() -> [XDS.DiscoveryRequest] {
        var want: [XDSType: [String]] = [.rds: [], .cds: [], .eds: []]
        var routes: XDSRouteConfiguration?
        switch listener {
        case .rds(let name)?:
            want[.rds] = [name]
            routes = routeConfigurations[name]
        case .inline(let rc)?:
            routes = rc
        case nil:
            break
        }
        if let routes, case .success(let cs) = routes.route(authority: listenerName, path: rpcPath) {
            want[.cds] = Array(Set(cs.map(\.name))).sorted()
        }
        want[.eds] = Array(Set(want[.cds]!.compactMap { clusters[$0]?.edsName })).sorted()
        var out: [XDS.DiscoveryRequest] = []
        for t in [XDSType.rds, .cds, .eds] where want[t]! != types[t]!.names {
            types[t]!.names = want[t]!
            // Resources no longer subscribed are forgotten.
            switch t {
            case .rds: routeConfigurations = routeConfigurations.filter { want[.rds]!.contains($0.key) }
            case .cds: clusters = clusters.filter { want[.cds]!.contains($0.key) }
            case .eds: assignments = assignments.filter { want[.eds]!.contains($0.key) }
            case .lds: break
            }
            out.append(request(t))
        }
        return out
    }

    struct Summary {
        var changed = false
        var line: String?
        var detail = ""
        var warning = false
    }

    /// Decodes and validates a response's resources of type `t`; throws the NACK reason.
    private mutating func accept(_ t: XDSType, _ resources: [XDS.AnyMessage]) throws(XDSInvalid) -> Summary {
        var s = Summary()
        guard resources.count <= 100_000 else { throw XDSInvalid("\(resources.count) resources in one response (at most 100000)") }
        for r in resources where r.typeUrl != t.url {
            throw XDSInvalid("a resource of type \(String(r.typeUrl.prefix(100))) in a \(t.rawValue) response")
        }
        func decode<M>(_ body: ([UInt8]) throws -> M, _ bytes: [UInt8]) throws(XDSInvalid) -> M {
            do { return try body(bytes) } catch { throw XDSInvalid("malformed \(t.rawValue) resource") }
        }
        switch t {
        case .lds:
            var found: XDSListener?
            for r in resources {
                let l = try decode(XDS.Listener.init(serialized:), r.value)
                guard l.name == listenerName else { continue }
                found = try XDSListener.decode(l)
            }
            if found == nil {
                // State of the world: the listener is not (or no longer) there.
                s.changed = listener != nil
                listener = nil
                s.line = "listener \(listenerName) does not exist"
                s.warning = true
            } else if found != listener {
                listener = found
                s.changed = true
                switch found! {
                case .rds(let name): s.line = "listener \(listenerName)"; s.detail = "routes from RDS \(name)"
                case .inline: s.line = "listener \(listenerName)"; s.detail = "inline routes"
                }
            }
        case .rds:
            for r in resources {
                let rc = try decode(XDS.RouteConfiguration.init(serialized:), r.value)
                guard types[.rds]!.names.contains(rc.name) else { continue }
                let parsed = try XDSRouteConfiguration.decode(rc)
                if routeConfigurations[rc.name] != parsed {
                    routeConfigurations[rc.name] = parsed
                    s.changed = true
                    s.line = "route configuration \(rc.name)"
                    if case .success(let cs) = parsed.route(authority: listenerName, path: rpcPath) {
                        s.detail = cs.map { cs.count > 1 ? "\($0.name) \($0.weight)" : $0.name }.joined(separator: ", ")
                    }
                }
            }
        case .cds:
            var seen: [String: XDSCluster] = [:]
            for r in resources {
                let c = try decode(XDS.Cluster.init(serialized:), r.value)
                guard types[.cds]!.names.contains(c.name) else { continue }
                seen[c.name] = try XDSCluster.decode(c)
            }
            if seen != clusters {
                let gone = Set(clusters.keys).subtracting(seen.keys).sorted()
                clusters = seen
                s.changed = true
                s.line = "clusters \(seen.keys.sorted().joined(separator: ", "))"
                if !gone.isEmpty {
                    s.detail = "\(gone.joined(separator: ", ")) removed"
                    s.warning = true
                }
            }
        case .eds:
            var lines: [String] = []
            for r in resources {
                let a = try decode(XDS.ClusterLoadAssignment.init(serialized:), r.value)
                guard types[.eds]!.names.contains(a.clusterName) else { continue }
                let parsed = try XDSAssignment.decode(a)
                let old = assignments[a.clusterName]
                if old != parsed {
                    assignments[a.clusterName] = parsed
                    s.changed = true
                    let diff = Self.difference(old, parsed)
                    lines.append("\(a.clusterName)\(diff.isEmpty ? "" : ": " + diff)")
                    if parsed.localities.flatMap(\.endpoints).contains(where: { !$0.usable }) { s.warning = true }
                }
            }
            if !lines.isEmpty {
                s.line = lines.count == 1 ? String(lines[0].prefix { $0 != ":" }) : "\(lines.count) assignments"
                s.detail = lines.count == 1 ? String(lines[0].drop { $0 != ":" }.dropFirst(2)) : lines.joined(separator: "; ")
            }
        }
        return s
    }

    /// `+1 endpoint in zone-b, 1 UNHEALTHY`: what an assignment update changed.
    static func difference(_ old: XDSAssignment?, _ new: XDSAssignment) -> String {
        func index(_ a: XDSAssignment?) -> [String: (locality: String, health: String)] {
            var d: [String: (String, String)] = [:]
            for l in a?.localities ?? [] { for e in l.endpoints { d["\(e.host):\(e.port)"] = (l.zone.isEmpty ? l.name : l.zone, e.healthName) } }
            return d
        }
        let before = index(old), after = index(new)
        var parts: [String] = []
        let added = after.keys.filter { before[$0] == nil }
        let removed = before.keys.filter { after[$0] == nil }
        func grouped(_ keys: [String], _ sign: String, _ from: [String: (locality: String, health: String)]) {
            let byLocality = Dictionary(grouping: keys) { from[$0]!.locality }
            for (loc, ks) in byLocality.sorted(by: { $0.key < $1.key }) {
                parts.append("\(sign)\(ks.count) endpoint\(ks.count == 1 ? "" : "s") in \(loc)")
            }
        }
        if old == nil {
            parts.append("\(after.count) endpoint\(after.count == 1 ? "" : "s") in \(Set(new.localities.map(\.name)).count) localit\(Set(new.localities.map(\.name)).count == 1 ? "y" : "ies")")
        } else {
            grouped(added, "+", after)
            grouped(removed, "-", before)
        }
        var health: [String: Int] = [:]
        for (k, v) in after where v.health != "HEALTHY" && v.health != "UNKNOWN" && (old == nil || before[k]?.health != v.health) { health[v.health, default: 0] += 1 }
        for (k, v) in after where old != nil && before[k] != nil && before[k]!.health != v.health && (v.health == "HEALTHY" || v.health == "UNKNOWN") {
            health[v.health, default: 0] += 1
        }
        for (h, n) in health.sorted(by: { $0.key < $1.key }) { parts.append("\(n) \(h)") }
        if old != nil, parts.isEmpty {
            let wb = old!.localities.map { "\($0.name)=\($0.weight)" }, wa = new.localities.map { "\($0.name)=\($0.weight)" }
            parts.append(wb == wa ? "weights or priorities changed" : "locality weights " + wa.joined(separator: " "))
        }
        return parts.joined(separator: ", ")
    }

    // MARK: - what it leads to

    /// The route's clusters with their weights, if the chain gets that far.
    public var routeClusters: [(name: String, weight: UInt32)]? {
        let routes: XDSRouteConfiguration?
        switch listener {
        case .rds(let name)?: routes = routeConfigurations[name]
        case .inline(let rc)?: routes = rc
        case nil: routes = nil
        }
        guard let routes, case .success(let cs) = routes.route(authority: listenerName, path: rpcPath) else { return nil }
        return cs
    }

    private func computeProblem() -> String? {
        guard types[.lds]!.answered else { return "waiting for the listener \(listenerName) (LDS)" }
        guard let listener else { return "the control plane has no listener \(listenerName)" }
        let routes: XDSRouteConfiguration
        switch listener {
        case .rds(let name):
            guard let rc = routeConfigurations[name] else { return "waiting for the route configuration \(name) (RDS)" }
            routes = rc
        case .inline(let rc):
            routes = rc
        }
        switch routes.route(authority: listenerName, path: rpcPath) {
        case .failure(let e): return e.description
        case .success(let cs):
            for c in cs {
                guard let cluster = clusters[c.name] else { return types[.cds]!.answered ? "cluster \(c.name) does not exist (CDS)" : "waiting for the cluster \(c.name) (CDS)" }
                guard assignments[cluster.edsName] != nil else { return "waiting for the endpoints of \(cluster.edsName) (EDS)" }
            }
            return nil
        }
    }

    /// Every endpoint of the route's clusters, as the model shows them and the xDS policy tree
    /// balances over them: `cluster`, `cluster_weight`, `priority`, `locality`,
    /// `locality_weight`, `health`, `weight` in the metadata; UNKNOWN and HEALTHY ones ready.
    public func endpoints() -> [Endpoint] {
        guard let route = routeClusters else { return [] }
        var out: [Endpoint] = []
        for c in route {
            guard let cluster = clusters[c.name], let a = assignments[cluster.edsName] else { continue }
            for l in a.localities.sorted(by: { ($0.priority, $0.name) < ($1.priority, $1.name) }) {
                for e in l.endpoints {
                    out.append(Endpoint(
                        addresses: [.tcp(host: e.host, port: e.port)], pod: e.hostname.isEmpty ? nil : e.hostname,
                        zone: l.zone.isEmpty ? nil : l.zone, hostname: e.hostname.isEmpty ? nil : e.hostname,
                        ready: e.usable, serving: e.usable || e.health == 3, terminating: e.health == 3,
                        metadata: ["cluster": c.name, "cluster_weight": "\(c.weight)", "priority": "\(l.priority)", "locality": l.name,
                                   "locality_weight": "\(l.weight)", "health": e.healthName, "weight": "\(e.weight)"]))
                }
            }
        }
        return out
    }

    /// The status line's content.
    public func status(server: String, connection: String, since: Double?) -> XDSStatus {
        var resources: [XDSResourceStatus] = []
        for t in XDSType.allCases {
            let s = types[t]!
            let names = t == .lds ? [listenerName] : s.names
            for n in names.prefix(20) {
                let state = s.nack != nil ? "nacked" : (s.answered ? "acked" : "requested")
                resources.append(XDSResourceStatus(type: t.rawValue, name: n, version: s.version, state: state, nackReason: s.nack, updated: s.updated))
            }
        }
        return XDSStatus(server: server, connection: connection, since: since, resources: resources)
    }
}
