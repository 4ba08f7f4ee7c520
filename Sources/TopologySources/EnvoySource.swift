import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import TopologyCore

/// Envoy's admin API as a source, polled every interval: `/clusters?format=json` (hosts, health
/// flags, counters), and `/server_info` once (the version). Two uses:
/// - `grpctop envoy URL` (`.observed`): the chosen cluster is an observed channel (its hosts the
///   subchannels, requests per host since the last poll), the clusters are the Clusters pane;
/// - `grpctop watch TARGET --envoy-admin URL` (`.proxy`): the same report goes beside the
///   client's own channel as the proxy's level (`Event.proxyReport`).
/// An admin port that is not Envoy's, refuses or answers garbage gets one line and a retry with
/// backoff (1 s doubling to 30 s); the last picture stays.
public final class EnvoySource: @unchecked Sendable {
    public enum Mode: Sendable { case observed, proxy }
    public let baseURL: String
    public let intervalMs: Int64
    public let mode: Mode
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var sink: (@Sendable (Event) -> Void)?
    private var chosenID: Int64?
    private var chosenName: String?
    private let http = HTTPClient(eventLoopGroupProvider: .singleton,
                                  configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(5))))

    /// `http://127.0.0.1:15000` (a missing scheme means http; a trailing `/` is dropped).
    public init(url: String, intervalMs: Int64, cluster: String? = nil, mode: Mode) {
        var u = url
        if !u.hasPrefix("http://") && !u.hasPrefix("https://") { u = "http://" + u }
        while u.hasSuffix("/") { u.removeLast() }
        baseURL = u
        self.intervalMs = intervalMs
        self.mode = mode
        chosenName = cluster
    }

    /// Whether `url` can be an admin URL: http(s)://host[:port][/prefix], printable.
    public static func problem(url: String) -> String? {
        var u = url
        if !u.hasPrefix("http://") && !u.hasPrefix("https://") { u = "http://" + u }
        guard u.count <= 2000, u.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }),
              let parsed = URL(string: u), let host = parsed.host, !host.isEmpty else {
            return "'\(url.prefix(100))' is not an admin URL: write http://127.0.0.1:15000 (Istio's sidecar) or host:port"
        }
        return nil
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        lock.withLock { self.sink = sink }
        let t = Task { [self] in await run() }
        lock.withLock { task = t }
    }

    public func stop() {
        let t = lock.withLock { () -> Task<Void, Never>? in
            sink = nil
            return task
        }
        t?.cancel()
        try? http.syncShutdown()
    }

    /// Watch another cluster (the Clusters pane's Enter).
    public func choose(channelID: Int64) { lock.withLock { chosenID = channelID } }

    private func push(_ e: Event) { lock.withLock { sink }?(e) }

    /// GET `path`: the body, or a one-line reason.
    private func get(_ path: String) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        let timeout = TimeAmount.milliseconds(max(1000, min(10_000, intervalMs * 5)))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch {
            throw SourceError(Self.describe(error))
        }
        let body: ByteBuffer
        do { body = try await response.body.collect(upTo: 64 << 20) } catch {
            throw SourceError("the answer to \(path) was cut or larger than 64 MiB")
        }
        guard response.status == .ok else {
            throw SourceError("\(path) answered HTTP \(response.status.code): is this Envoy's admin port (Istio: 15000)?")
        }
        return Array(body.readableBytesView)
    }

    struct SourceError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    static func describe(_ error: Error) -> String {
        let text = "\(error)"
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "connect timed out"
            case .deadlineExceeded: return "no answer in time"
            case .remoteConnectionClosed: return "the connection was closed"
            default: break
            }
        }
        if text.contains("refused") { return "connection refused" }
        if text.contains("reset") { return "connection reset" }
        return String(text.prefix(200))
    }

    private func run() async {
        let source = "envoy \(baseURL)"
        var observer = EnvoyObserver(source: source)
        var backoff = ConnectionBackoff(initialMs: 1000, multiplier: 2, jitter: 0.2, maxMs: 30_000, minConnectTimeoutMs: 0)
        var version: String?
        var watching: String?
        var down = false
        var polls = 0
        while !Task.isCancelled {
            let started = DispatchTime.now()
            var delayMs = intervalMs
            do {
                if version == nil, let info = EnvoyAdmin.serverInfo(json: try await get("/server_info")) { version = info.version }
                let bytes = try await get("/clusters?format=json")
                let clusters: [EnvoyCluster]
                do { clusters = try EnvoyAdmin.clusters(json: bytes) } catch {
                    throw SourceError("\(baseURL) does not answer like Envoy's admin (/clusters?format=json: \(error))")
                }
                polls += 1
                let (id, name) = lock.withLock { (chosenID, chosenName) }
                var preferred = name
                if let id, let n = observer.ids.first(where: { $0.value == id })?.key { preferred = n }
                guard let cluster = EnvoyObserver.defaultCluster(clusters, preferred: preferred) else {
                    let why = preferred.map { "Envoy at \(baseURL) has no cluster \($0)" } ?? "Envoy at \(baseURL) has no clusters yet"
                    fail(why, info: ["envoy": baseURL])
                    try? await Task.sleep(for: .milliseconds(delayMs))
                    continue
                }
                if cluster.name != watching {
                    if watching != nil { push(.notice(Notice(.info, "envoy: now watching cluster \(EnvoyAdmin.displayName(cluster.name))"))) }
                    watching = cluster.name
                    lock.withLock { chosenName = cluster.name; chosenID = nil }
                }
                if down { push(.notice(Notice(.info, "envoy admin at \(baseURL) answers again"))) }
                down = false
                backoff.reset()
                // What /clusters lacks (panic mode, ejections); optional: an old Envoy may refuse the filter.
                let stats = (try? await get(EnvoyAdmin.statsPath(cluster: cluster.name))).map(EnvoyAdmin.stats(json:)) ?? [:]
                var report = observer.report(cluster: cluster, clusters: clusters, version: version, stats: stats)
                report.intervalMs = Int(intervalMs)
                switch mode {
                case .observed:
                    push(.resolverStatus(["envoy": baseURL, "version": version ?? "?", "clusters": "\(clusters.count)", "cluster": cluster.name,
                                          "polls": "\(polls)", "watch": "up"]))
                    push(.observedChannel(report))
                case .proxy:
                    push(.proxyReport(report))
                }
            } catch {
                if Task.isCancelled { return }
                delayMs = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
                let message = "\(error)".hasPrefix(baseURL) ? "\(error)" : "envoy admin at \(baseURL): \(error)"
                fail("\(message); retry in \(formatDuration(delayMs))", info: ["envoy": baseURL, "watch": "down, retry in \(formatDuration(delayMs))"])
                down = true
            }
            let elapsed = Int64((DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000)
            let wait = max(0, delayMs - (delayMs == intervalMs ? elapsed : 0))
            do { try await Task.sleep(for: .milliseconds(wait)) } catch { return }
        }
    }

    private func fail(_ message: String, info: [String: String]) {
        switch mode {
        case .observed: push(.resolverFailed(ResolverFailure(message: message, info: info)))
        case .proxy: push(.proxyFailed(message))
        }
    }
}
