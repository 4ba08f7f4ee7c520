/// xDS resources as grpctop uses them, decoded from the wire and validated as gRPC's client does
/// (gRFC A27, A28, A39): what fails validation is NACKed with the reason, and the previous
/// version stays in use. Pure: no I/O, no clock.
public enum XDSType: String, CaseIterable, Sendable, Comparable {
    case lds = "LDS", rds = "RDS", cds = "CDS", eds = "EDS"

    public var url: String {
        switch self {
        case .lds: "type.googleapis.com/envoy.config.listener.v3.Listener"
        case .rds: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
        case .cds: "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        case .eds: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
        }
    }

    public init?(url: String) {
        guard let t = XDSType.allCases.first(where: { $0.url == url }) else { return nil }
        self = t
    }

    public static func < (a: XDSType, b: XDSType) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    public static let hcmURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    public static let routerURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
}

/// A resource that failed validation: the reason goes into the NACK.
public struct XDSInvalid: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = String(d.prefix(500)) }
}

/// A listener's route configuration: inline, or by name over RDS.
public enum XDSListener: Equatable, Sendable {
    case rds(String)
    case inline(XDSRouteConfiguration)

    public static func decode(_ l: XDS.Listener) throws(XDSInvalid) -> XDSListener {
        guard let api = l.apiListener?.apiListener else { throw XDSInvalid("listener \(l.name) has no api_listener (a gRPC client needs one)") }
        guard api.typeUrl == XDSType.hcmURL else { throw XDSInvalid("listener \(l.name): api_listener is \(api.typeUrl), not an HttpConnectionManager") }
        let hcm: XDS.HttpConnectionManager
        do { hcm = try XDS.HttpConnectionManager(serialized: api.value) } catch { throw XDSInvalid("listener \(l.name): malformed HttpConnectionManager") }
        guard let last = hcm.httpFilters.last else { throw XDSInvalid("listener \(l.name): no HTTP filters (the router filter must be last)") }
        guard last.typedConfig?.typeUrl == XDSType.routerURL else {
            throw XDSInvalid("listener \(l.name): the last HTTP filter is '\(last.name)', not the router (envoy.filters.http.router)")
        }
        if let inline = hcm.routeConfig { return .inline(try XDSRouteConfiguration.decode(inline)) }
        if let rds = hcm.rds {
            let source = rds.configSource
            guard source?.ads != nil || source?.selfSource != nil else {
                throw XDSInvalid("listener \(l.name): RDS config_source must be ads or self (gRPC clients use the ADS stream)")
            }
            guard !rds.routeConfigName.isEmpty else { throw XDSInvalid("listener \(l.name): rds has no route_config_name") }
            return .rds(rds.routeConfigName)
        }
        throw XDSInvalid("listener \(l.name): HttpConnectionManager has neither rds nor route_config")
    }
}

/// A route configuration's virtual hosts and their routes.
public struct XDSRouteConfiguration: Equatable, Sendable {
    public struct Route: Equatable, Sendable {
        public enum Match: Equatable, Sendable {
            case prefix(String), path(String)
            /// A match grpctop cannot evaluate (regex, headers): never matches, said in notes.
            case unsupported(String)
        }
        public var match: Match
        public var caseSensitive: Bool
        /// The clusters and their weights (one with weight 1 for `cluster`); empty: the route
        /// does not forward (redirect, direct response, cluster_header).
        public var clusters: [(name: String, weight: UInt32)]
        public static func == (a: Route, b: Route) -> Bool {
            a.match == b.match && a.caseSensitive == b.caseSensitive && a.clusters.map(\.name) == b.clusters.map(\.name)
                && a.clusters.map(\.weight) == b.clusters.map(\.weight)
        }
    }
    public struct VirtualHost: Equatable, Sendable {
        public var name: String
        public var domains: [String]
        public var routes: [Route]
    }
    public var name: String
    public var virtualHosts: [VirtualHost]

    public static func decode(_ rc: XDS.RouteConfiguration) throws(XDSInvalid) -> XDSRouteConfiguration {
        var hosts: [VirtualHost] = []
        for vh in rc.virtualHosts.prefix(10_000) {
            var routes: [Route] = []
            for r in vh.routes.prefix(10_000) {
                let m = r.match ?? XDS.RouteMatch()
                let match: Route.Match
                if !m.safeRegex.isEmpty { match = .unsupported("regex") }
                else if !m.pathSeparatedPrefix.isEmpty { match = .unsupported("path_separated_prefix") }
                else if !m.headers.isEmpty { match = .unsupported("header matchers") }
                else if !m.path.isEmpty { match = .path(m.path) }
                else { match = .prefix(m.prefix) }
                var clusters: [(name: String, weight: UInt32)] = []
                if let action = r.route {
                    if let wc = action.weightedClusters {
                        var total: UInt64 = 0
                        for c in wc.clusters {
                            let w = c.weight?.value ?? 0
                            guard !c.name.isEmpty else { throw XDSInvalid("route configuration \(rc.name): a weighted cluster has no name") }
                            total += UInt64(w)
                            if w > 0 { clusters.append((c.name, w)) }
                        }
                        guard total > 0 else { throw XDSInvalid("route configuration \(rc.name): weighted_clusters' total weight is 0") }
                        guard total <= UInt64(UInt32.max) else { throw XDSInvalid("route configuration \(rc.name): weighted_clusters' total weight exceeds 2^32-1") }
                    } else if !action.cluster.isEmpty {
                        clusters = [(action.cluster, 1)]
                    } else if action.clusterHeader.isEmpty && action.clusterSpecifierPlugin.isEmpty {
                        throw XDSInvalid("route configuration \(rc.name): a route action names no cluster")
                    }
                }
                routes.append(Route(match: match, caseSensitive: m.caseSensitive?.value ?? true, clusters: clusters))
            }
            hosts.append(VirtualHost(name: vh.name, domains: vh.domains.map { $0.lowercased() }, routes: routes))
        }
        return XDSRouteConfiguration(name: rc.name, virtualHosts: hosts)
    }

    /// The virtual host for `authority` (Envoy's order: exact, then `*.suffix`, then `prefix.*`,
    /// then `*`; the longest within a kind).
    public func virtualHost(for authority: String) -> VirtualHost? {
        let a = authority.lowercased()
        var best: (kind: Int, length: Int, host: VirtualHost)?
        for vh in virtualHosts {
            for d in vh.domains {
                var kind: Int?
                if d == a { kind = 0 }
                else if d == "*" { kind = 3 }
                else if d.hasPrefix("*"), a.hasSuffix(d.dropFirst()), a.count > d.count - 1 { kind = 1 }
                else if d.hasSuffix("*"), a.hasPrefix(d.dropLast()), a.count > d.count - 1 { kind = 2 }
                guard let k = kind else { continue }
                if best == nil || k < best!.kind || (k == best!.kind && d.count > best!.length) { best = (k, d.count, vh) }
            }
        }
        return best?.host
    }

    /// The first route of the virtual host for `authority` that matches `path`, and its clusters.
    public func route(authority: String, path: String) -> Result<[(name: String, weight: UInt32)], XDSInvalid> {
        guard let vh = virtualHost(for: authority) else { return .failure(XDSInvalid("no virtual host in \(name) matches \(authority)")) }
        for r in vh.routes {
            let p = r.caseSensitive ? path : path.lowercased()
            switch r.match {
            case .prefix(let x): if !p.hasPrefix(r.caseSensitive ? x : x.lowercased()) { continue }
            case .path(let x): if p != (r.caseSensitive ? x : x.lowercased()) { continue }
            case .unsupported: continue
            }
            guard !r.clusters.isEmpty else { return .failure(XDSInvalid("the route for \(path) in \(vh.name) does not forward to a cluster")) }
            return .success(r.clusters)
        }
        return .failure(XDSInvalid("no route in virtual host \(vh.name) matches \(path)"))
    }
}

/// An EDS cluster.
public struct XDSCluster: Equatable, Sendable {
    public var name: String
    /// The ClusterLoadAssignment to ask for (`service_name`, else the cluster's name).
    public var edsName: String

    public static func decode(_ c: XDS.Cluster) throws(XDSInvalid) -> XDSCluster {
        if let custom = c.clusterType { throw XDSInvalid("cluster \(c.name): cluster_type \(custom.name) is not supported by grpctop (EDS clusters only)") }
        let types = [0: "STATIC", 1: "STRICT_DNS", 2: "LOGICAL_DNS", 3: "EDS", 4: "ORIGINAL_DST"]
        guard c.type == 3 else { throw XDSInvalid("cluster \(c.name): type \(types[Int(c.type)] ?? "\(c.type)") is not supported by grpctop (EDS clusters only)") }
        let source = c.edsClusterConfig?.edsConfig
        guard source?.ads != nil || source?.selfSource != nil else { throw XDSInvalid("cluster \(c.name): eds_config must be ads or self") }
        let policies = [0: "ROUND_ROBIN", 1: "LEAST_REQUEST", 2: "RING_HASH", 3: "RANDOM", 5: "MAGLEV", 6: "CLUSTER_PROVIDED", 7: "LOAD_BALANCING_POLICY_CONFIG"]
        guard c.lbPolicy == 0 else {
            throw XDSInvalid("cluster \(c.name): lb_policy \(policies[Int(c.lbPolicy)] ?? "\(c.lbPolicy)") is not supported by grpctop (ROUND_ROBIN)")
        }
        let service = c.edsClusterConfig?.serviceName ?? ""
        return XDSCluster(name: c.name, edsName: service.isEmpty ? c.name : service)
    }
}

/// A ClusterLoadAssignment: localities by priority, each with its weight and endpoints.
public struct XDSAssignment: Equatable, Sendable {
    public struct Locality: Equatable, Sendable {
        public var region: String
        public var zone: String
        public var subZone: String
        public var weight: UInt32
        public var priority: Int
        public var endpoints: [XDSEndpoint]
        /// `region/zone/sub_zone` without empty parts trailing.
        public var name: String {
            let parts = [region, zone, subZone]
            let last = parts.lastIndex { !$0.isEmpty } ?? -1
            return last < 0 ? "(no locality)" : parts[...last].joined(separator: "/")
        }
    }
    public var clusterName: String
    public var localities: [Locality]
    /// `category 10%` per drop_overload (shown; grpctop does not drop).
    public var drops: [String]

    public static func decode(_ a: XDS.ClusterLoadAssignment) throws(XDSInvalid) -> XDSAssignment {
        var localities: [Locality] = []
        var sums: [Int: UInt64] = [:]
        for l in a.endpoints.prefix(100_000) {
            guard l.priority <= 128 else { throw XDSInvalid("assignment \(a.clusterName): priority \(l.priority) is above 128") }
            // gRPC ignores a locality without a weight.
            guard let w = l.loadBalancingWeight?.value, w > 0 else { continue }
            var endpoints: [XDSEndpoint] = []
            for e in l.lbEndpoints.prefix(100_000) {
                endpoints.append(try XDSEndpoint.decode(e, cluster: a.clusterName))
            }
            let p = Int(l.priority)
            sums[p, default: 0] += UInt64(w)
            guard sums[p]! <= UInt64(UInt32.max) else { throw XDSInvalid("assignment \(a.clusterName): locality weights of priority \(p) exceed 2^32-1") }
            let loc = l.locality ?? XDS.Locality()
            localities.append(Locality(region: String(loc.region.prefix(200)), zone: String(loc.zone.prefix(200)), subZone: String(loc.subZone.prefix(200)),
                                       weight: w, priority: p, endpoints: endpoints))
        }
        let priorities = Set(localities.map(\.priority)).sorted()
        if let gap = priorities.enumerated().first(where: { $0.offset != $0.element }) {
            throw XDSInvalid("assignment \(a.clusterName): priorities are not contiguous from 0 (\(priorities.map(String.init).joined(separator: ", ")); \(gap.offset) is missing)")
        }
        let drops = (a.policy?.dropOverloads ?? []).prefix(16).map { d -> String in
            let n = Double(d.dropPercentage?.numerator ?? 0)
            let denominator = [0: 100.0, 1: 10_000.0, 2: 1_000_000.0][Int(d.dropPercentage?.denominator ?? 0)] ?? 100
            let pct = min(100, n / denominator * 100)
            return "\(String(d.category.prefix(50))) \(pct == pct.rounded() ? String(Int(pct)) : String(format: "%.2f", pct))%"
        }
        return XDSAssignment(clusterName: a.clusterName, localities: localities, drops: Array(drops))
    }
}

public struct XDSEndpoint: Equatable, Sendable {
    public var host: String
    public var port: Int
    /// envoy.config.core.v3.HealthStatus: UNKNOWN 0, HEALTHY 1, UNHEALTHY 2, DRAINING 3, TIMEOUT 4, DEGRADED 5.
    public var health: Int32
    public var weight: UInt32
    public var hostname: String

    public static let healthNames = [0: "UNKNOWN", 1: "HEALTHY", 2: "UNHEALTHY", 3: "DRAINING", 4: "TIMEOUT", 5: "DEGRADED"]
    public var healthName: String { Self.healthNames[Int(health)] ?? "HEALTH_\(health)" }
    /// gRPC sends RPCs to UNKNOWN and HEALTHY endpoints only.
    public var usable: Bool { health == 0 || health == 1 }

    static func decode(_ e: XDS.LbEndpoint, cluster: String) throws(XDSInvalid) -> XDSEndpoint {
        guard let sa = e.endpoint?.address?.socketAddress else { throw XDSInvalid("assignment \(cluster): an endpoint has no socket address") }
        guard isIP(sa.address) else {
            throw XDSInvalid("assignment \(cluster): endpoint address '\(String(sa.address.prefix(80)))' is not an IP address")
        }
        guard (1...65535).contains(sa.portValue) else { throw XDSInvalid("assignment \(cluster): endpoint \(sa.address) has port \(sa.portValue)") }
        return XDSEndpoint(host: sa.address, port: Int(sa.portValue), health: e.healthStatus, weight: max(1, e.loadBalancingWeight?.value ?? 1),
                           hostname: String((e.endpoint?.hostname ?? "").prefix(253)))
    }

    /// A dotted IPv4 address or an IPv6 address (hex groups, `::`, an IPv4 tail).
    static func isIP(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 45 else { return false }
        let v4 = s.split(separator: ".", omittingEmptySubsequences: false)
        if v4.count == 4, v4.allSatisfy({ p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && Int(p)! <= 255 }) { return true }
        guard s.contains(":") else { return false }
        return s.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } && s.components(separatedBy: "::").count <= 2
    }
}
