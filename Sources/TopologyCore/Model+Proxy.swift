/// A proxy's own view beside the client's (`watch TARGET --envoy-admin URL`): the cluster the
/// proxy balances over, its hosts with their health as the proxy judges it, and the requests
/// each host got, polled from the proxy's admin API. The client's panes keep showing the
/// client's level (often one connection, to the proxy); this is the second level.
public struct ProxyView: Sendable, Codable {
    public var source: String
    /// The proxy and its version (`envoy 1.40.0`).
    public var kind: String?
    /// The cluster shown, as its name reads (Istio's names unpacked).
    public var cluster: String
    public var clusters: Int
    public var hosts: [ProxyHost]
    /// The admin API's last failure (the picture is kept), and since when.
    public var error: String?
    public var errorSince: Millis?
    public var lastReport: Millis
    /// Time between polls: the hosts' series have one sample per poll.
    public var tickMs: Int
    /// What the proxy's stats say this poll (panic mode, ejections).
    public var notes: [String] = []

    /// Requests completed over the last 10 s by all hosts.
    public var completed10s: Int { hosts.reduce(0) { $0 + $1.traffic.completed(lastSeconds: 10, tickMs: tickMs) } }
}

public struct ProxyHost: Sendable, Codable {
    public var endpoint: Endpoint
    public var state: ConnectivityState
    public var reason: String?
    public var activeRequests: Int
    public var traffic = TrafficSeries()
    /// The proxy's own counts for the host (since it has known it).
    public var lifetime: ObservedCalls?
    public var name: String { endpoint.displayName }
}

extension Model {
    mutating func applyProxyReport(_ report: ObservedChannel, intervalMs: Int) {
        var view = proxy ?? ProxyView(source: report.source, kind: report.process?.kind, cluster: "", clusters: 0, hosts: [],
                                      lastReport: now, tickMs: max(100, intervalMs))
        if view.error != nil { log.append(now, .info, "proxy admin answers again (\(report.source))") }
        view.error = nil
        view.errorSince = nil
        view.kind = report.process?.kind
        let notes = report.process?.notes ?? []
        for n in notes where !view.notes.contains(n) { log.append(now, .warning, "proxy: \(n)") }
        view.notes = notes
        let watched = report.process?.channels.first { $0.id == report.process?.watched }
        let cluster = watched?.target ?? "?"
        if view.cluster != cluster {
            if !view.cluster.isEmpty { log.append(now, .info, "proxy: now showing cluster \(cluster)") }
            view.cluster = cluster
            view.hosts = []
        }
        view.clusters = report.process?.channels.count ?? 1
        var hosts: [ProxyHost] = []
        for sub in report.subchannels {
            let key = sub.endpoint.key
            var h = view.hosts.first { $0.endpoint.key == key } ?? ProxyHost(endpoint: sub.endpoint, state: sub.state, activeRequests: 0)
            if h.state != sub.state {
                let why = sub.reason.map { ": \($0)" } ?? ""
                log.append(now, sub.state == .ready ? .info : .warning, "proxy host \(sub.endpoint.displayName) \(h.state == .ready ? "healthy" : "unhealthy") → \(sub.state == .ready ? "healthy" : "unhealthy")\(why)")
            }
            h.endpoint = sub.endpoint
            h.state = sub.state
            h.reason = sub.reason
            h.activeRequests = sub.activeStreams ?? 0
            h.lifetime = sub.lifetime
            h.traffic.apply(sub.calls, at: now)
            hosts.append(h)
        }
        for gone in view.hosts where !hosts.contains(where: { $0.endpoint.key == gone.endpoint.key }) {
            log.append(now, .info, "proxy host removed: \(gone.name)")
        }
        view.hosts = hosts
        view.lastReport = now
        proxy = view
        rowsVersion += 1
    }

    mutating func applyProxyFailure(_ message: String) {
        var view = proxy ?? ProxyView(source: "proxy", cluster: "", clusters: 0, hosts: [], lastReport: now, tickMs: 1000)
        if view.error != message { log.append(now, .warning, "proxy: \(message)") }
        if view.error == nil { view.errorSince = now }
        view.error = message
        proxy = view
    }

    /// Where the balancing happens, for the header: at the proxy when the client holds one
    /// connection and the proxy spreads over several hosts.
    public var balancingNote: String? {
        guard let p = proxy, !p.hosts.isEmpty else { return nil }
        let live = liveSubchannelCount
        let healthy = p.hosts.filter { $0.state == .ready }.count
        let conn = "\(live) connection\(live == 1 ? "" : "s")"
        let name = (p.kind ?? "proxy").split(separator: " ").first.map(String.init) ?? "proxy"
        return "client → \(conn) to \(name == "envoy" ? "Envoy" : name); \(name == "envoy" ? "Envoy" : name) → \(healthy)/\(p.hosts.count) hosts"
            + (live <= 1 && p.hosts.count > 1 ? ": balancing happens at the proxy" : "")
    }
}
