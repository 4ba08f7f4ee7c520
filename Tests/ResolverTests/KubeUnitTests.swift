import Foundation
import Testing
import TopologyCore
@testable import TopologyResolvers

/// The pure parts of the kubernetes resolver: API JSON → slices → endpoints, and kubeconfig.
struct KubeSliceTests {
    /// An EndpointSlice as the API reference shows it (kubectl get endpointslice -o json).
    static let sliceJSON = """
    {"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",
     "metadata":{"name":"example-abc","namespace":"default","resourceVersion":"12345",
                 "labels":{"kubernetes.io/service-name":"example","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"}},
     "addressType":"IPv4",
     "ports":[{"name":"http","protocol":"TCP","port":80},{"name":"grpc","protocol":"TCP","port":50051,"appProtocol":"grpc"}],
     "endpoints":[
       {"addresses":["10.1.2.3"],"conditions":{"ready":true},"hostname":"pod-1","nodeName":"node-1","zone":"us-west2-a",
        "targetRef":{"kind":"Pod","namespace":"default","name":"example-7d9f8c6b5-x2x9z","uid":"1"}},
       {"addresses":["10.1.2.4"],"conditions":{},"targetRef":{"kind":"Pod","name":"example-7d9f8c6b5-abcde"}},
       {"addresses":["10.1.2.5"],"targetRef":{"kind":"Pod","name":"example-7d9f8c6b5-nocnd"}},
       {"addresses":["10.1.2.6"],"conditions":{"ready":false,"serving":true,"terminating":true},"targetRef":{"kind":"Pod","name":"example-7d9f8c6b5-drain"}},
       {"addresses":["10.1.2.7"],"conditions":{"ready":false},"targetRef":{"kind":"Pod","name":"example-5c48d7f9b-start"}}
     ]}
    """

    func slice(_ json: String = sliceJSON) throws -> EndpointSlice {
        try JSONDecoder().decode(EndpointSlice.self, from: Data(json.utf8))
    }

    @Test func nilConditionsFollowTheAPI() throws {
        let u = SliceSet(port: .name("grpc"), [try slice()]).union()
        let byPod = Dictionary(uniqueKeysWithValues: u.endpoints.map { ($0.pod ?? "", $0) })
        #expect(byPod["example-7d9f8c6b5-x2x9z"]?.condition == .ready)
        #expect(byPod["example-7d9f8c6b5-abcde"]?.condition == .ready, "ready nil = ready")
        #expect(byPod["example-7d9f8c6b5-nocnd"]?.condition == .ready, "no conditions at all = ready")
        #expect(byPod["example-7d9f8c6b5-drain"]?.condition == .draining, "serving + terminating = draining")
        let starting = try #require(byPod["example-5c48d7f9b-start"])
        #expect(starting.condition == .notReady && !starting.serving && !starting.terminating, "serving nil = ready's value; terminating nil = false")
        let first = try #require(byPod["example-7d9f8c6b5-x2x9z"])
        #expect(first.addresses == [.tcp(host: "10.1.2.3", port: 50051)])
        #expect(first.node == "node-1" && first.zone == "us-west2-a" && first.hostname == "pod-1" && first.revision == "7d9f8c6b5")
        #expect(u.portProblem == nil)
    }

    @Test func portNamesResolvePerSliceAndNumbersAreUsedAsGiven() throws {
        var a = try slice()
        var b = try slice()
        b.metadata.name = "example-def"
        b.ports = [.init(name: "grpc", port: 6000, protocol: "TCP", appProtocol: nil)]
        b.endpoints = [.init(addresses: ["10.9.9.9"], conditions: nil, hostname: nil, targetRef: nil, nodeName: nil, zone: nil)]
        a.endpoints = Array(a.endpoints!.prefix(1))
        let named = SliceSet(port: .name("grpc"), [a, b]).union().endpoints.flatMap(\.addresses)
        #expect(Set(named) == [.tcp(host: "10.1.2.3", port: 50051), .tcp(host: "10.9.9.9", port: 6000)])
        let numbered = SliceSet(port: .number(8443), [a, b]).union().endpoints.flatMap(\.addresses)
        #expect(Set(numbered) == [.tcp(host: "10.1.2.3", port: 8443), .tcp(host: "10.9.9.9", port: 8443)])
        let unknown = SliceSet(port: .name("metrics"), [a]).union()
        #expect(unknown.endpoints.isEmpty && unknown.portProblem == "no port named 'metrics' in the service's EndpointSlices; it has grpc(50051), http(80)")
    }

    /// Every slice counts, a pod in two slices (dual stack, rebalancing) is one endpoint, and an
    /// empty or null slice is an empty set, not an error.
    @Test func unionOfSlices() throws {
        var v4 = try slice()
        v4.endpoints = Array(v4.endpoints!.prefix(1))
        var v6 = v4
        v6.metadata.name = "example-v6"
        v6.addressType = "IPv6"
        v6.endpoints![0].addresses = ["fd00::3"]
        var set = SliceSet(port: .name("grpc"), [v4, v6])
        let one = set.union().endpoints
        #expect(one.count == 1 && one[0].addresses == [.tcp(host: "10.1.2.3", port: 50051), .tcp(host: "fd00::3", port: 50051)])
        set.remove(named: "example-abc")
        #expect(set.union().endpoints.map(\.addresses) == [[.tcp(host: "fd00::3", port: 50051)]])
        let empty = try slice(#"{"metadata":{"name":"example-abc"},"addressType":"IPv4","endpoints":null,"ports":[{"name":"grpc","port":50051}]}"#)
        let zero = SliceSet(port: .name("grpc"), [empty]).union()
        #expect(zero.endpoints.isEmpty && zero.portProblem == nil)
    }

    @Test func watchEventsDecode() throws {
        let added = try KubeWatchEvent.decode(Data(#"{"type":"ADDED","object":\#(Self.sliceJSON)}"#.utf8), coreEndpoints: false)
        #expect(added.type == .added && added.name == "example-abc" && added.resourceVersion == "12345" && added.slices.count == 1)
        let bookmark = try KubeWatchEvent.decode(Data(#"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"12746","annotations":{"k8s.io/initial-events-end":"true"}}}}"#.utf8), coreEndpoints: false)
        #expect(bookmark.type == .bookmark && bookmark.resourceVersion == "12746" && bookmark.slices.isEmpty)
        let gone = try KubeWatchEvent.decode(Data(#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"#.utf8), coreEndpoints: false)
        #expect(gone.type == .error && gone.status?.code == 410 && gone.status?.reason == "Expired")
        #expect(throws: KubeWatchEvent.DecodeError.self) { try KubeWatchEvent.decode(Data("not json".utf8), coreEndpoints: false) }
        #expect(throws: KubeWatchEvent.DecodeError.self) { try KubeWatchEvent.decode(Data(#"{"type":"RESYNC","object":{}}"#.utf8), coreEndpoints: false) }
    }

    @Test func coreEndpointsBecomeSlices() throws {
        let json = #"{"metadata":{"name":"web","resourceVersion":"7"},"subsets":[{"addresses":[{"ip":"10.0.0.1","nodeName":"n1","targetRef":{"kind":"Pod","name":"web-1"}}],"notReadyAddresses":[{"ip":"10.0.0.2"}],"ports":[{"name":"grpc","port":50051}]}]}"#
        let e = try JSONDecoder().decode(CoreEndpoints.self, from: Data(json.utf8))
        let u = SliceSet(port: .name("grpc"), e.asSlices).union().endpoints
        #expect(u.map(\.condition) == [.ready, .notReady])
        #expect(u[0].pod == "web-1" && u[0].node == "n1" && u[1].addresses == [.tcp(host: "10.0.0.2", port: 50051)])
    }
}

struct KubeConfigTests {
    func write(_ dir: String, _ name: String, _ text: String) -> String {
        let p = dir + "/" + name
        try? text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    func dir() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-kc-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// KUBECONFIG's list semantics: the first file to set current-context or to name a cluster,
    /// context or user wins; relative paths are relative to their own file.
    @Test func kubeconfigListMerges() throws {
        let d = dir()
        try FileManager.default.createDirectory(atPath: d + "/sub", withIntermediateDirectories: true)
        _ = write(d + "/sub", "token", "s3cret\n")
        let a = write(d, "a.yaml", """
        current-context: dev
        contexts:
        - {name: dev, context: {cluster: c1, user: u1, namespace: team}}
        """)
        let b = write(d + "/sub", "b.yaml", """
        current-context: ignored
        clusters:
        - {name: c1, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}
        contexts:
        - {name: dev, context: {cluster: other, user: other}}
        users:
        - {name: u1, user: {tokenFile: token}}
        """)
        let c = try KubeAPIConfig.load(kubeAPI: nil, kubeconfig: nil, context: nil, env: ["KUBECONFIG": "\(a):\(d)/missing.yaml:\(b)", "HOME": d])
        #expect(c.server == "https://10.0.0.1:6443" && c.namespace == "team" && c.insecureSkipTLSVerify)
        #expect(c.token == .file(d + "/sub/token"), "relative to b.yaml's directory")
        #expect(c.source == "kubeconfig context dev")
    }

    @Test func inClusterReadsTheServiceAccount() throws {
        let d = dir()
        _ = write(d, "token", "t")
        _ = write(d, "ca.crt", "-----BEGIN CERTIFICATE-----\n")
        _ = write(d, "namespace", "shop\n")
        let c = try KubeAPIConfig.load(kubeAPI: nil, kubeconfig: nil, context: nil,
                                       env: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443", "GRPCTOP_SERVICEACCOUNT_DIR": d])
        #expect(c.server == "https://[fd00::1]:443" && c.namespace == "shop" && c.token == .file(d + "/token") && c.caPEM != nil)
        #expect(throws: KubeConfigError.self) {
            try KubeAPIConfig.load(kubeAPI: nil, kubeconfig: nil, context: nil, env: ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "GRPCTOP_SERVICEACCOUNT_DIR": d + "/none"])
        }
    }

    @Test func unsupportedAuthSaysUseKubectlProxy() throws {
        let d = dir()
        let p = write(d, "gke.yaml", """
        current-context: gke
        clusters: [{name: gke, cluster: {server: "https://1.2.3.4"}}]
        contexts: [{name: gke, context: {cluster: gke, user: gke}}]
        users: [{name: gke, user: {auth-provider: {name: gcp}}}]
        """)
        do {
            _ = try KubeAPIConfig.load(kubeAPI: nil, kubeconfig: p, context: nil, env: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "user 'gke' authenticates with an auth-provider (gcp), which grpctop does not support: run `kubectl proxy` and use --kube-api http://127.0.0.1:8001")
        }
    }

    @Test func targetsNameTheServiceAndNamespace() throws {
        #expect(try Target.parse("kubernetes:///web.shop:grpc") == .kubernetes(namespace: "shop", service: "web", port: "grpc"))
        #expect(try Target.parse("kubernetes:///web.shop.svc.cluster.local:50051") == .kubernetes(namespace: "shop", service: "web", port: "50051"))
        #expect(try Target.parse("kubernetes://shop/web:grpc") == .kubernetes(namespace: "shop", service: "web", port: "grpc"))
        #expect(try Target.parse("k8s:///web:grpc") == .kubernetes(namespace: nil, service: "web", port: "grpc"))
        #expect(KubePort("50051") == .number(50051) && KubePort("grpc") == .name("grpc"))
    }
}
