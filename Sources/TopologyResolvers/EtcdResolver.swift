import GRPCWire
import EtcdAPI
import Foundation
import TopologyCore

/// `etcd:///PREFIX`: every key under the prefix is a registration (etcd naming, go-zero, kratos
/// or plain `host:port`, detected per key). Range the prefix, then Watch from revision + 1.
///
/// Unlike etcd's own naming resolver it never stops: a watch canceled by compaction ranges again
/// and re-watches at once; a lost connection (etcd down, a leader change, a network cut) retries
/// across the `--etcd` endpoints with jittered backoff (1 s doubling to 15 s), keeping the last
/// set and showing "watch down since …". Each key's lease and its remaining TTL (refreshed every
/// 2 s) are part of the endpoint's metadata, so a registration about to expire is visible. A
/// value that matches no format is reported once (key, reason) and skipped.
public final class EtcdResolver: EndpointResolver, @unchecked Sendable {
    public let name = "etcd"
    public let prefix: String
    public let config: EtcdConfig
    /// How often the leases' remaining TTLs are read again.
    public var ttlRefreshMs: Int64 = 2000

    private let client: EtcdClient
    /// Lifecycle, relist, backoff (1 s doubling to 15 s) and "down since".
    private let loop = WatchLoop(maxBackoffMs: 15_000)

    // Task-confined state.
    private struct Key {
        var registration: EtcdRegistration
        var lease: Int64
    }
    private var keys: [String: Key] = [:]
    private var ttls: [Int64: Int64] = [:]
    private var revision: Int64 = 0
    private var reported: [String: String] = [:]
    private var ranges = 0
    private var watches = 0

    public init(prefix: String, config: EtcdConfig) throws {
        self.prefix = prefix
        self.config = config
        client = try EtcdClient(config: config)
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        loop.start(sink) { [self] in await run() }
    }

    /// A watch is push-based: a disconnect says nothing new about the registry. `r` ranges again.
    public func requestResolution(_ request: ResolutionRequest) {
        guard request == .user else { return }
        loop.requestRelist()
    }

    public func stop() {
        loop.stop()
        client.disconnect()
    }

    private func push(_ e: Event) { loop.push(e) }

    // MARK: - the loop

    private enum WatchMessage: Sendable {
        case response(WatchResponse)
        case end(GRPCStatus)
        case tick
    }

    /// Why a watch ended without an error: compaction or `r` → range again at once.
    private enum WatchEnd { case compacted(Int64), relist }

    func run() async {
        var needRange = true
        while !Task.isCancelled {
            do {
                if !client.isConnected { try await client.connect() }
                if needRange || loop.relistRequested {
                    try await range()
                    needRange = false
                }
                // After a lost connection the watch resumes from the last revision seen (the
                // endpoints kept meanwhile); if etcd compacted past it, it ranges again.
                switch try await watch() {
                case .compacted(let rev):
                    push(.notice(Notice(.warning, "etcd: the watch fell behind compaction (revision \(rev)); listing \(prefix) again")))
                    needRange = true
                case .relist:
                    needRange = true
                }
            } catch {
                if Task.isCancelled { return }
                client.disconnect()
                let delay = loop.failed()
                let what = (error as? EtcdError)?.description ?? "etcd \(client.current?.description ?? config.endpoints.map(\.description).joined(separator: ",")): \(EtcdError.describe(error))"
                push(.resolverFailed(ResolverFailure(message: "\(what); retry in \(formatDuration(delay))", info: status(retryInMs: delay))))
                guard await loop.sleep(ms: delay) else { return }
            }
        }
    }

    private func range() async throws {
        let (kvs, rev) = try await client.range(prefix: prefix)
        ranges += 1
        var fresh: [String: Key] = [:]
        for kv in kvs {
            let key = String(decoding: kv.key, as: UTF8.self)
            fresh[key] = Key(registration: EtcdRegistration.parse(key: key, value: kv.value, prefix: prefix), lease: kv.lease)
        }
        keys = fresh
        revision = rev
        _ = loop.takeRelistRequest()
        await refreshTTLs()
        publish()
    }

    /// Watches from the ranged revision + 1 until compaction, `r`, or an error.
    private func watch() async throws -> WatchEnd {
        let (stream, cont) = AsyncStream<WatchMessage>.makeStream()
        let call = try await client.watch(prefix: prefix, fromRevision: revision + 1,
                                          onResponse: { cont.yield(.response($0)) },
                                          onEnd: { cont.yield(.end($0)); cont.finish() })
        watches += 1
        loop.watching { call.cancel() }
        let refresh = ttlRefreshMs
        let ticker = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(refresh))
                cont.yield(.tick)
            }
        }
        defer {
            ticker.cancel()
            call.cancel()
            loop.watching(cancel: nil)
        }
        for await message in stream {
            if Task.isCancelled { throw CancellationError() }
            switch message {
            case .response(let r):
                if r.canceled {
                    if r.compactRevision > 0 { return .compacted(r.compactRevision) }
                    throw GRPCStatus(code: GRPCStatus.unavailable, message: "the watch was canceled: \(r.cancelReason.isEmpty ? "no reason given" : r.cancelReason)")
                }
                if r.created {
                    // The watch is up (again, after a failure).
                    loop.up()
                    publish()
                }
                guard !r.events.isEmpty else { continue }
                for e in r.events {
                    guard let kv = e.kv else { continue }
                    let key = String(decoding: kv.key, as: UTF8.self)
                    if e.type == 1 {
                        keys[key] = nil
                        reported[key] = nil
                    } else {
                        keys[key] = Key(registration: EtcdRegistration.parse(key: key, value: kv.value, prefix: prefix), lease: kv.lease)
                        if kv.lease != 0 && ttls[kv.lease] == nil, let t = try? await client.timeToLive(kv.lease) { ttls[kv.lease] = t }
                    }
                }
                revision = max(revision, r.header?.revision ?? revision)
                publish()
            case .end(let status):
                if loop.relistRequested { return .relist }
                throw status
            case .tick:
                if await refreshTTLs() { publish() }
            }
        }
        if loop.relistRequested { return .relist }
        throw GRPCStatus(code: GRPCStatus.unavailable, message: "the watch ended")
    }

    /// Reads every key's lease TTL again; true if any changed.
    @discardableResult
    private func refreshTTLs() async -> Bool {
        let leases = Set(keys.values.map(\.lease).filter { $0 != 0 })
        var changed = false
        for lease in leases.sorted().prefix(1000) {
            guard let t = try? await client.timeToLive(lease) else { continue }
            if ttls[lease] != t { changed = true }
            ttls[lease] = t
        }
        for l in ttls.keys where !leases.contains(l) { ttls[l] = nil }
        return changed
    }

    // MARK: - what the user sees

    private func publish() {
        var endpoints: [Endpoint] = []
        var seen = Set<EndpointKey>()
        for key in keys.keys.sorted() {
            let k = keys[key]!
            switch k.registration {
            case .endpoint(var e, _):
                if k.lease != 0 {
                    e.metadata["lease"] = String(k.lease, radix: 16)
                    if let t = ttls[k.lease] { e.metadata["ttl"] = t < 0 ? "expired" : "\(t)s" }
                }
                if seen.insert(e.key).inserted { endpoints.append(e) }
            case .deleted:
                continue
            case .skipped(let reason):
                if reported[key] != reason {
                    reported[key] = reason
                    push(.notice(Notice(.warning, "etcd: skipped \(key): \(reason)")))
                }
            }
        }
        push(.resolverUpdated(ResolverResult(endpoints: endpoints, info: status())))
    }

    private func status(retryInMs: Int64? = nil) -> [String: String] {
        var formats: [String: Int] = [:]
        var skipped = 0
        for k in keys.values {
            switch k.registration {
            case .endpoint(_, let f): formats[f.rawValue, default: 0] += 1
            case .skipped: skipped += 1
            case .deleted: break
            }
        }
        var info = ["etcd": client.current?.description ?? config.endpoints.map(\.description).joined(separator: ","),
                    "prefix": prefix, "keys": "\(keys.count)", "revision": "\(revision)",
                    "ranges": "\(ranges)", "watches": "\(watches)"]
        // Every key every time: the model merges a resolver's info into what it had.
        info["formats"] = formats.isEmpty ? "none" : formats.keys.sorted().map { "\($0) \(formats[$0]!)" }.joined(separator: ", ")
        info["skipped"] = skipped == 0 ? "none" : "\(skipped) key\(skipped == 1 ? "" : "s") (see Events)"
        if let user = config.user { info["user"] = user }
        info["watch"] = loop.watchStatus(retryInMs: retryInMs, up: "up, revision \(revision)")
        return info
    }
}
