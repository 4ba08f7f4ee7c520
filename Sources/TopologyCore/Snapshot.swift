import Foundation

/// One `--batch` snapshot: what the dashboard would show, as data (JSON Lines) or a table.
public struct Snapshot: Codable, Sendable, Equatable {
    public var type = "snapshot"
    /// Seconds since the session started.
    public var t: Double
    public var target: String
    public var policy: String
    public var channel: String
    public var rps: Double
    public var errorsPerSecond: Double
    public var queued: Int
    public var fairness: Double?
    public var fairnessWord: String
    public var resolver: ResolverSnapshot
    public var endpoints: [EndpointSnapshot]
    public var subchannels: [SubchannelSnapshot]
    public var backends: [BackendSnapshot]
    /// An observed process's channels and servers (`grpctop attach`); nil otherwise.
    public var process: ObservedProcess?
    /// An xDS target's control plane and tree (clusters → priorities → localities).
    public var xds: XDSSnapshot?
    /// A proxy's level (`--envoy-admin`): its cluster's hosts.
    public var proxy: ProxySnapshot?
    /// gRFC A17: the health-check service name when health checks run ("" = the server).
    public var healthCheck: String?
    /// gRFC A50: outlier detection's settings and how many addresses it ejects now.
    public var outlierDetection: String?

    public struct ProxySnapshot: Codable, Sendable, Equatable {
        public var source: String
        public var kind: String?
        public var cluster: String
        public var error: String?
        public var balancing: String?
        /// Panic mode, ejections (the proxy's stats).
        public var notes: [String]?
        public var hosts: [ProxyHostSnapshot]
    }

    public struct ProxyHostSnapshot: Codable, Sendable, Equatable {
        public var name: String
        public var address: String
        public var state: String
        public var reason: String?
        public var rps: Double
        public var share: Double
        public var active: Int
        /// The proxy's counts for the host: requests, successes, errors.
        public var total: Int64?
        public var ok: Int64?
        public var failed: Int64?
    }

    public struct XDSSnapshot: Codable, Sendable, Equatable {
        public var status: XDSStatus?
        public var tree: [XDSTreeRow]
    }

    public struct ResolverSnapshot: Codable, Sendable, Equatable {
        public var name: String
        public var endpoints: Int
        public var updates: Int
        public var lastUpdateAgoMs: Int64?
        public var error: String?
        public var errorForMs: Int64?
        public var info: [String: String]
    }

    public struct EndpointSnapshot: Codable, Sendable, Equatable {
        public var name: String
        public var addresses: [String]
        public var condition: String
        public var pod: String?
        public var node: String?
        public var zone: String?
        public var revision: String?
        public var ageMs: Int64
        public var mark: String?
        public var subchannel: Int?
        /// What else the resolver knows (etcd: key, format, lease, ttl), when it knows anything.
        public var metadata: [String: String]?
    }

    public struct SubchannelSnapshot: Codable, Sendable, Equatable {
        public var id: Int
        public var endpoint: String
        public var address: String
        public var local: String?
        public var state: String
        public var forMs: Int64
        public var streams: Int
        public var maxStreams: Int?
        public var queued: Int
        public var started: Int
        public var ok: Int
        public var failed: Int
        public var messagesSent: Int
        public var messagesReceived: Int
        public var rttMs: Double?
        public var connectMs: Int64?
        public var lastReason: String?
        public var backoffMs: Int64?
        public var goAways: Int
        public var lastGoAway: GoAwaySnapshot?
        public var transitions: [String]
        /// An observed subchannel's connection and the calls its process counted (attach).
        public var socket: ObservedSocket?
        public var lifetime: ObservedCalls?
        /// `READY · unhealthy`, `READY · ejected`… (the state as the dashboard shows it).
        public var shown: String?
        /// gRFC A17: the health-check stream's status (SERVING, NOT_SERVING, checking…).
        public var health: HealthSnapshot?
        /// gRFC A50: outlier detection's word on the address.
        public var outlier: OutlierSnapshot?
    }

    public struct HealthSnapshot: Codable, Sendable, Equatable {
        public var status: String
        public var forMs: Int64
        public var detail: String?
        public var retryInMs: Int64?
        /// The Watch stream holds one of the peer's stream slots.
        public var stream: Bool
    }

    public struct OutlierSnapshot: Codable, Sendable, Equatable {
        public var ejected: Bool
        public var why: String?
        public var multiplier: Int
        public var ejections: Int
        public var backInMs: Int64?
        /// The last complete interval's calls.
        public var intervalOk: Int
        public var intervalFailed: Int
    }

    public struct GoAwaySnapshot: Codable, Sendable, Equatable {
        public var code: String
        public var lastStreamID: Int
        public var debug: String
        public var agoMs: Int64
    }

    public struct BackendSnapshot: Codable, Sendable, Equatable {
        public var name: String
        public var rps: Double
        public var rps10s: Double
        public var rps60s: Double
        public var share: Double
        public var p50Ms: Double?
        public var p99Ms: Double?
        public var total: Int
        public var ok: Int
        public var failed: Int
        public var errors: [String: Int]
    }

    public init(_ m: Model) {
        let tick = m.tickMs
        t = Double(m.now) / 1000
        target = m.session?.target ?? ""
        policy = m.policyName
        healthCheck = m.session?.healthCheckService
        outlierDetection = m.outlierDetection.map { od in
            "\(od.addresses.values.filter { $0.ejectedAt != nil }.count) of \(od.addresses.count) ejected; \(od.config.summary)"
        }
        channel = m.channelState.rawValue
        rps = round2(m.channel.rate(seconds: 1, tickMs: tick))
        errorsPerSecond = round2(m.channel.errorRate(seconds: 1, tickMs: tick))
        queued = m.channelQueued
        let f = m.liveFairness()
        fairness = f.index.map(round3)
        fairnessWord = f.word
        resolver = ResolverSnapshot(
            name: m.session?.resolver ?? "", endpoints: m.resolver.endpoints.count, updates: m.resolver.updates,
            lastUpdateAgoMs: m.resolver.lastUpdate.map { m.now - $0 }, error: m.resolver.error?.message,
            errorForMs: m.resolver.error.map { m.now - $0.since }, info: m.resolver.info)
        endpoints = m.endpointRows.map { row in
            let e = row.endpoint
            return EndpointSnapshot(
                name: e.displayName, addresses: e.addresses.map(\.description), condition: e.condition.rawValue,
                pod: e.pod, node: e.node, zone: e.zone, revision: e.revision, ageMs: m.now - row.firstSeen,
                mark: row.removedAt != nil ? "removed" : (row.isNew(now: m.now) ? "added" : nil),
                subchannel: row.removedAt == nil ? m.subchannel(for: e.key)?.id : nil,
                metadata: e.metadata.isEmpty ? nil : e.metadata)
        }
        subchannels = m.subchannelRows.map { sc in
            SubchannelSnapshot(
                id: sc.id, endpoint: sc.endpoint.displayName, address: sc.remote ?? sc.endpoint.addresses.first?.description ?? "",
                local: sc.local, state: sc.state.rawValue, forMs: m.now - sc.stateSince, streams: sc.activeStreams,
                maxStreams: sc.maxConcurrentStreams, queued: sc.queued, started: sc.traffic.total.started,
                ok: sc.traffic.total.succeeded, failed: sc.traffic.total.failed,
                messagesSent: sc.traffic.total.messagesSent, messagesReceived: sc.traffic.total.messagesReceived,
                rttMs: sc.rttMicros.map { round2(Double($0) / 1000) }, connectMs: sc.connectMs,
                lastReason: sc.lastDisconnectReason, backoffMs: sc.backoffUntil.map { max(0, $0 - m.now) },
                goAways: sc.goAways,
                lastGoAway: sc.lastGoAway.map { GoAwaySnapshot(code: $0.code, lastStreamID: $0.lastStreamID, debug: $0.debug, agoMs: m.now - $0.at) },
                transitions: sc.transitions.map { "\($0.from.rawValue)->\($0.to.rawValue)\($0.reason.map { ": \($0)" } ?? "")" },
                socket: sc.observedSocket, lifetime: sc.observedLifetime,
                shown: m.isHeldBack(sc) ? m.stateLabel(sc) : nil,
                health: sc.state == .ready ? sc.health.map { h in
                    HealthSnapshot(status: h.status.rawValue, forMs: m.now - h.since, detail: h.detail,
                                   retryInMs: h.retryAt.map { max(0, $0 - m.now) }, stream: h.holdsStream)
                } : nil,
                outlier: m.outlierState(sc.id).map { e, a in
                    OutlierSnapshot(ejected: e, why: a.why, multiplier: a.multiplier, ejections: a.ejections,
                                    backInMs: e ? a.ejectedUntil.map { max(0, $0 - m.now) } : nil,
                                    intervalOk: a.lastSucceeded, intervalFailed: a.lastFailed)
                })
        }
        process = m.observedProcess
        if m.isXDS || m.xds != nil { xds = XDSSnapshot(status: m.xds, tree: m.xdsRows) }
        if let p = m.proxy {
            let all = p.completed10s
            proxy = ProxySnapshot(source: p.source, kind: p.kind, cluster: p.cluster, error: p.error, balancing: m.balancingNote,
                                  notes: p.notes.isEmpty ? nil : p.notes, hosts: p.hosts.map { h in
                ProxyHostSnapshot(name: h.name, address: h.endpoint.addresses.first?.description ?? "", state: h.state.rawValue, reason: h.reason,
                                  rps: round2(h.traffic.rate(seconds: 1, tickMs: p.tickMs)),
                                  share: all > 0 ? round3(Double(h.traffic.completed(lastSeconds: 10, tickMs: p.tickMs)) / Double(all)) : 0,
                                  active: h.activeRequests, total: h.lifetime?.started, ok: h.lifetime?.succeeded, failed: h.lifetime?.failed)
            })
        }
        let recentTotal = m.backends.values.reduce(0) { $0 + $1.traffic.completed(lastSeconds: 10, tickMs: tick) }
        backends = m.backends.values.sorted { $0.name < $1.name }.map { b in
            let tr = b.traffic
            return BackendSnapshot(
                name: b.name, rps: round2(tr.rate(seconds: 1, tickMs: tick)),
                rps10s: round2(tr.rate(seconds: 10, tickMs: tick)), rps60s: round2(tr.rate(seconds: 60, tickMs: tick)),
                share: recentTotal > 0 ? round3(Double(tr.completed(lastSeconds: 10, tickMs: tick)) / Double(recentTotal)) : 0,
                p50Ms: tr.recentPercentile(50).map { round2(Double($0) / 1000) },
                p99Ms: tr.recentPercentile(99).map { round2(Double($0) / 1000) },
                total: tr.total.completed, ok: tr.total.succeeded, failed: tr.total.failed,
                errors: namedCodes(tr.total.codes))
        }
    }
}

/// The end-of-run summary: per backend total, share, errors by code, p50/p99; fairness.
public struct Summary: Codable, Sendable, Equatable {
    public var type = "summary"
    public var seconds: Double
    public var target: String
    public var policy: String
    public var total: Int
    public var ok: Int
    public var failed: Int
    public var errors: [String: Int]
    /// RPCs that never reached a subchannel.
    public var unassignedFailed: Int
    public var fairness: Double?
    public var fairnessWord: String
    public var goAways: Int
    public var reconnects: Int
    public var p50Ms: Double?
    public var p99Ms: Double?
    public var backends: [Row]

    public struct Row: Codable, Sendable, Equatable {
        public var name: String
        public var total: Int
        public var share: Double
        public var ok: Int
        public var failed: Int
        public var errors: [String: Int]
        public var p50Ms: Double?
        public var p99Ms: Double?
    }

    public init(_ m: Model) {
        seconds = Double(m.now) / 1000
        target = m.session?.target ?? ""
        policy = m.policyName
        let ch = m.channel.total
        total = ch.completed
        ok = ch.succeeded
        failed = ch.failed
        errors = namedCodes(ch.codes)
        unassignedFailed = m.unassigned.total.failed
        let f = m.sessionFairness()
        fairness = f.index.map(round3)
        fairnessWord = f.word
        goAways = m.goAways
        reconnects = m.reconnects
        p50Ms = m.channel.latency.percentile(50).map { round2(Double($0) / 1000) }
        p99Ms = m.channel.latency.percentile(99).map { round2(Double($0) / 1000) }
        let backendTotal = m.backends.values.reduce(0) { $0 + $1.traffic.total.completed }
        backends = m.backends.values.sorted { $0.name < $1.name }.map { b in
            let t = b.traffic.total
            return Row(
                name: b.name, total: t.completed, share: backendTotal > 0 ? round3(Double(t.completed) / Double(backendTotal)) : 0,
                ok: t.succeeded, failed: t.failed, errors: namedCodes(t.codes),
                p50Ms: b.traffic.latency.percentile(50).map { round2(Double($0) / 1000) },
                p99Ms: b.traffic.latency.percentile(99).map { round2(Double($0) / 1000) })
        }
    }
}

extension Summary {
    /// RPCs cancelled because the run ended before they completed.
    public var unfinished: Int { errors["UNFINISHED"] ?? 0 }

    /// Why a `--fail-on-error` gate fails this run, or nil when it passes: an RPC failed (an
    /// unfinished one counts), or none completed at all — a gate never passes on no evidence.
    public var gateFailure: String? {
        if failed > 0 {
            let done = failed - unfinished
            var parts: [String] = []
            if done > 0 { parts.append("\(done) RPC\(done == 1 ? "" : "s") failed") }
            if unfinished > 0 { parts.append("\(unfinished) unfinished when the run ended (no answer)") }
            return parts.joined(separator: ", ")
        }
        if ok == 0 { return "no RPC completed (is the server answering?)" }
        return nil
    }
}

func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
func namedCodes(_ codes: [Int: Int]) -> [String: Int] {
    var out: [String: Int] = [:]
    for (c, n) in codes { out[GRPCStatusName.name(c)] = n }
    return out
}

/// Durations as users type them: `250ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number is seconds.
/// At most `maxMillis` (366 days): a longer one, in nanoseconds, would be close to overflowing
/// the clocks it is added to, so it is refused rather than trapped on.
public enum DurationText {
    public static let maxMillis: Int64 = 366 * 86_400_000

    public enum Failure: Error, Equatable {
        case notADuration
        case tooLong
    }

    public static func parse(_ text: String) -> Result<Int64, Failure> {
        let s = text.trimmingCharacters(in: .whitespaces).lowercased()
        guard s.utf8.count <= 64 else { return .failure(.notADuration) }
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var number = s
        var factor = 1000.0
        for (suffix, f) in units where s.hasSuffix(suffix) {
            let num = String(s.dropLast(suffix.count))
            if suffix == "s" && num.hasSuffix("m") { continue }
            number = num
            factor = f
            break
        }
        guard let v = Double(number), v >= 0, v.isFinite else { return .failure(.notADuration) }
        let ms = v * factor
        guard ms.isFinite, ms <= Double(maxMillis) else { return .failure(.tooLong) }
        return .success(Int64(ms.rounded()))
    }

    public static func parseMillis(_ text: String) -> Int64? { try? parse(text).get() }
}

/// Sizes as users type them: `4194304`, `512KiB`, `4MiB`, `1GiB` (also kB/MB/GB, powers of 1000).
public enum ByteSizeText {
    public static func parse(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty, s.utf8.count <= 32 else { return nil }
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("kB", 1000), ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("B", 1)]
        var number = Substring(s)
        var factor = 1
        for (suffix, f) in units where s.hasSuffix(suffix) {
            number = s.dropLast(suffix.count)
            factor = f
            break
        }
        guard let v = Int(number.trimmingCharacters(in: .whitespaces)), v >= 0 else { return nil }
        let (product, overflow) = v.multipliedReportingOverflow(by: factor)
        return overflow ? nil : product
    }
}
