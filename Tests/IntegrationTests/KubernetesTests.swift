import Foundation
import KubeStandIn
import Testing

/// A throwaway CA with a server certificate for 127.0.0.1 and a client certificate, by openssl.
struct TestCA {
    let dir: String
    var caCert: String { dir + "/ca.crt" }
    var serverCert: String { dir + "/server.crt" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.crt" }
    var clientKey: String { dir + "/client.key" }

    init() throws {
        dir = tempDir()
        func openssl(_ args: [String]) throws {
            let d = dir
            let args = args.map { a in [".key", ".crt", ".csr", ".ext", ".srl"].contains { a.hasSuffix($0) } && !a.hasPrefix("/") ? d + "/" + a : a }
            guard try runTool("openssl", args) == 0 else { throw FleetError("openssl \(args.prefix(2).joined(separator: " ")) failed") }
        }
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=grpctop-test-ca",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n".write(toFile: dir + "/server.ext", atomically: true, encoding: .utf8)
        try "extendedKeyUsage=clientAuth\n".write(toFile: dir + "/client.ext", atomically: true, encoding: .utf8)
        for (name, subj) in [("server", "/CN=kube-apiserver"), ("client", "/O=system:masters/CN=grpctop-user")] {
            try openssl(["req"] + ec + ["-keyout", "\(name).key", "-out", "\(name).csr", "-subj", subj])
            try openssl(["x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-CAserial", "ca.srl",
                         "-out", "\(name).crt", "-days", "2", "-extfile", "\(name).ext"])
        }
    }
}

/// The kubernetes resolver against the stand-in API server, with `grpctop serve` pods on
/// 127.0.0.(2+i) sharing one port (pod IPs, one containerPort), all on loopback.
@Suite(.serialized)
struct KubernetesTests {
    static let ns = "shop"
    static let svc = "web"
    static let oldRev = "7d9f8c6b5"
    static let newRev = "5c48d7f9b"

    func pods(_ n: Int, from first: Int = 0, port: Int = 0) throws -> [Backend] {
        try podsOnLoopbackIPs(n, from: first, port: port)
    }

    func ip(_ b: Backend) -> String { String(b.address.split(separator: ":")[0]) }

    func endpoint(_ b: Backend, rev: String = oldRev, ready: Bool? = true, serving: Bool? = nil, terminating: Bool? = nil) -> KubeAPIServer.SliceEndpoint {
        .init(ip(b), ready: ready, serving: serving, terminating: terminating, pod: "web-\(rev)-\(b.name.split(separator: "-").last!)x0",
              node: "node-\(b.name.last!)", zone: "zone-a")
    }

    func endpointCount(_ s: [String: Any]) -> Int { ((s["resolver"] as? [String: Any])?["endpoints"] as? Int) ?? -1 }
    func resolverError(_ s: [String: Any]) -> String? { (s["resolver"] as? [String: Any])?["error"] as? String }
    func info(_ s: [String: Any]) -> [String: String] { (s["resolver"] as? [String: Any])?["info"] as? [String: String] ?? [:] }
    func ready(_ s: [String: Any]) -> Int { (s["subchannels"] as? [[String: Any]] ?? []).filter { $0["state"] as? String == "READY" }.count }
    func conditions(_ s: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for e in s["endpoints"] as? [[String: Any]] ?? [] where e["mark"] as? String != "removed" {
            out[e["pod"] as? String ?? "?"] = e["condition"] as? String
        }
        return out
    }

    func watch(_ api: KubeAPIServer, _ target: String = "kubernetes:///web.shop:grpc", _ extra: [String] = [], env: [String: String] = [:]) throws -> WatchRun {
        var args = [target, "--rps", "200", "--interval", "250ms", "--output", "json"] + extra
        if env.isEmpty && !extra.contains("--kubeconfig") { args += ["--kube-api", api.url] }
        return try WatchRun(args, env: env)
    }

    /// Three pods in one slice: three READY subchannels, the API's fields on each endpoint,
    /// round_robin fairness ≥ 0.95, and the list → watch requests the issue names.
    @Test func threePods() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let bs = try pods(3)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-abcde", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port), ("metrics", 9090)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "4s"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last, "\(run.err.all)")
        #expect(endpointCount(last) == 3 && ready(last) == 3, "\(last)")
        let eps = last["endpoints"] as? [[String: Any]] ?? []
        #expect(Set(eps.compactMap { $0["pod"] as? String }) == ["web-7d9f8c6b5-0x0", "web-7d9f8c6b5-1x0", "web-7d9f8c6b5-2x0"])
        #expect(eps.allSatisfy { $0["zone"] as? String == "zone-a" && ($0["node"] as? String)?.hasPrefix("node-") == true && $0["revision"] as? String == Self.oldRev })
        #expect(info(last)["watch"]?.hasPrefix("up, 1 slice") == true, "\(info(last))")
        let summary = try #require(run.summary)
        #expect((summary["fairness"] as? Double ?? 0) >= 0.95, "\(summary)")
        #expect(summary["failed"] as? Int == 0)
        for b in bs { #expect(Backend.total(b.stop()) > 100) }
        // What was asked of the API: a list by label selector, then a watch from its resourceVersion.
        let lines = api.requests.map(\.line)
        let list = try #require(lines.first { $0.contains("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?") && !$0.contains("watch=true") })
        #expect(list.contains("labelSelector=kubernetes.io%2Fservice-name%3Dweb"))
        let w = try #require(lines.first { $0.contains("watch=true") })
        #expect(w.contains("allowWatchBookmarks=true") && w.contains("resourceVersion=1001"), "\(w)")
        let timeout = Int(w.components(separatedBy: "timeoutSeconds=")[1].prefix { $0.isNumber }) ?? 0
        #expect((300...600).contains(timeout), "\(w)")
    }

    /// A Service split over 3 slices of 101 endpoints: every slice's endpoints are used (not only
    /// the latest slice, kuberesolver #66). One real pod per slice; the others refuse connections.
    @Test func threeSlicesOfMoreThan100() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let bs = try pods(3)
        for (s, b) in bs.enumerated() {
            var eps = [endpoint(b)]
            for i in 0..<100 { eps.append(.init("127.0.\(10 + s).\(i + 1)", pod: "web-\(Self.oldRev)-s\(s)n\(i)")) }
            api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-slice\(s)", endpoints: eps, ports: [("grpc", bs[0].port)])
        }
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "5s"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last, "\(run.err.all)")
        #expect(endpointCount(last) == 303, "\(info(last))")
        #expect(info(last)["watch"]?.hasPrefix("up, 3 slices") == true)
        #expect(run.summary?["failed"] as? Int == 0, "\(run.out.all.count) lines")
        for b in bs { #expect(Backend.total(b.stop()) > 50, "\(b.name): a pod of every slice gets traffic") }
    }

    /// Scale to zero (a slice with `endpoints: null`) is a real, empty state — shown as such —
    /// and scaling back up reconnects.
    @Test func scaleToZeroAndBack() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let bs = try pods(2)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-abcde", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "8s"])
        #expect(run.waitForSnapshot { ready($0) == 2 } != nil, "\(run.err.all)")
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-abcde", endpoints: [], ports: [("grpc", bs[0].port)])
        let zero = run.waitForSnapshot(timeout: 3) { endpointCount($0) == 0 }
        #expect(zero.map { $0["channel"] as? String } == "TRANSIENT_FAILURE", "\(String(describing: zero))")
        #expect(zero.flatMap(resolverError) == nil, "an empty Service is not a resolver error")
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-abcde", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        #expect(run.waitForSnapshot(timeout: 4) { ready($0) == 2 && $0["channel"] as? String == "READY" } != nil)
        _ = run.wait()
        for b in bs { b.stop() }
    }

    /// A rolling update (maxSurge 1, maxUnavailable 0): surge pod not ready → ready, old pod
    /// draining (serving + terminating) → removed and stopped. Zero failed RPCs; both revisions
    /// seen side by side; at the end only the new one.
    @Test func rolloutWithZeroFailedRPCs() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let old = try pods(2)
        let new = try pods(2, from: 2, port: old[0].port)
        let port = [("grpc", old[0].port)]
        var current: [String: KubeAPIServer.SliceEndpoint] = [:]
        for b in old { current[b.name] = endpoint(b) }
        func publish() { api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-abcde", endpoints: current.keys.sorted().map { current[$0]! }, ports: port) }
        publish()
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "30s"])
        #expect(run.waitForSnapshot { ready($0) == 2 } != nil, "\(run.err.all)")
        var sawDraining = false
        var sawBothRevisions = false
        for (o, n) in zip(old, new) {
            current[n.name] = endpoint(n, rev: Self.newRev, ready: false)   // surge pod created
            publish()
            #expect(run.waitForSnapshot(timeout: 3) { conditions($0)[self.endpoint(n, rev: Self.newRev).pod!] == "not-ready" } != nil,
                    "surge pod \(n.name) never shown not-ready")
            current[n.name] = endpoint(n, rev: Self.newRev)                  // readiness probe passes
            publish()
            #expect(run.waitForSnapshot(timeout: 3) { ready($0) == 3 } != nil, "surge pod \(n.name) never shown ready beside both old ones")
            current[o.name] = endpoint(o, ready: false, serving: true, terminating: true)   // old pod deleted: draining
            publish()
            if let s = run.waitForSnapshot(timeout: 3, { conditions($0)[self.endpoint(o).pod!] == "draining" }) {
                sawDraining = true
                let revs = Set((s["endpoints"] as? [[String: Any]] ?? []).compactMap { $0["revision"] as? String })
                if revs == [Self.oldRev, Self.newRev] { sawBothRevisions = true }
            }
            usleep(300_000)
            current[o.name] = nil                                            // endpoints controller drops it
            publish()
            #expect(run.waitForSnapshot(timeout: 3) { conditions($0)[self.endpoint(o).pod!] == nil } != nil, "old pod \(o.name) never left")
            o.stop()                                                          // SIGTERM: graceful drain
        }
        #expect(sawDraining && sawBothRevisions)
        let end = try #require(run.waitForSnapshot(timeout: 4) { ready($0) == 2 })
        #expect(Set((end["endpoints"] as? [[String: Any]] ?? []).filter { $0["mark"] as? String != "removed" }.compactMap { $0["revision"] as? String }) == [Self.newRev])
        run.process.interrupt()
        _ = run.wait()
        #expect(run.summary?["failed"] as? Int == 0, "\(run.summary ?? [:])")
        for b in new { #expect(Backend.total(b.stop()) > 0) }
    }

    /// A watch cut mid-stream resumes from the last resourceVersion (no relist); BOOKMARKs only
    /// advance it; a cleanly ended watch is resumed the same way.
    @Test func watchCutResumesFromLastResourceVersion() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let bs = try pods(3)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [endpoint(bs[0])], ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "8s"])
        #expect(run.waitForSnapshot { ready($0) == 1 } != nil, "\(run.err.all)")
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-b", endpoints: [endpoint(bs[1])], ports: [("grpc", bs[0].port)])
        #expect(run.waitForSnapshot(timeout: 3) { ready($0) == 2 } != nil)
        api.sendBookmarks()
        usleep(300_000)
        api.cutWatches()
        usleep(500_000)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-c", endpoints: [endpoint(bs[2])], ports: [("grpc", bs[0].port)])
        #expect(run.waitForSnapshot(timeout: 4) { ready($0) == 3 } != nil, "the change after the cut arrives")
        api.endWatches()
        usleep(500_000)
        api.deleteSlice(namespace: Self.ns, name: "web-a")
        #expect(run.waitForSnapshot(timeout: 4) { endpointCount($0) == 2 } != nil, "the change after a clean end arrives")
        _ = run.wait()
        let lines = api.requests.map(\.line)
        #expect(lines.filter { !$0.contains("watch=true") && $0.contains("endpointslices") }.count == 1, "no relist: \(lines)")
        let watches = lines.filter { $0.contains("watch=true") }
        #expect(watches.count >= 3, "\(watches)")
        // The re-watch after the cut starts from the bookmark's resourceVersion (1002), not the list's (1001).
        #expect(watches[1].contains("resourceVersion=1002"), "\(watches)")
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs { b.stop() }
    }

    /// 410 Gone after compaction relists — as an ERROR event (current apiservers) and as an HTTP
    /// status (older ones).
    @Test(arguments: [false, true]) func goneRelists(asHTTPStatus: Bool) throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        api.goneAsHTTPStatus = asHTTPStatus
        let bs = try pods(2)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [endpoint(bs[0])], ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "6s"])
        #expect(run.waitForSnapshot { ready($0) == 1 } != nil, "\(run.err.all)")
        api.compact()
        api.cutWatches()
        usleep(300_000)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-b", endpoints: [endpoint(bs[1])], ports: [("grpc", bs[0].port)])
        #expect(run.waitForSnapshot(timeout: 4) { ready($0) == 2 && resolverError($0) == nil } != nil)
        _ = run.wait()
        let lists = api.requests.map(\.line).filter { !$0.contains("watch=true") && $0.contains("endpointslices") }
        #expect(lists.count == 2, "relisted once: \(api.requests.map(\.line))")
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs { b.stop() }
    }

    /// In a pod: the service-account files (token, ca.crt, namespace) from a temp dir, TLS with
    /// the test CA, the namespace from the file. The token rotates: the next request gets 401, the
    /// resolver re-reads the file at once and carries on.
    @Test func inClusterTokenRotation() throws {
        let ca = try TestCA()
        let api = try KubeAPIServer(tls: .init(certPath: ca.serverCert, keyPath: ca.serverKey))
        defer { api.shutdown() }
        let sa = tempDir()
        try "token-1\n".write(toFile: sa + "/token", atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: ca.caCert, toPath: sa + "/ca.crt")
        try Self.ns.write(toFile: sa + "/namespace", atomically: true, encoding: .utf8)
        api.token = "token-1"
        let bs = try pods(2)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [endpoint(bs[0])], ports: [("grpc", bs[0].port)])
        let env = ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "\(api.port)", "GRPCTOP_SERVICEACCOUNT_DIR": sa, "KUBECONFIG": ""]
        let run = try watch(api, "kubernetes:///web:grpc", ["--duration", "6s"], env: env)
        #expect(run.waitForSnapshot { ready($0) == 1 } != nil, "\(run.err.all) \(api.requests.map(\.line))")
        #expect(info(run.snapshots.last ?? [:])["auth"] == "in-cluster service account")
        // The kubelet writes a new token; the API stops accepting the old one.
        try "token-2\n".write(toFile: sa + "/token", atomically: true, encoding: .utf8)
        api.token = "token-2"
        api.cutWatches()
        usleep(300_000)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-b", endpoints: [endpoint(bs[1])], ports: [("grpc", bs[0].port)])
        #expect(run.waitForSnapshot(timeout: 4) { ready($0) == 2 && resolverError($0) == nil } != nil, "\(run.snapshots.last ?? [:])")
        _ = run.wait()
        let auths = api.requests.map(\.authorization)
        #expect(auths.contains("Bearer token-1") && auths.last == "Bearer token-2", "\(auths)")
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs { b.stop() }
    }

    /// 403: the message says which verb on which resource was refused and for whom, the Role and
    /// RoleBinding are printed; once RBAC is applied the watch starts by itself.
    @Test func forbiddenTeachesRBAC() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        api.forbiddenUser = "system:serviceaccount:shop:grpctop"
        let bs = try pods(1)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [endpoint(bs[0])], ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "7s"])
        let denied = run.waitForSnapshot(timeout: 5) { resolverError($0) != nil }
        let msg = denied.flatMap(resolverError) ?? ""
        #expect(msg.contains("forbidden (403): system:serviceaccount:shop:grpctop may not list endpointslices in API group discovery.k8s.io in namespace shop"), "\(msg)")
        #expect(msg.contains("grpctop kube-rbac -n shop --service-account grpctop"))
        let yaml = run.err.all.joined(separator: "\n")
        #expect(yaml.contains("kind: Role") && yaml.contains("kind: RoleBinding") && yaml.contains("resources: [\"endpointslices\"]")
                && yaml.contains("verbs: [\"get\", \"list\", \"watch\"]") && yaml.contains("name: grpctop\n  namespace: shop"), "\(yaml)")
        api.forbiddenUser = nil   // kubectl apply -f deploy/rbac.yaml
        #expect(run.waitForSnapshot(timeout: 5) { ready($0) == 1 && resolverError($0) == nil } != nil)
        _ = run.wait()
        bs[0].stop()
    }

    /// The API server down for 10 s: the endpoints and connections are kept, traffic flows, the
    /// status says "watch down since …", and the watch comes back by itself.
    @Test func apiDownTenSeconds() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        let bs = try pods(3)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: bs.prefix(2).map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "30s"])
        #expect(run.waitForSnapshot { ready($0) == 2 } != nil, "\(run.err.all)")
        api.goDown()
        let down = run.waitForSnapshot(timeout: 4) { info($0)["watch"]?.hasPrefix("down since") == true }
        #expect(down.map(endpointCount) == 2 && down.map(ready) == 2, "\(String(describing: down))")
        #expect(down.flatMap(resolverError)?.contains("retry in") == true)
        sleep(9)
        let during = try #require(run.snapshots.last)
        #expect(endpointCount(during) == 2 && ready(during) == 2 && (during["rps"] as? Double ?? 0) > 100, "\(during)")
        try api.comeBack()
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        let back = run.waitForSnapshot(timeout: 15) { ready($0) == 3 && resolverError($0) == nil && info($0)["watch"]?.hasPrefix("up") == true }
        #expect(back != nil, "\(run.snapshots.last ?? [:])")
        run.process.interrupt()
        _ = run.wait()
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs { b.stop() }
    }

    /// Out of cluster: a kubeconfig with CA data, a client certificate file (relative to the
    /// kubeconfig) and key data; the namespace from the context.
    @Test func kubeconfigWithClientCertificates() throws {
        let ca = try TestCA()
        let api = try KubeAPIServer(tls: .init(certPath: ca.serverCert, keyPath: ca.serverKey, clientCAPath: ca.caCert))
        defer { api.shutdown() }
        let bs = try pods(2)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        let b64 = { (path: String) in (FileManager.default.contents(atPath: path) ?? Data()).base64EncodedString() }
        let config = """
        apiVersion: v1
        kind: Config
        current-context: kind-test
        clusters:
        - name: kind-test
          cluster:
            server: \(api.url)
            certificate-authority-data: \(b64(ca.caCert))
        contexts:
        - name: other
          context: {cluster: kind-test, user: nobody, namespace: default}
        - name: kind-test
          context:
            cluster: kind-test
            user: kind-test
            namespace: shop
        users:
        - name: kind-test
          user:
            client-certificate: client.crt
            client-key-data: \(b64(ca.clientKey))
        """
        let path = ca.dir + "/kubeconfig"
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try watch(api, "kubernetes:///web:grpc", ["--kubeconfig", path, "--duration", "3s"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last, "\(run.err.all)")
        #expect(ready(last) == 2, "\(last)")
        #expect(info(last)["auth"] == "kubeconfig context kind-test")
        for b in bs { b.stop() }
    }

    /// An old cluster without discovery.k8s.io/v1: core/v1 Endpoints instead, watched the same way.
    @Test func coreEndpointsFallback() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        api.discoveryAPI = false
        let bs = try pods(2)
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [endpoint(bs[0])], ports: [("grpc", bs[0].port)])
        let run = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "5s"])
        #expect(run.waitForSnapshot { ready($0) == 1 } != nil, "\(run.err.all) \(api.requests.map(\.line))")
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: bs.map { endpoint($0) }, ports: [("grpc", bs[0].port)])
        let both = run.waitForSnapshot(timeout: 4) { ready($0) == 2 }
        #expect(both != nil)
        #expect(both.map { info($0)["source"] ?? "" }?.hasPrefix("core/v1 Endpoints") == true)
        _ = run.wait()
        #expect(api.requests.contains { $0.line.contains("/api/v1/namespaces/shop/endpoints?fieldSelector=metadata.name%3Dweb") && $0.line.contains("watch=true") })
        for b in bs { b.stop() }
    }

    /// What the API says, one line each: a missing Service, an unknown port name.
    @Test func missingServiceAndUnknownPortName() throws {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        api.putSlice(namespace: Self.ns, service: Self.svc, name: "web-a", endpoints: [.init("127.0.0.2", pod: "web-x")], ports: [("http", 8080), ("metrics", 9090)])
        let missing = try watch(api, "kubernetes:///nope.shop:grpc", ["--duration", "2s"])
        let port = try watch(api, "kubernetes:///web.shop:grpc", ["--duration", "2s"])
        #expect(missing.wait() == 0 && port.wait() == 0)
        #expect(missing.snapshots.last.flatMap(resolverError) == "service \"nope\" not found in namespace \"shop\" (kubectl get services -n shop); watching for it")
        #expect(port.snapshots.last.flatMap(resolverError) == "web.shop: no port named 'grpc' in the service's EndpointSlices; it has http(8080), metrics(9090)")
    }

    /// Configuration mistakes: one line on stderr, exit 2.
    @Test func badKubernetesConfiguration() throws {
        let dir = tempDir()
        let exec = dir + "/exec.yaml"
        try """
        apiVersion: v1
        kind: Config
        current-context: eks
        clusters: [{name: eks, cluster: {server: "https://example.invalid"}}]
        contexts: [{name: eks, context: {cluster: eks, user: aws}}]
        users: [{name: aws, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws}}}]
        """.write(toFile: exec, atomically: true, encoding: .utf8)
        try "clusters: 5\n".write(toFile: dir + "/broken.yaml", atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["kubernetes:///web.shop:grpc", "--kubeconfig", exec], "exec credential plugin (aws), which grpctop does not support: run `kubectl proxy` and use --kube-api http://127.0.0.1:8001"),
            (["kubernetes:///web.shop:grpc", "--kubeconfig", exec, "--context", "prod"], "context 'prod' is not in kubeconfig"),
            (["kubernetes:///web.shop:grpc", "--kubeconfig", dir + "/none.yaml"], "cannot be read: check the path given to --kubeconfig"),
            (["kubernetes:///web.shop:grpc", "--kubeconfig", dir + "/broken.yaml"], "is not a valid kubeconfig: clusters"),
            (["kubernetes:///web.shop:grpc", "--kube-api", "localhost:8001"], "is not an http(s) URL"),
            (["kubernetes:///Web.shop:grpc", "--kube-api", "http://127.0.0.1:1"], "not a valid Kubernetes name"),
        ]
        for (args, expected) in cases {
            let run = try WatchRun(args + ["--batch"], env: ["KUBECONFIG": "", "HOME": dir])
            #expect(run.wait() == 2, "\(args)")
            #expect(run.err.all.count == 1 && run.err.all.first?.contains(expected) == true, "\(args): \(run.err.all)")
        }
    }

    /// `grpctop kube-rbac` prints what deploy/rbac.yaml ships (for its namespace and account).
    @Test func kubeRBACPrintsRoleAndBinding() throws {
        let run = try WatchRun(["-n", "default", "--service-account", "grpctop"], subcommand: "kube-rbac")
        #expect(run.wait() == 0)
        let printed = run.out.all.joined(separator: "\n")
        let shipped = try String(contentsOfFile: Paths.root.appendingPathComponent("deploy/rbac.yaml").path, encoding: .utf8)
        #expect(printed.contains("kind: Role\n") && printed.contains("kind: RoleBinding") && printed.contains("resources: [\"endpointslices\"]"))
        #expect(shipped.trimmingCharacters(in: .newlines).hasSuffix(printed.trimmingCharacters(in: .newlines)), "deploy/rbac.yaml is the generated Role and RoleBinding")
        let bad = try WatchRun(["-n", "Shop"], subcommand: "kube-rbac")
        #expect(bad.wait() == 2 && bad.err.all.first?.contains("--namespace 'Shop' is not a valid Kubernetes name") == true)
    }
}
