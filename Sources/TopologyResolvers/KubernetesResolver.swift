import Foundation
import NIOCore
import TopologyCore

/// `kubernetes:` targets: list the Service's EndpointSlices, then watch them, forever.
///
/// Where other resolvers go wrong, this one does not: it keeps *every* slice by name and
/// publishes their union (a Service over 100 endpoints has several slices); an empty union is
/// published (scale to zero is real); conditions follow the API's nil semantics; a watch that
/// ends is resumed from the last resourceVersion, 410 Gone relists, and any other failure is
/// retried with jittered backoff (1 s … 30 s) while the last endpoints are kept and the
/// dashboard says "watch down since …". Clusters without discovery.k8s.io/v1 get core/v1
/// Endpoints instead.
///
/// One task runs the loop; its state is confined to that task.
public final class KubernetesResolver: EndpointResolver, @unchecked Sendable {
    public let name = "kubernetes"
    public let namespace: String
    public let service: String
    public let port: KubePort
    public let config: KubeAPIConfig
    /// Called once, with the Role and RoleBinding to apply, the first time the API answers 403.
    public var onForbidden: (@Sendable (String) -> Void)?
    /// `timeoutSeconds` for each watch: 5–10 minutes, jittered, as client-go's reflector does.
    public var watchTimeoutSeconds: ClosedRange<Int> = 300...600

    private let client: KubeClient
    /// Lifecycle, relist, backoff (1 s doubling to 30 s, reset whenever a watch opens, so a
    /// failure after hours of health starts again at 1 s) and "down since".
    private let loop = WatchLoop(maxBackoffMs: 30_000)

    // Task-confined state.
    private var slices: SliceSet
    private var resourceVersion: String?
    private var useCoreEndpoints = false
    private var serviceMissing: String?
    private var forbiddenReported = false
    public private(set) var lists = 0
    public private(set) var watches = 0

    public init(namespace: String, service: String, port: String, config: KubeAPIConfig) throws(KubeConfigError) {
        self.namespace = namespace
        self.service = service
        self.port = KubePort(port)
        self.slices = SliceSet(port: self.port)
        self.config = config
        self.client = try KubeClient(config)
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        client.open()
        loop.start(sink) { [self] in await run() }
    }

    /// A watch is push-based: a disconnect says nothing new about the Service. `r` relists.
    public func requestResolution(_ request: ResolutionRequest) {
        guard request == .user else { return }
        loop.requestRelist()
    }
    public func stop() {
        let client = self.client
        loop.stop { await client.shutdown() }
    }

    private func push(_ e: Event) { loop.push(e) }

    // MARK: - the loop

    private var base: String {
        useCoreEndpoints ? "/api/v1/namespaces/\(namespace)/endpoints" : "/apis/discovery.k8s.io/v1/namespaces/\(namespace)/endpointslices"
    }
    private var selector: String {
        useCoreEndpoints ? "fieldSelector=metadata.name%3D\(service)" : "labelSelector=kubernetes.io%2Fservice-name%3D\(service)"
    }
    private var resourceText: String { useCoreEndpoints ? "endpoints" : "endpointslices" }
    private var groupText: String { useCoreEndpoints ? "\"\" (core)" : "discovery.k8s.io" }

    /// When the last 410 came: another within 5 s waits like any failure (a server that answers
    /// every watch with 410 must not spin the loop).
    private var lastGone: Date?

    func run() async {
        var needList = true
        var retriedAuth = false
        while !Task.isCancelled {
            do {
                if needList || loop.takeRelistRequest() {
                    try await list()
                    needList = false
                }
                let started = Date()
                let events = try await watchOnce()
                retriedAuth = false
                // Ended by the server (its timeoutSeconds): resume from the last resourceVersion
                // at once — unless it ended at once with nothing, which is a failure in disguise.
                if events == 0 && Date().timeIntervalSince(started) < 1 {
                    try await Task.sleep(for: .milliseconds(loop.nextDelay()))
                }
            } catch is CancellationError {
                if Task.isCancelled { return }
                continue  // the watch was cancelled for a relist (`r`)
            } catch let error as KubeAPIError {
                if Task.isCancelled { return }
                switch error.code {
                case 410 where lastGone.map({ Date().timeIntervalSince($0) > 5 }) ?? true:
                    // The resourceVersion is too old (compacted): list again, at once.
                    lastGone = Date()
                    needList = true
                    continue
                case 410:
                    needList = true
                case 401 where !retriedAuth:
                    // A rotated token: read it again and retry once at once.
                    _ = client.token(force: true)
                    retriedAuth = true
                    continue
                case 404 where !useCoreEndpoints && needList:
                    if await discoveryAbsent() {
                        useCoreEndpoints = true
                        continue
                    }
                default:
                    break
                }
                if error.code == 401 { _ = client.token(force: true) }
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

    /// Lists every page, replaces the slice set, publishes.
    private func list() async throws(KubeAPIError) {
        var all: [EndpointSlice] = []
        var cont: String?
        var rv: String?
        repeat {
            var path = "\(base)?\(selector)&limit=500"
            if let c = cont { path += "&continue=\(c.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? c)" }
            let data = try await client.get(path)
            do {
                if useCoreEndpoints {
                    let l = try JSONDecoder().decode(CoreEndpointsList.self, from: data)
                    all += l.items.flatMap(\.asSlices)
                    rv = l.metadata.resourceVersion
                    cont = l.metadata.continue
                } else {
                    let l = try JSONDecoder().decode(EndpointSliceList.self, from: data)
                    all += l.items
                    rv = l.metadata.resourceVersion
                    cont = l.metadata.continue
                }
            } catch {
                throw .malformed("the \(resourceText) list does not decode: \(error)")
            }
            if cont?.isEmpty == true { cont = nil }
        } while cont != nil
        lists += 1
        slices = SliceSet(port: port, all)
        resourceVersion = rv
        serviceMissing = nil
        if all.isEmpty { serviceMissing = await missingService() }
        loop.listed()
        publish()
    }

    /// One watch from the last resourceVersion; returns how many events it carried.
    private func watchOnce() async throws -> Int {
        let timeout = Int.random(in: watchTimeoutSeconds)
        var path = "\(base)?\(selector)&watch=true&allowWatchBookmarks=true&timeoutSeconds=\(timeout)"
        if let rv = resourceVersion { path += "&resourceVersion=\(rv)" }
        let deadline = NIODeadline.now() + .seconds(Int64(timeout + 30))
        let core = useCoreEndpoints
        let sub = Task<Int, Error> { [self] in
            var count = 0
            try await client.watch(path, deadline: deadline, onOpen: { [self] in
                watches += 1
                if loop.up() { publish() }
            }) { [self] line in
                count += 1
                try apply(try KubeWatchEvent.decode(line, coreEndpoints: core))
            }
            return count
        }
        loop.watching { sub.cancel() }
        defer { loop.watching(cancel: nil) }
        return try await withTaskCancellationHandler {
            try await sub.value
        } onCancel: {
            sub.cancel()
        }
    }

    private func apply(_ e: KubeWatchEvent) throws {
        if let rv = e.resourceVersion, !rv.isEmpty { resourceVersion = rv }
        switch e.type {
        case .bookmark:
            return  // only advances the resourceVersion
        case .error:
            throw KubeAPIError.status(code: e.status?.code ?? 500, e.status, path: "watch")
        case .added, .modified:
            if useCoreEndpoints { slices.replaceAll(prefix: e.name ?? "", with: e.slices) } else { for s in e.slices { slices.put(s) } }
        case .deleted:
            if useCoreEndpoints { slices.replaceAll(prefix: e.name ?? "", with: []) } else { slices.remove(named: e.name ?? "") }
        }
        serviceMissing = nil
        publish()
    }

    /// `GET /apis/discovery.k8s.io/v1` answers 404 on clusters older than 1.21.
    private func discoveryAbsent() async -> Bool {
        do {
            _ = try await client.get("/apis/discovery.k8s.io/v1", timeout: .seconds(10))
            return false
        } catch {
            return error.code == 404
        }
    }

    /// With no slices at all: is the Service there? (A 403 here says nothing: not every Role
    /// grants `get services`.)
    private func missingService() async -> String? {
        do {
            _ = try await client.get("/api/v1/namespaces/\(namespace)/services/\(service)", timeout: .seconds(10))
            return nil
        } catch {
            guard error.code == 404 else { return nil }
            return "service \"\(service)\" not found in namespace \"\(namespace)\" (kubectl get services -n \(namespace)); watching for it"
        }
    }

    // MARK: - what the user sees

    private func publish() {
        let union = slices.union()
        if let missing = serviceMissing {
            push(.resolverFailed(ResolverFailure(message: missing, info: status())))
        } else if let problem = union.portProblem, union.endpoints.isEmpty {
            push(.resolverFailed(ResolverFailure(message: "\(service).\(namespace): \(problem)", info: status())))
        } else {
            push(.resolverUpdated(ResolverResult(endpoints: union.endpoints, info: status())))
        }
    }

    private func fail(_ error: KubeAPIError, retryInMs: Int64) {
        var message: String
        switch error.code {
        case 403:
            message = forbiddenMessage(error)
            if !forbiddenReported, let hook = onForbidden {
                forbiddenReported = true
                hook(KubeRBAC.yaml(namespace: namespace, serviceAccount: serviceAccount(error) ?? "default"))
            }
        case 401:
            message = "unauthorized (401): the API refused the credentials of \(config.source)" +
                (config.token == .none ? "" : "; the token may have expired — renew it (kubectl config view; a new service-account token)")
        case 404:
            message = "\(config.server) has no \(resourceText) API for namespace \(namespace) (404): \(error)"
        default:
            message = "Kubernetes API \(config.server): \(error)"
        }
        message += "; retry in \(formatDuration(retryInMs))"
        push(.resolverFailed(ResolverFailure(message: message, info: status(retryInMs: retryInMs))))
    }

    private func serviceAccount(_ error: KubeAPIError) -> String? {
        guard case .status(_, let s, _) = error, let m = s?.message,
              let r = m.range(of: "system:serviceaccount:") else { return nil }
        let rest = m[r.upperBound...].prefix { $0 != "\"" }
        let parts = rest.split(separator: ":")
        return parts.count == 2 ? String(parts[1]) : nil
    }

    /// Which verb on which resource was refused, as whom, and what to apply.
    private func forbiddenMessage(_ error: KubeAPIError) -> String {
        var who = "this identity"
        var verb = "list"
        if case .status(_, let s, let path) = error {
            if path.contains("watch=true") { verb = "watch" }
            if let m = s?.message {
                if let r = m.range(of: "User \""), let end = m[r.upperBound...].firstIndex(of: "\"") { who = String(m[r.upperBound..<end]) }
                if let r = m.range(of: "cannot "), let v = m[r.upperBound...].split(separator: " ").first { verb = String(v) }
            }
        }
        let sa = serviceAccount(error) ?? "default"
        return "forbidden (403): \(who) may not \(verb) \(resourceText) in API group \(groupText) in namespace \(namespace); " +
            "grant get, list, watch with `grpctop kube-rbac -n \(namespace) --service-account \(sa) | kubectl apply -f -` (deploy/rbac.yaml)"
    }

    private func status(retryInMs: Int64? = nil) -> [String: String] {
        var info: [String: String] = ["api": config.server, "auth": config.source,
                                      "source": useCoreEndpoints ? "core/v1 Endpoints (no discovery.k8s.io/v1)" : "EndpointSlices",
                                      "slices": "\(slices.count)", "lists": "\(lists)", "watches": "\(watches)"]
        let n = slices.count
        info["watch"] = loop.watchStatus(retryInMs: retryInMs, up: "up, \(n) slice\(n == 1 ? "" : "s")"
            + (useCoreEndpoints ? " (core/v1 Endpoints)" : "") + (resourceVersion.map { ", rv \($0)" } ?? ""))
        return info
    }
}

/// The least the resolver needs: get, list and watch EndpointSlices (and core Endpoints for old
/// clusters), plus get on Services to tell a missing Service from one with no endpoints.
public enum KubeRBAC {
    public static func yaml(namespace: String, serviceAccount: String) -> String {
        """
        # grpctop reads the endpoints of Services in namespace \(namespace).
        apiVersion: rbac.authorization.k8s.io/v1
        kind: Role
        metadata:
          name: grpctop-endpoints-reader
          namespace: \(namespace)
        rules:
        - apiGroups: ["discovery.k8s.io"]
          resources: ["endpointslices"]
          verbs: ["get", "list", "watch"]
        - apiGroups: [""]
          resources: ["endpoints"]
          verbs: ["get", "list", "watch"]
        - apiGroups: [""]
          resources: ["services"]
          verbs: ["get"]
        ---
        apiVersion: rbac.authorization.k8s.io/v1
        kind: RoleBinding
        metadata:
          name: grpctop-endpoints-reader
          namespace: \(namespace)
        subjects:
        - kind: ServiceAccount
          name: \(serviceAccount)
          namespace: \(namespace)
        roleRef:
          apiGroup: rbac.authorization.k8s.io
          kind: Role
          name: grpctop-endpoints-reader

        """
    }
}
