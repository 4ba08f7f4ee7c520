import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A stand-in for kube-apiserver, which cannot be installed here: it speaks the parts of the real
/// protocol a resolver uses, byte for byte as the API reference shapes them.
///
/// - `GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=kubernetes.io/service-name=SVC`
///   (a List with `metadata.resourceVersion`, paginated with `limit`/`continue`), and the same
///   with `watch=true&resourceVersion=RV`: a chunked stream of `{"type":…,"object":…}` lines
///   (ADDED/MODIFIED/DELETED, BOOKMARK with `allowWatchBookmarks`, ERROR with a 410 Status when
///   RV is older than the last compaction), ended after `timeoutSeconds`.
/// - core/v1 Endpoints (`/api/v1/namespaces/NS/endpoints?fieldSelector=metadata.name=SVC`) for
///   the fallback when discovery.k8s.io/v1 is switched off (then it answers `404 page not found`
///   as an old cluster does), `GET /api/v1/namespaces/NS/services/SVC`, `GET /apis/discovery.k8s.io/v1`.
/// - Auth: a bearer token (rotatable; 401 Status otherwise) or TLS client certificates from a
///   test CA; `forbid` answers 403 with the apiserver's exact message.
/// - Faults: cut every watch mid-stream, end watches cleanly, compact history, go down (close the
///   listener and every connection) and come back on the same port.
public final class KubeAPIServer: @unchecked Sendable {
    public struct TLS: Sendable {
        public var certPath: String
        public var keyPath: String
        /// When set, clients must present a certificate signed by this CA (kubeconfig client certs).
        public var clientCAPath: String?
        public init(certPath: String, keyPath: String, clientCAPath: String? = nil) {
            self.certPath = certPath
            self.keyPath = keyPath
            self.clientCAPath = clientCAPath
        }
    }

    /// One endpoint of a slice, as the API shows it; nil conditions are omitted from the JSON.
    public struct SliceEndpoint: Sendable {
        public var address: String
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        public var pod: String?
        public var node: String?
        public var zone: String?
        public var hostname: String?
        public init(_ address: String, ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil,
                    pod: String? = nil, node: String? = nil, zone: String? = nil, hostname: String? = nil) {
            self.address = address
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
            self.pod = pod
            self.node = node
            self.zone = zone
            self.hostname = hostname
        }
    }

    struct Slice {
        var namespace: String
        var service: String
        var name: String
        var uid: String
        var resourceVersion: Int
        var endpoints: [SliceEndpoint]
        var ports: [(String, Int)]
        /// The object as a list item, serialised once (an apiserver serves lists from its cache).
        var listJSON = Data()
    }

    struct Change {
        var rv: Int
        var namespace: String
        var service: String
        var type: String
        var object: [String: Any]
    }

    final class Watcher {
        let channel: Channel
        let namespace: String
        let service: String
        let core: Bool
        let bookmarks: Bool
        init(channel: Channel, namespace: String, service: String, core: Bool, bookmarks: Bool) {
            self.channel = channel
            self.namespace = namespace
            self.service = service
            self.core = core
            self.bookmarks = bookmarks
        }
    }

    private let group: MultiThreadedEventLoopGroup
    private let lock = NIOLock()
    private let tls: TLS?
    private let sslContext: NIOSSLContext?
    private var serverChannel: Channel?
    private var connections: [ObjectIdentifier: Channel] = [:]
    private var slices: [String: Slice] = [:]   // "ns/name"
    private var services: Set<String> = []      // "ns/name"
    private var history: [Change] = []
    private var rv = 1000
    private var compactedBelow = 0
    private var watchers: [ObjectIdentifier: Watcher] = [:]
    private var uidCounter = 0

    /// The bearer token requests must carry (nil: none needed).
    public var token: String? {
        get { lock.withLock { _token } }
        set { lock.withLock { _token = newValue } }
    }
    private var _token: String?
    /// Answer 403 to list and watch, as an apiserver does without RBAC.
    public var forbiddenUser: String? {
        get { lock.withLock { _forbidden } }
        set { lock.withLock { _forbidden = newValue } }
    }
    private var _forbidden: String?
    /// An old cluster: discovery.k8s.io/v1 answers 404 and only core/v1 Endpoints exist.
    public var discoveryAPI: Bool {
        get { lock.withLock { _discovery } }
        set { lock.withLock { _discovery = newValue } }
    }
    private var _discovery = true
    /// Answer a watch from a compacted resourceVersion with HTTP 410 (older apiservers) instead
    /// of 200 and an ERROR event carrying the 410 Status (current ones).
    public var goneAsHTTPStatus: Bool {
        get { lock.withLock { _goneAsHTTP } }
        set { lock.withLock { _goneAsHTTP = newValue } }
    }
    private var _goneAsHTTP = false
    /// Page size cap for lists (the client asks with `limit`).
    public var pageSize = 500
    /// Every request line (method, path and query) and its Authorization header, in order.
    public var requests: [(line: String, authorization: String?)] { lock.withLock { _requests } }
    private var _requests: [(line: String, authorization: String?)] = []

    public private(set) var port = 0
    public var url: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(port)" }

    public init(tls: TLS? = nil) throws {
        self.tls = tls
        if let tls {
            var c = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(tls.certPath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: tls.keyPath, format: .pem)))
            if let ca = tls.clientCAPath {
                c.certificateVerification = .noHostnameVerification
                c.trustRoots = .file(ca)
            }
            c.applicationProtocols = ["http/1.1"]
            sslContext = try NIOSSLContext(configuration: c)
        } else {
            sslContext = nil
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        try bind(port: 0)
    }

    private func bind(port wanted: Int) throws {
        let ssl = sslContext
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let ssl { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: ssl)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(server: self))
                    lock.withLock { connections[ObjectIdentifier(channel)] = channel }
                    channel.closeFuture.whenComplete { [self] _ in
                        lock.withLock {
                            connections[ObjectIdentifier(channel)] = nil
                            watchers[ObjectIdentifier(channel)] = nil
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: wanted).wait()
        serverChannel = channel
        port = channel.localAddress?.port ?? 0
    }

    /// Down: the listener and every connection closed (clients see resets and refusals).
    public func goDown() {
        let (server, conns) = lock.withLock { () -> (Channel?, [Channel]) in
            let s = serverChannel
            serverChannel = nil
            return (s, Array(connections.values))
        }
        try? server?.close().wait()
        for c in conns { try? c.close().wait() }
    }

    /// Back on the same port.
    public func comeBack() throws {
        var attempts = 0
        while true {
            do {
                try bind(port: port)
                return
            } catch {
                attempts += 1
                if attempts > 50 { throw error }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    public func shutdown() {
        goDown()
        try? group.syncShutdownGracefully()
    }

    // MARK: - content

    /// Creates or replaces a slice (ADDED or MODIFIED to watchers).
    public func putSlice(namespace: String, service: String, name: String, endpoints: [SliceEndpoint], ports: [(String, Int)] = [("grpc", 50051)]) {
        let (change, targets) = lock.withLock { () -> (Change, [Watcher]) in
            services.insert("\(namespace)/\(service)")
            rv += 1
            let key = "\(namespace)/\(name)"
            let existed = slices[key] != nil
            uidCounter += 1
            let uid = slices[key]?.uid ?? String(format: "5b4e1c2a-0000-4000-8000-%012d", uidCounter)
            var s = Slice(namespace: namespace, service: service, name: name, uid: uid, resourceVersion: rv, endpoints: endpoints, ports: ports)
            s.listJSON = (try? JSONText.encode(sliceJSON(s, inList: true))) ?? Data()
            slices[key] = s
            let c = Change(rv: rv, namespace: namespace, service: service, type: existed ? "MODIFIED" : "ADDED", object: sliceJSON(s, inList: false))
            history.append(c)
            return (c, watchers.values.filter { $0.namespace == namespace && $0.service == service })
        }
        deliver(change, to: targets)
    }

    public func deleteSlice(namespace: String, name: String) {
        let result = lock.withLock { () -> (Change, [Watcher])? in
            guard var s = slices.removeValue(forKey: "\(namespace)/\(name)") else { return nil }
            rv += 1
            s.resourceVersion = rv
            let c = Change(rv: rv, namespace: namespace, service: s.service, type: "DELETED", object: sliceJSON(s, inList: false))
            history.append(c)
            return (c, watchers.values.filter { $0.namespace == namespace && $0.service == s.service })
        }
        if let (c, t) = result { deliver(c, to: t) }
    }

    /// etcd compaction: watches from before now get 410 Gone.
    public func compact() {
        lock.withLock {
            compactedBelow = rv + 1
            history.removeAll()
        }
    }

    /// Closes every watch connection abruptly (mid-stream, no final chunk).
    public func cutWatches() {
        let chans = lock.withLock { watchers.values.map(\.channel) }
        for c in chans { c.close(promise: nil) }
    }

    /// Ends every watch cleanly (the final chunk), as the server does at timeoutSeconds.
    public func endWatches() {
        let ws = lock.withLock { () -> [Watcher] in
            let w = Array(watchers.values)
            watchers.removeAll()
            return w
        }
        for w in ws { w.channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil) }
    }

    /// Sends a BOOKMARK with the current resourceVersion to every watch that allows them.
    public func sendBookmarks() {
        let (ws, current) = lock.withLock { (Array(watchers.values), rv) }
        for w in ws where w.bookmarks {
            let obj: [String: Any] = ["kind": w.core ? "Endpoints" : "EndpointSlice", "apiVersion": w.core ? "v1" : "discovery.k8s.io/v1",
                                      "metadata": ["resourceVersion": "\(current)"]]
            write(["type": "BOOKMARK", "object": obj], to: w.channel)
        }
    }

    public var watcherCount: Int { lock.withLock { watchers.count } }

    // MARK: - JSON

    private func sliceJSON(_ s: Slice, inList: Bool) -> [String: Any] {
        var eps: [[String: Any]] = []
        for e in s.endpoints {
            var cond: [String: Any] = [:]
            if let r = e.ready { cond["ready"] = r }
            if let r = e.serving { cond["serving"] = r }
            if let r = e.terminating { cond["terminating"] = r }
            var o: [String: Any] = ["addresses": [e.address], "conditions": cond]
            if let p = e.pod { o["targetRef"] = ["kind": "Pod", "namespace": s.namespace, "name": p, "uid": "pod-\(p)"] }
            if let n = e.node { o["nodeName"] = n }
            if let z = e.zone { o["zone"] = z }
            if let h = e.hostname { o["hostname"] = h }
            eps.append(o)
        }
        var obj: [String: Any] = [
            "metadata": [
                "name": s.name, "generateName": "\(s.service)-", "namespace": s.namespace, "uid": s.uid,
                "resourceVersion": "\(s.resourceVersion)", "generation": 1,
                "creationTimestamp": "2026-11-23T10:00:00Z",
                "labels": ["kubernetes.io/service-name": s.service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"],
                "ownerReferences": [["apiVersion": "v1", "kind": "Service", "name": s.service, "uid": "svc-\(s.service)", "controller": true, "blockOwnerDeletion": true]],
            ] as [String: Any],
            "addressType": s.endpoints.first.map { $0.address.contains(":") ? "IPv6" : "IPv4" } ?? "IPv4",
            "ports": s.ports.map { ["name": $0.0, "protocol": "TCP", "port": $0.1] as [String: Any] },
        ]
        obj["endpoints"] = eps.isEmpty ? NSNull() : eps
        if !inList {
            obj["kind"] = "EndpointSlice"
            obj["apiVersion"] = "discovery.k8s.io/v1"
        }
        return obj
    }

    /// core/v1 Endpoints of a Service: ready and not-ready addresses per port set.
    private func endpointsJSON(namespace: String, service: String, inList: Bool) -> [String: Any]? {
        let mine = slices.values.filter { $0.namespace == namespace && $0.service == service }.sorted { $0.name < $1.name }
        guard services.contains("\(namespace)/\(service)") else { return nil }
        var subsets: [[String: Any]] = []
        for s in mine where !s.endpoints.isEmpty {
            func addr(_ e: SliceEndpoint) -> [String: Any] {
                var a: [String: Any] = ["ip": e.address]
                if let p = e.pod { a["targetRef"] = ["kind": "Pod", "namespace": namespace, "name": p] }
                if let n = e.node { a["nodeName"] = n }
                return a
            }
            let ready = s.endpoints.filter { $0.ready ?? true }.map(addr)
            let notReady = s.endpoints.filter { !($0.ready ?? true) }.map(addr)
            var sub: [String: Any] = ["ports": s.ports.map { ["name": $0.0, "port": $0.1, "protocol": "TCP"] as [String: Any] }]
            if !ready.isEmpty { sub["addresses"] = ready }
            if !notReady.isEmpty { sub["notReadyAddresses"] = notReady }
            subsets.append(sub)
        }
        var obj: [String: Any] = ["metadata": ["name": service, "namespace": namespace, "resourceVersion": "\(rv)"] as [String: Any]]
        if !subsets.isEmpty { obj["subsets"] = subsets }
        if !inList {
            obj["kind"] = "Endpoints"
            obj["apiVersion"] = "v1"
        }
        return obj
    }

    static func status(_ code: Int, reason: String, message: String, details: [String: Any]? = nil) -> [String: Any] {
        var s: [String: Any] = ["kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure",
                                "message": message, "reason": reason, "code": code]
        if let details { s["details"] = details }
        return s
    }

    // MARK: - serving

    struct Request {
        var path: String
        var query: [String: String]
        var authorization: String?
    }

    enum Reply {
        case json(HTTPResponseStatus, [String: Any])
        case text(HTTPResponseStatus, String)
        case raw(HTTPResponseStatus, Data)
        case watch(namespace: String, service: String, core: Bool, fromRV: Int?, bookmarks: Bool, timeoutSeconds: Int)
    }

    func route(_ r: Request, line: String) -> Reply {
        lock.withLock { _requests.append((line, r.authorization)) }
        if tls?.clientCAPath == nil, let t = token, r.authorization != "Bearer \(t)" {
            return .json(.unauthorized, Self.status(401, reason: "Unauthorized", message: "Unauthorized"))
        }
        let parts = r.path.split(separator: "/").map(String.init)
        // /apis/discovery.k8s.io/v1
        if parts == ["apis", "discovery.k8s.io", "v1"] {
            guard discoveryAPI else { return .text(.notFound, "404 page not found\n") }
            return .json(.ok, ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "discovery.k8s.io/v1",
                               "resources": [["name": "endpointslices", "namespaced": true, "kind": "EndpointSlice",
                                              "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]]]])
        }
        // /api/v1/namespaces/NS/services/SVC
        if parts.count == 6, parts[0] == "api", parts[1] == "v1", parts[2] == "namespaces", parts[4] == "services" {
            let exists = lock.withLock { services.contains("\(parts[3])/\(parts[5])") }
            if !exists {
                return .json(.notFound, Self.status(404, reason: "NotFound", message: "services \"\(parts[5])\" not found", details: ["name": parts[5], "kind": "services"]))
            }
            return .json(.ok, ["kind": "Service", "apiVersion": "v1", "metadata": ["name": parts[5], "namespace": parts[3]], "spec": ["clusterIP": "None"]])
        }
        let core: Bool
        let ns: String
        if parts.count == 6, parts[0] == "apis", parts[1] == "discovery.k8s.io", parts[2] == "v1", parts[3] == "namespaces", parts[5] == "endpointslices" {
            guard discoveryAPI else { return .text(.notFound, "404 page not found\n") }
            core = false
            ns = parts[4]
        } else if parts.count == 5, parts[0] == "api", parts[1] == "v1", parts[2] == "namespaces", parts[4] == "endpoints" {
            core = true
            ns = parts[3]
        } else {
            return .text(.notFound, "404 page not found\n")
        }
        let watch = r.query["watch"] == "true" || r.query["watch"] == "1"
        if let user = forbiddenUser {
            let verb = watch ? "watch" : "list"
            let (res, group) = core ? ("endpoints", "\"\"") : ("endpointslices", "\"discovery.k8s.io\"")
            return .json(.forbidden, Self.status(403, reason: "Forbidden",
                message: "\(core ? "endpoints" : "endpointslices.discovery.k8s.io") is forbidden: User \"\(user)\" cannot \(verb) resource \"\(res)\" in API group \(group) in the namespace \"\(ns)\"",
                details: ["group": core ? "" : "discovery.k8s.io", "kind": res]))
        }
        let service: String
        if core {
            guard let sel = r.query["fieldSelector"], sel.hasPrefix("metadata.name=") else {
                return .json(.badRequest, Self.status(400, reason: "BadRequest", message: "the stand-in needs fieldSelector=metadata.name=SVC"))
            }
            service = String(sel.dropFirst("metadata.name=".count))
        } else {
            guard let sel = r.query["labelSelector"], sel.hasPrefix("kubernetes.io/service-name=") else {
                return .json(.badRequest, Self.status(400, reason: "BadRequest", message: "the stand-in needs labelSelector=kubernetes.io/service-name=SVC"))
            }
            service = String(sel.dropFirst("kubernetes.io/service-name=".count))
        }
        if watch {
            if let from = r.query["resourceVersion"].flatMap(Int.init), from > 0, goneAsHTTPStatus,
               lock.withLock({ from < compactedBelow }) {
                return .json(.gone, Self.status(410, reason: "Expired", message: "too old resource version: \(from) (\(lock.withLock { rv }))"))
            }
            return .watch(namespace: ns, service: service, core: core, fromRV: r.query["resourceVersion"].flatMap(Int.init),
                          bookmarks: r.query["allowWatchBookmarks"] == "true", timeoutSeconds: r.query["timeoutSeconds"].flatMap(Int.init) ?? 1800)
        }
        return lock.withLock {
            if core {
                let items = endpointsJSON(namespace: ns, service: service, inList: true).map { [$0] } ?? []
                return .json(.ok, ["kind": "EndpointsList", "apiVersion": "v1", "metadata": ["resourceVersion": "\(rv)"], "items": items])
            }
            let all = slices.values.filter { $0.namespace == ns && $0.service == service }.sorted { $0.name < $1.name }
            let limit = min(Int(r.query["limit"] ?? "") ?? Int.max, pageSize)
            let start = Int(r.query["continue"] ?? "") ?? 0
            let page = Array(all.dropFirst(start).prefix(limit))
            var meta: [String: Any] = ["resourceVersion": "\(rv)"]
            if start + page.count < all.count { meta["continue"] = "\(start + page.count)" }
            var body = Data(#"{"apiVersion":"discovery.k8s.io/v1","items":["#.utf8)
            for (i, s) in page.enumerated() {
                if i > 0 { body.append(UInt8(ascii: ",")) }
                body.append(s.listJSON)
            }
            body.append(Data(#"],"kind":"EndpointSliceList","metadata":"#.utf8))
            body.append((try? JSONText.encode(meta)) ?? Data("{}".utf8))
            body.append(UInt8(ascii: "}"))
            return .raw(.ok, body)
        }
    }

    /// Registers a watch and sends what happened since `fromRV` (or a 410 ERROR event).
    func startWatch(_ channel: Channel, namespace: String, service: String, core: Bool, fromRV: Int?, bookmarks: Bool, timeoutSeconds: Int) {
        let (initial, gone) = lock.withLock { () -> ([[String: Any]], [String: Any]?) in
            if let from = fromRV, from > 0, from < compactedBelow {
                return ([], Self.status(410, reason: "Expired", message: "too old resource version: \(from) (\(rv))"))
            }
            let w = Watcher(channel: channel, namespace: namespace, service: service, core: core, bookmarks: bookmarks)
            watchers[ObjectIdentifier(channel)] = w
            var events: [[String: Any]] = []
            if core {
                // core/v1 Endpoints is one object: resend it when anything changed since fromRV.
                if history.contains(where: { $0.rv > (fromRV ?? 0) && $0.namespace == namespace && $0.service == service }),
                   let obj = endpointsJSON(namespace: namespace, service: service, inList: false) {
                    events.append(["type": "MODIFIED", "object": obj])
                }
            } else if let from = fromRV {
                for c in history where c.rv > from && c.namespace == namespace && c.service == service {
                    events.append(["type": c.type, "object": c.object])
                }
            } else {
                for s in slices.values where s.namespace == namespace && s.service == service {
                    events.append(["type": "ADDED", "object": sliceJSON(s, inList: false)])
                }
            }
            return (events, nil)
        }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Transfer-Encoding", value: "chunked")
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if let gone {
            write(["type": "ERROR", "object": gone], to: channel)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            return
        }
        for e in initial { write(e, to: channel) }
        channel.flush()
        channel.eventLoop.scheduleTask(in: .seconds(Int64(timeoutSeconds))) { [self] in
            let mine = lock.withLock { watchers.removeValue(forKey: ObjectIdentifier(channel)) != nil }
            if mine { channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil) }
        }
    }

    /// When the last watch event was handed to the network (DispatchTime nanoseconds).
    public var lastEventSentAt: UInt64 { lock.withLock { _lastEventSentAt } }
    private var _lastEventSentAt: UInt64 = 0

    private func deliver(_ c: Change, to targets: [Watcher]) {
        let line: Data? = targets.contains { !$0.core } ? try? JSONText.encode(["type": c.type, "object": c.object]) : nil
        lock.withLock { _lastEventSentAt = DispatchTime.now().uptimeNanoseconds }
        for w in targets {
            if w.core {
                let obj = lock.withLock { endpointsJSON(namespace: w.namespace, service: w.service, inList: false) }
                if let obj { write(["type": "MODIFIED", "object": obj], to: w.channel) }
            } else if var data = line {
                data.append(UInt8(ascii: "\n"))
                w.channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(w.channel.allocator.buffer(bytes: data))), promise: nil)
            }
        }
    }

    private func write(_ json: [String: Any], to channel: Channel) {
        guard var data = try? JSONText.encode(json) else { return }
        data.append(UInt8(ascii: "\n"))
        let buffer = channel.allocator.buffer(bytes: data)
        channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: KubeAPIServer
        var head: HTTPRequestHead?
        init(server: KubeAPIServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                head = nil
                let comps = URLComponents(string: h.uri)
                var query: [String: String] = [:]
                for item in comps?.queryItems ?? [] { query[item.name] = item.value ?? "" }
                let req = Request(path: comps?.path ?? h.uri, query: query, authorization: h.headers.first(name: "Authorization"))
                let channel = context.channel
                switch server.route(req, line: "\(h.method.rawValue) \(h.uri)") {
                case .json(let status, let obj):
                    let data = (try? JSONText.encode(obj)) ?? Data()
                    respond(context, status, "application/json", data)
                case .raw(let status, let data):
                    respond(context, status, "application/json", data)
                case .text(let status, let text):
                    respond(context, status, "text/plain; charset=utf-8", Data(text.utf8))
                case .watch(let ns, let svc, let core, let from, let bookmarks, let timeout):
                    server.startWatch(channel, namespace: ns, service: svc, core: core, fromRV: from, bookmarks: bookmarks, timeoutSeconds: timeout)
                }
            }
        }

        func respond(_ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ type: String, _ body: Data) {
            var head = HTTPResponseHead(version: .http1_1, status: status)
            head.headers.add(name: "Content-Type", value: type)
            head.headers.add(name: "Content-Length", value: "\(body.count)")
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}
