import Foundation
import TopologyCore

/// When the DNS resolver looks again.
public enum DNSRefresh: Sendable, Equatable, CustomStringConvertible {
    /// Like gRPC: only when asked (a subchannel disconnect or GOAWAY), at most once per
    /// `minIntervalMs` (30 s in gRPC); never on a timer.
    case grpc(minIntervalMs: Int64)
    /// Poll at max(record TTL, `minIntervalMs`).
    case ttl(minIntervalMs: Int64)
    /// Poll every `ms`.
    case every(ms: Int64)

    public var description: String {
        switch self {
        case .grpc(let m): "grpc (on disconnect, ≥ \(formatDuration(m)) apart)"
        case .ttl(let m): "ttl (min \(formatDuration(m)))"
        case .every(let ms): "every \(formatDuration(ms))"
        }
    }

    /// `grpc`, `ttl` or a duration (`5s`, `500ms`), as `--dns-refresh` takes it.
    public static func parse(_ text: String, minIntervalMs: Int64?) -> DNSRefresh? {
        switch text {
        case "grpc": return .grpc(minIntervalMs: minIntervalMs ?? 30_000)
        case "ttl": return .ttl(minIntervalMs: minIntervalMs ?? 1000)
        default: return DurationText.parseMillis(text).flatMap { $0 > 0 ? .every(ms: $0) : nil }
        }
    }
}

/// `dns:` targets through c-ares: A and AAAA records (or SRV with per-endpoint ports), a
/// selectable re-resolution policy, errors that keep the last good set (gRPC's rule), and its
/// state — policy, record TTL, last answer, next lookup — pushed as resolver status.
///
/// Everything runs on one serial queue; a lookup blocks it (up to the lookup timeout), and
/// requests that arrive meanwhile are coalesced.
public final class DNSResolver: EndpointResolver, @unchecked Sendable {
    public let name = "dns"
    public let host: String
    public let port: Int
    public let server: String?
    public let srv: Bool
    public let refresh: DNSRefresh
    public let timeoutMs: Int

    private let queue = DispatchQueue(label: "grpctop.dns")
    private var lookup: DNSLookup?
    private var sink: (@Sendable (Event) -> Void)?
    private var stopped = false
    private var lastLookup: DispatchTime?
    private var lastAnswerWall: Double?
    private var lastTTL: Int?
    /// Failed lookups are retried with gRPC's connection backoff (1 s × 1.6 ± 20 %, ≤ 120 s).
    private var backoff = ConnectionBackoff()
    /// The pending timer's generation: a newer schedule cancels older ones.
    private var generation = 0
    private var nextDueWall: Double?
    private var pendingRequest = false
    public private(set) var lookups = 0

    /// `server`: the target's authority ("host:port"), or nil for the system's servers.
    public init(host: String, port: Int, server: String?, srv: Bool = false, refresh: DNSRefresh = .grpc(minIntervalMs: 30_000), timeoutMs: Int = 10_000) {
        self.host = host
        self.port = port
        self.server = server
        self.srv = srv || host.hasPrefix("_")
        self.refresh = refresh
        self.timeoutMs = timeoutMs
    }

    /// The name queried: the host, or for SRV `_grpc._tcp.host` unless it already is a `_service._proto.` name.
    public var queryName: String { srv && !host.hasPrefix("_") ? "_grpc._tcp.\(host)" : host }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        queue.async { [self] in
            self.sink = sink
            do {
                lookup = try DNSLookup(server: server, timeoutMs: timeoutMs)
            } catch {
                sink(.resolverFailed(ResolverFailure(message: (error as? DNSError)?.message ?? "\(error)", info: status(next: "never (fix the target)"))))
                return
            }
            resolveNow()
        }
    }

    public func requestResolution(_ request: ResolutionRequest) {
        queue.async { [self] in
            guard !stopped else { return }
            if case .grpc(let minMs) = refresh, request != .user, let last = lastLookup {
                // gRPC's rate limit: at most one lookup per interval; later requests wait for it.
                let elapsed = Int64((DispatchTime.now().uptimeNanoseconds - last.uptimeNanoseconds) / 1_000_000)
                if elapsed < minMs {
                    if !pendingRequest {
                        pendingRequest = true
                        lookUp(inMs: minMs - elapsed)
                        sink?(.resolverStatus(status(next: nil)))
                    }
                    return
                }
            }
            resolveNow()
        }
    }

    public func stop() {
        queue.sync {
            stopped = true
            generation += 1
            sink = nil
        }
    }

    // MARK: - on the queue

    private func resolveNow() {
        guard !stopped, let lookup else { return }
        generation += 1  // cancels a pending timer: this lookup replaces it
        pendingRequest = false
        nextDueWall = nil
        lookups += 1
        lastLookup = .now()
        do {
            let (endpoints, ttl) = try resolve(lookup)
            lastAnswerWall = Date().timeIntervalSince1970
            lastTTL = ttl
            backoff.reset()
            scheduleAfterAnswer(ttl: ttl)
            // Pushed even when unchanged: the model then only updates the resolver's status.
            sink?(.resolverUpdated(ResolverResult(endpoints: endpoints, info: status(next: nil))))
        } catch {
            // Retried whatever the policy: gRPC's DNS resolver does, and a user waiting for
            // recovery wants to see it. Polling policies never wait longer than their period.
            let retry = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
            let delay: Int64
            switch refresh {
            case .grpc: delay = retry
            case .ttl(let m): delay = max(m, min(retry, Int64(lastTTL ?? 1) * 1000))
            case .every(let ms): delay = min(ms, retry)
            }
            lookUp(inMs: delay)
            sink?(.resolverFailed(ResolverFailure(message: error.message, info: status(next: nil))))
        }
    }

    private func scheduleAfterAnswer(ttl: Int?) {
        switch refresh {
        case .grpc: nextDueWall = nil
        case .ttl(let minMs): lookUp(inMs: max(minMs, Int64(ttl ?? 0) * 1000))
        case .every(let ms): lookUp(inMs: ms)
        }
    }

    /// The next lookup in `ms` (replacing any pending one).
    private func lookUp(inMs ms: Int64) {
        generation += 1
        let g = generation
        nextDueWall = Date().timeIntervalSince1970 + Double(ms) / 1000
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(ms))) { [self] in
            guard !stopped, g == generation else { return }
            resolveNow()
        }
    }

    /// One lookup turned into endpoints, and the answer's smallest TTL (also what `grpctop bench
    /// --dns` times).
    public func resolve(_ lookup: DNSLookup) throws(DNSError) -> (endpoints: [Endpoint], ttl: Int?) {
        if srv {
            let records = try lookup.services(queryName)
            // Lowest priority first (RFC 2782), then the answer's order.
            let sorted = records.enumerated().sorted { ($0.element.priority, $0.offset) < ($1.element.priority, $1.offset) }.map(\.element)
            var endpoints: [Endpoint] = []
            var ttl: Int?
            var lastError: DNSError?
            for r in sorted {
                do {
                    let a = try lookup.addresses(r.target)
                    for addr in a.addresses {
                        endpoints.append(Endpoint(addresses: [.tcp(host: addr.ip, port: r.port)], hostname: r.target,
                                                  metadata: ["srv": "\(r.target):\(r.port) priority \(r.priority) weight \(r.weight)"]))
                        ttl = min(ttl ?? addr.ttl, addr.ttl)
                    }
                } catch {
                    lastError = error
                }
            }
            if endpoints.isEmpty, let lastError { throw lastError }
            return (endpoints, ttl)
        }
        let answer = try lookup.addresses(queryName)
        let endpoints = answer.addresses.map { Endpoint(addresses: [.tcp(host: $0.ip, port: port)], hostname: host) }
        return (endpoints, answer.addresses.map(\.ttl).min())
    }

    /// What the header and the Endpoints pane show about this resolver.
    private func status(next: String?) -> [String: String] {
        var info: [String: String] = ["refresh": refresh.description, "query": (srv ? "SRV " : "A/AAAA ") + queryName]
        if let server { info["server"] = server }
        if let lastTTL { info["ttl"] = "\(lastTTL)s" }
        if let lastAnswerWall { info["answeredAt"] = String(Int64(lastAnswerWall * 1000)) }
        if let next {
            info["next"] = next
            info["nextAt"] = ""
        } else if let nextDueWall {
            info["nextAt"] = String(Int64(nextDueWall * 1000))
            info["next"] = ""
        } else if case .grpc = refresh {
            info["next"] = "on disconnect"
            info["nextAt"] = ""
        }
        info["lookups"] = "\(lookups)"
        return info
    }
}
