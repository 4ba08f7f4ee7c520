import Foundation
import TopologyCore

/// Envoy's admin API as grpctop reads it: `/clusters?format=json` (every cluster's hosts with
/// their health flags, weight, priority, locality and counters) and `/server_info` (version,
/// state). Untrusted bytes from another process: everything is type-checked and bounded, and a
/// page that is not Envoy's says so. Pure.
public struct EnvoyHost: Sendable, Equatable {
    /// `127.0.0.1:50051`, `[::1]:50051`, `unix:/path`.
    public var address: String
    public var host: String?
    public var port: Int?
    public var hostname: String?
    public var region: String?
    public var zone: String?
    public var priority: Int
    public var weight: Int
    /// EDS health (`HEALTHY`, `UNHEALTHY`, `DRAINING`…), when Envoy reports one.
    public var edsHealth: String?
    /// The health flags set (`failed_active_health_check`, `failed_outlier_check`,
    /// `pending_dynamic_removal`, …).
    public var flags: [String]
    /// rq_total, rq_success, rq_error, rq_timeout, cx_total, cx_connect_fail (counters) and
    /// rq_active, cx_active, rq_pending_active (gauges).
    public var stats: [String: Int64]

    public func stat(_ name: String) -> Int64 { stats[name] ?? 0 }

    /// Whether Envoy sends it requests: no failing flag and an EDS health of HEALTHY (or none).
    public var healthy: Bool {
        flags.allSatisfy { !Self.failing.contains($0) } && (edsHealth == nil || edsHealth == "HEALTHY" || edsHealth == "UNKNOWN")
    }

    static let failing: Set<String> = [
        "failed_active_health_check", "failed_outlier_check", "failed_eds_health", "active_hc_timeout",
        "excluded_via_immediate_hc_fail", "pending_dynamic_removal",
    ]

    /// Why it gets no requests, in words.
    public var problem: String? {
        if flags.contains("failed_active_health_check") { return "failed Envoy's active health check" }
        if flags.contains("active_hc_timeout") { return "Envoy's active health check timed out" }
        if flags.contains("failed_outlier_check") { return "ejected by Envoy's outlier detection" }
        if flags.contains("excluded_via_immediate_hc_fail") { return "excluded: the host asked to be (immediate health check fail)" }
        if flags.contains("pending_dynamic_removal") { return "pending removal (gone from EDS, draining)" }
        if flags.contains("failed_eds_health") || !(edsHealth == nil || edsHealth == "HEALTHY" || edsHealth == "UNKNOWN") {
            return "EDS health \(edsHealth ?? "UNHEALTHY")"
        }
        return nil
    }
}

public struct EnvoyCluster: Sendable, Equatable {
    public var name: String
    public var hosts: [EnvoyHost]
    public var addedViaAPI: Bool
}

public enum EnvoyAdminError: Error, Equatable, CustomStringConvertible {
    case notEnvoy(String)
    public var description: String {
        switch self {
        case .notEnvoy(let why): why
        }
    }
}

public enum EnvoyAdmin {
    /// The most clusters and hosts read from one answer.
    public static let maxClusters = 5_000
    public static let maxHosts = 20_000

    /// `/clusters?format=json`.
    public static func clusters(json bytes: [UInt8]) throws(EnvoyAdminError) -> [EnvoyCluster] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw .notEnvoy("not JSON\(looksLikeHTML(bytes) ? " (an HTML page)" : "")")
        }
        guard let statuses = obj["cluster_statuses"] as? [Any] else {
            throw .notEnvoy("no cluster_statuses in the answer")
        }
        var out: [EnvoyCluster] = []
        var hostCount = 0
        for c in statuses.prefix(maxClusters) {
            guard let c = c as? [String: Any], let name = c["name"] as? String else { continue }
            var hosts: [EnvoyHost] = []
            for h in (c["host_statuses"] as? [Any] ?? []) {
                guard hostCount < maxHosts, let h = h as? [String: Any], let host = host(h) else { continue }
                hosts.append(host)
                hostCount += 1
            }
            out.append(EnvoyCluster(name: String(name.prefix(300)), hosts: hosts, addedViaAPI: c["added_via_api"] as? Bool ?? false))
        }
        return out
    }

    static func host(_ h: [String: Any]) -> EnvoyHost? {
        guard let addr = h["address"] as? [String: Any] else { return nil }
        var e = EnvoyHost(address: "?", priority: int(h["priority"]).map { Int(clamping: $0) } ?? 0,
                          weight: int(h["weight"]).map { Int(clamping: $0) } ?? 1, flags: [], stats: [:])
        if let sa = addr["socket_address"] as? [String: Any], let ip = sa["address"] as? String {
            let port = int(sa["port_value"]).map { Int(clamping: $0) } ?? 0
            e.host = String(ip.prefix(100))
            e.port = port
            e.address = HostPort(host: e.host!, port: port).description
        } else if let pipe = addr["pipe"] as? [String: Any], let path = pipe["path"] as? String {
            e.address = "unix:" + path.prefix(200)
        } else {
            return nil
        }
        if let hn = h["hostname"] as? String, !hn.isEmpty { e.hostname = String(hn.prefix(253)) }
        if let loc = h["locality"] as? [String: Any] {
            e.region = (loc["region"] as? String).map { String($0.prefix(100)) }
            e.zone = (loc["zone"] as? String).map { String($0.prefix(100)) }
        }
        if let hs = h["health_status"] as? [String: Any] {
            for (k, v) in hs.sorted(by: { $0.key < $1.key }) {
                if k == "eds_health_status", let s = v as? String { e.edsHealth = String(s.prefix(40)) }
                else if v as? Bool == true { e.flags.append(String(k.prefix(60))) }
            }
        }
        for s in (h["stats"] as? [Any] ?? []).prefix(64) {
            guard let s = s as? [String: Any], let name = s["name"] as? String else { continue }
            e.stats[String(name.prefix(60))] = int(s["value"]) ?? 0
        }
        return e
    }

    /// A JSON number, or a number in a string (proto3 JSON writes 64-bit integers as strings),
    /// within Int64; nil otherwise.
    static func int(_ v: Any?) -> Int64? {
        if let s = v as? String { return Int64(s) }
        if let n = v as? NSNumber {
            let d = n.doubleValue
            guard d.isFinite, d >= -9.2e18, d <= 9.2e18 else { return nil }
            return n.int64Value
        }
        return nil
    }

    /// `/stats?format=json`: counters and gauges by name (histograms skipped), bounded.
    public static func stats(json bytes: [UInt8]) -> [String: Int64] {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let list = obj["stats"] as? [Any] else { return [:] }
        var out: [String: Int64] = [:]
        for s in list.prefix(1000) {
            guard let s = s as? [String: Any], let name = s["name"] as? String, let v = int(s["value"]) else { continue }
            out[String(name.prefix(300))] = v
        }
        return out
    }

    /// The stats of one cluster `/clusters` does not show: panic mode, retries, ejections,
    /// membership — the query's path.
    public static func statsPath(cluster: String) -> String {
        var escaped = ""
        for ch in cluster.prefix(300) {
            if "\\^$.|?*+()[]{}".contains(ch) { escaped.append("\\") }
            escaped.append(ch)
        }
        let regex = "^cluster\\.\(escaped)\\.(lb_healthy_panic|upstream_rq_retry|outlier_detection\\.ejections_active|membership_healthy|membership_total)$"
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_~"))
        return "/stats?format=json&filter=" + (regex.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
    }

    /// `/server_info`: Envoy's version (`1.40.0`) and state (`LIVE`).
    public static func serverInfo(json bytes: [UInt8]) -> (version: String, state: String)? {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let full = obj["version"] as? String else { return nil }
        // `<sha>/1.40.0/Clean/RELEASE/BoringSSL`
        let parts = full.split(separator: "/")
        let version = parts.count > 1 ? String(parts[1]) : String(full.prefix(40))
        return (String(version.prefix(40)), String((obj["state"] as? String ?? "?").prefix(20)))
    }

    static func looksLikeHTML(_ bytes: [UInt8]) -> Bool {
        let head = String(decoding: bytes.prefix(200), as: UTF8.self).lowercased()
        return head.contains("<html") || head.contains("<!doctype")
    }

    /// An Istio sidecar's cluster name, `outbound|50051|v2|web.shop.svc.cluster.local`: the
    /// direction, port, subset and service host.
    public static func istioName(_ name: String) -> (direction: String, port: Int, subset: String, host: String)? {
        let parts = name.split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 4, ["outbound", "inbound"].contains(parts[0]), let port = Int(parts[1]), (1...65535).contains(port) else { return nil }
        return (String(parts[0]), port, String(parts[2]), String(parts[3]))
    }

    /// How a cluster is named in the dashboard: Istio's `outbound|50051|v2|web.shop.svc…` as
    /// `web.shop.svc… :50051 subset v2 (outbound)`.
    public static func displayName(_ name: String) -> String {
        guard let i = istioName(name) else { return name }
        return "\(i.host):\(i.port)\(i.subset.isEmpty ? "" : " subset \(i.subset)") (\(i.direction))"
    }
}

/// Turns consecutive `/clusters` answers into observed-channel reports (one cluster's hosts as
/// subchannels, the requests each counted since the previous poll) and the list of clusters
/// (the Clusters pane). Pure.
public struct EnvoyObserver: Sendable {
    public let source: String
    private var previous: [String: [String: (Int64, Int64, Int64)]] = [:]
    private var polled: Set<String> = []
    private var previousPanic: [String: Int64] = [:]
    /// Stable ids for cluster names (the Clusters pane picks by id).
    public private(set) var ids: [String: Int64] = [:]

    public init(source: String) { self.source = source }

    /// The cluster a user most likely means: `preferred` by name, else the one with most
    /// requests among those with hosts (Envoy's own and Istio's internal clusters have none or
    /// few), else the first.
    public static func defaultCluster(_ clusters: [EnvoyCluster], preferred: String?) -> EnvoyCluster? {
        if let p = preferred { return clusters.first { $0.name == p } }
        let envoyOwn: Set<String> = ["BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster", "InboundPassthroughClusterIpv4",
                                     "xds-grpc", "sds-grpc", "prometheus_stats", "agent", "zipkin"]
        let candidates = clusters.filter { !$0.hosts.isEmpty && !envoyOwn.contains($0.name) }
        return candidates.max { a, b in
            let ta = a.hosts.reduce(Int64(0)) { $0 &+ $1.stat("rq_total") }, tb = b.hosts.reduce(Int64(0)) { $0 &+ $1.stat("rq_total") }
            return ta != tb ? ta < tb : a.name > b.name
        } ?? clusters.first
    }

    public mutating func id(_ name: String) -> Int64 {
        if let i = ids[name] { return i }
        let i = Int64(ids.count + 1)
        ids[name] = i
        return i
    }

    /// The report for `cluster` among `clusters`.
    /// What the cluster's stats say that its hosts do not: panic mode (fewer healthy hosts
    /// than the panic threshold, so Envoy sends to every host), outlier ejections.
    mutating func notes(cluster: String, stats: [String: Int64]) -> [String] {
        let p = "cluster.\(cluster)."
        var out: [String] = []
        if let panic = stats[p + "lb_healthy_panic"] {
            if let before = previousPanic[cluster], panic > before {
                let healthy = stats[p + "membership_healthy"].map { " (\($0) of \(stats[p + "membership_total"] ?? 0) hosts healthy)" } ?? ""
                out.append("PANIC: too few healthy hosts\(healthy), Envoy sends to every host, healthy or not (panic threshold, 50 % by default)")
            }
            previousPanic[cluster] = panic
        }
        if let ejected = stats[p + "outlier_detection.ejections_active"], ejected > 0 {
            out.append("\(ejected) host\(ejected == 1 ? "" : "s") ejected by outlier detection")
        }
        return out
    }

    public mutating func report(cluster: EnvoyCluster, clusters: [EnvoyCluster], version: String?, stats: [String: Int64] = [:]) -> ObservedChannel {
        var subs: [ObservedSubchannel] = []
        var seen: [String: (Int64, Int64, Int64)] = [:]
        let first = !polled.contains(cluster.name)
        let before = previous[cluster.name] ?? [:]
        for h in cluster.hosts {
            let counters = (h.stat("rq_total"), h.stat("rq_success"), h.stat("rq_error"))
            seen[h.address] = counters
            let b = first ? counters : (before[h.address] ?? (0, 0, 0))
            var delta = RPCDelta()
            delta.started = Self.difference(counters.0, b.0)
            delta.succeeded = Self.difference(counters.1, b.1)
            delta.failed = Self.difference(counters.2, b.2)
            let address: EndpointAddress = h.host.flatMap { host in h.port.map { .tcp(host: host, port: $0) } }
                ?? .unix(path: String(h.address.dropFirst(5)))
            var meta = ["priority": "\(h.priority)", "weight": "\(h.weight)"]
            if let eds = h.edsHealth { meta["health"] = eds }
            if !h.flags.isEmpty { meta["flags"] = h.flags.joined(separator: ",") }
            // Envoy's upstream connections to the host.
            meta["connections"] = "\(h.stat("cx_active")) active, \(h.stat("cx_total")) opened, \(h.stat("cx_connect_fail")) failed to connect"
            if h.stat("rq_timeout") > 0 { meta["timeouts"] = "\(h.stat("rq_timeout"))" }
            let endpoint = Endpoint(addresses: [address], pod: h.hostname, zone: h.zone, ready: h.healthy, metadata: meta)
            subs.append(ObservedSubchannel(endpoint: endpoint, state: h.healthy ? .ready : .transientFailure, reason: h.problem, calls: delta,
                                           activeStreams: Int(clamping: h.stat("rq_active")),
                                           lifetime: ObservedCalls(started: counters.0, succeeded: counters.1, failed: counters.2)))
        }
        previous[cluster.name] = seen
        polled.insert(cluster.name)
        let rows = clusters.map { c -> ObservedChannelRow in
            let total = c.hosts.reduce(Int64(0)) { $0 &+ $1.stat("rq_total") }
            let ok = c.hosts.reduce(Int64(0)) { $0 &+ $1.stat("rq_success") }
            let failed = c.hosts.reduce(Int64(0)) { $0 &+ $1.stat("rq_error") }
            let healthy = c.hosts.filter(\.healthy).count
            return ObservedChannelRow(id: id(c.name), parent: nil, target: EnvoyAdmin.displayName(c.name),
                                      state: c.hosts.isEmpty ? .idle : (healthy > 0 ? .ready : .transientFailure),
                                      callsStarted: total, callsSucceeded: ok, callsFailed: failed, subchannels: c.hosts.count)
        }
        var process = ObservedProcess(channels: rows, servers: [], watched: id(cluster.name), kind: "envoy\(version.map { " \($0)" } ?? "")")
        process.notes = notes(cluster: cluster.name, stats: stats)
        let state: ConnectivityState = cluster.hosts.contains(where: \.healthy) ? .ready : (cluster.hosts.isEmpty ? .idle : .transientFailure)
        return ObservedChannel(source: source, state: state, subchannels: subs, process: process)
    }

    static func difference(_ now: Int64, _ before: Int64) -> Int {
        Int(clamping: now >= before ? now - before : max(0, now))
    }
}
