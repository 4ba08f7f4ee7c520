import Foundation
import NIOCore
import TopologyCore

/// `consul://[HOST:PORT]/SERVICE?…`: the service's instances from the agent's health API,
/// `GET /v1/health/service/SERVICE`, then blocking queries (`index` = the last
/// `X-Consul-Index`, `wait`) as Consul documents them: an index that goes backwards starts over
/// at 0, an index is never below 1, a return is not a change (an unchanged answer publishes
/// nothing), and queries start at most 4 a second. Failures (agent down, 5xx, 403) keep the last
/// set, say "watch down since …" and retry with jittered backoff (1 s doubling to 30 s).
public final class ConsulResolver: EndpointResolver, @unchecked Sendable {
    public let name = "consul"
    public let service: String
    public let query: ConsulQuery
    public let config: ConsulConfig

    private let client: ConsulClient
    private let loop = WatchLoop(maxBackoffMs: 30_000)

    // Task-confined state.
    private var index = ConsulBlockingIndex()
    private var last: [Endpoint]?
    private var lastStartMs: Int64 = -1_000_000
    private var queries = 0
    private var changes = 0
    private var filteredByACL = false
    private var emptyReported = false
    private var reported: Set<String> = []

    public init(service: String, query: ConsulQuery, config: ConsulConfig) throws(ConsulConfig.Problem) {
        self.service = service
        self.query = query
        self.config = config
        client = try ConsulClient(config)
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        client.open()
        loop.start(sink) { [self] in await run() }
    }

    /// Blocking queries are push-based: a disconnect says nothing new. `r` queries at once.
    public func requestResolution(_ request: ResolutionRequest) {
        guard request == .user else { return }
        loop.requestRelist()
    }

    public func stop() {
        let client = self.client
        loop.stop { await client.shutdown() }
    }

    private func push(_ e: Event) { loop.push(e) }

    private static func nowMs() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    // MARK: - the loop

    func run() async {
        while !Task.isCancelled {
            if loop.takeRelistRequest() { index.restart() }
            let pause = index.delayBeforeNext(lastStartMs: lastStartMs, nowMs: Self.nowMs())
            if pause > 0 { guard await loop.sleep(ms: pause) else { return } }
            lastStartMs = Self.nowMs()
            do {
                let answer = try await queryOnce()
                if Task.isCancelled { return }
                try handle(answer)
            } catch is CancellationError {
                if Task.isCancelled { return }
                continue  // cancelled for `r`
            } catch let error as ConsulError {
                if Task.isCancelled { return }
                if loop.relistRequested { continue }
                let delay = loop.failed()
                fail(error, retryInMs: delay)
                guard await loop.sleep(ms: delay) else { return }
            } catch {
                if Task.isCancelled { return }
                let delay = loop.failed()
                fail(.transport("\(error)"), retryInMs: delay)
                guard await loop.sleep(ms: delay) else { return }
            }
        }
    }

    /// One health query: blocking once an index is known.
    private func queryOnce() async throws -> ConsulClient.Answer {
        var params = query.parameters
        var timeout = TimeAmount.seconds(30)
        if index.index > 0 {
            params.append(("index", "\(index.index)"))
            params.append(("wait", "\(query.waitMs / 1000)s"))
            // Consul adds up to wait/16 of jitter; allow that and a margin.
            timeout = .milliseconds(query.waitMs + query.waitMs / 16 + 15_000)
        }
        let path = "/v1/health/service/\(ConsulClient.encode(service))"
        let params2 = params
        let sub = Task<ConsulClient.Answer, Error> { [client] in
            try await client.send(.GET, path, query: params2, timeout: timeout)
        }
        loop.watching { sub.cancel() }
        defer { loop.watching(cancel: nil) }
        queries += 1
        let answer = try await withTaskCancellationHandler { try await sub.value } onCancel: { sub.cancel() }
        if loop.relistRequested { throw CancellationError() }
        return answer
    }

    private func handle(_ answer: ConsulClient.Answer) throws {
        guard (200..<300).contains(answer.status) else {
            throw ConsulError.status(code: answer.status, message: ConsulClient.message(answer.body))
        }
        let decoded: ConsulHealth.Decoded
        do { decoded = try ConsulHealth.decode(answer.body, passingOnly: query.passingOnly) } catch {
            throw ConsulError.transport("\(config.base) answered \(service)'s health with something that is not Consul's: \(error)")
        }
        let wasDown = loop.up()
        switch index.update(header: answer.headers.first(name: "X-Consul-Index")) {
        case .reset(let from, let to):
            push(.notice(Notice(.warning, "consul: the index went backwards (\(from) → \(to)): a restored or new cluster; querying \(service) afresh")))
        default: break
        }
        for s in decoded.skipped where reported.insert(s).inserted {
            push(.notice(Notice(.warning, "consul: \(service): skipped \(s)")))
        }
        let filtered = answer.headers.first(name: "X-Consul-Results-Filtered-By-ACLs")?.lowercased() == "true"
        let changed = last != decoded.endpoints || filtered != filteredByACL
        filteredByACL = filtered
        guard changed || wasDown else { return }  // a return is not a change
        if changed { changes += 1 }
        last = decoded.endpoints
        if decoded.endpoints.isEmpty {
            if !emptyReported {
                emptyReported = true
                push(.notice(Notice(.warning, "consul: \(emptyText); watching for instances")))
            }
        } else {
            emptyReported = false
        }
        push(.resolverUpdated(ResolverResult(endpoints: decoded.endpoints, info: status(decoded))))
    }

    private var scope: String {
        var s = "'\(service)'"
        if let t = query.tag { s += " with tag '\(t)'" }
        if let dc = query.datacenter { s += " in datacenter \(dc)" }
        return s
    }

    private var emptyText: String {
        if filteredByACL {
            return "no instances of \(scope) visible: Consul filtered them out by ACL (X-Consul-Results-Filtered-By-ACLs) — the token (\(config.tokenSource)) needs service:read on \"\(service)\" and node:read on their nodes"
        }
        return "no instances of \(scope) registered" + (query.passingOnly ? " and passing" : "")
    }

    private func fail(_ error: ConsulError, retryInMs: Int64) {
        var message: String
        switch error {
        case .status(403, let m):
            message = "consul: forbidden (403): \(m.isEmpty ? "Permission denied" : m) — " + Self.aclAdvice(m, service: service, tokenSource: config.tokenSource)
        case .status(let code, let m) where code >= 500:
            message = "consul \(config.base): \(code) \(m)" + (m.localizedCaseInsensitiveContains("leader") ? " (the servers have no leader)" : "")
        case .status(429, _):
            message = "consul \(config.base): rate limited (429)"
        case .status(let code, let m):
            message = "consul \(config.base): HTTP \(code) for \(service)'s health: \(m)"
        case .transport(let m):
            message = "consul: \(m)"
        }
        message += "; keeping the last instances, retry in \(formatDuration(retryInMs))"
        push(.resolverFailed(ResolverFailure(message: message, info: status(nil, retryInMs: retryInMs))))
    }

    /// What a 403 means and which permission to grant (Consul ≥ 1.14 names it: `lacks
    /// permission 'service:read' on "web"`; older agents say only "Permission denied").
    static func aclAdvice(_ message: String, service: String, tokenSource: String) -> String {
        if message.localizedCaseInsensitiveContains("ACL not found") || message.localizedCaseInsensitiveContains("token not found") {
            return "Consul does not know the token from \(tokenSource): check it with `consul acl token read -self`"
        }
        if let r = message.range(of: "lacks permission '"), let end = message[r.upperBound...].firstIndex(of: "'") {
            let perm = String(message[r.upperBound..<end])
            let kind = perm.split(separator: ":").first.map(String.init)
            let rule = kind == "node" ? "node_prefix \"\" { policy = \"read\" }" : "service \"\(service)\" { policy = \"read\" }"
            return "the token from \(tokenSource) lacks \(perm): add `\(rule)` to its policy"
        }
        return "the token from \(tokenSource) needs service:read on \"\(service)\" and node:read: a policy with `service \"\(service)\" { policy = \"read\" }` and `node_prefix \"\" { policy = \"read\" }`"
    }

    // MARK: - what the user sees

    private func status(_ decoded: ConsulHealth.Decoded?, retryInMs: Int64? = nil) -> [String: String] {
        var info: [String: String] = ["agent": config.base, "auth": config.tokenSource, "service": service,
                                      "index": "\(index.index)", "queries": "\(queries)", "changes": "\(changes)"]
        if let t = query.tag { info["tag"] = t }
        if let dc = query.datacenter { info["dc"] = dc }
        if query.passingOnly { info["passing"] = "only" }
        if index.resets > 0 { info["index resets"] = "\(index.resets)" }
        if filteredByACL { info["acl"] = "some instances hidden by ACL (X-Consul-Results-Filtered-By-ACLs)" }
        var up = "up, blocking (wait \(formatDuration(query.waitMs)))"
        if let d = decoded {
            up += ", \(d.instances) instance\(d.instances == 1 ? "" : "s")"
            if d.warning + d.critical > 0 { up += " (\(d.passing) passing, \(d.warning) warning, \(d.critical) critical)" }
            if d.endpoints.isEmpty { up += ": " + emptyText }
        }
        info["watch"] = loop.watchStatus(retryInMs: retryInMs, up: up)
        return info
    }
}
