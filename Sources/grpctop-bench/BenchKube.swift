import Foundation
import KubeStandIn
import TopologyCore
import TopologyResolvers

/// `grpctop-bench --kubernetes`: the kubernetes resolver's own path against the stand-in API
/// server on loopback — list 5,000 endpoints in 50 EndpointSlices (paginated, decoded, unioned)
/// and apply them to a model; then a watch event (one slice modified) to an updated model.
enum KubeBenchmark {
    struct Report: Codable {
        var slices: Int
        var endpoints: Int
        var runs: Int
        var listAndApplyMsP50: Double
        var listAndApplyMsMax: Double
        var applyOnlyMsP50: Double
        var watchEvents: Int
        var watchEventToModelMsP50: Double
        var watchEventToModelMsMax: Double
        var watchApplyOnlyMsP50: Double
    }

    static func run(runs: Int, slices: Int = 50, perSlice: Int = 100) throws -> Report {
        let api = try KubeAPIServer()
        defer { api.shutdown() }
        for s in 0..<slices {
            let eps = (0..<perSlice).map { i in
                KubeAPIServer.SliceEndpoint("10.\(s / 200).\(s % 200).\(i + 1)", pod: "big-7d9f8c6b5-s\(s)p\(i)", node: "node-\(i % 20)", zone: "zone-\(i % 3)")
            }
            api.putSlice(namespace: "bench", service: "big", name: "big-\(s)", endpoints: eps)
        }
        let session = Event.sessionStarted(SessionInfo(
            target: "kubernetes:///big.bench:grpc", resolver: "kubernetes", policy: .roundRobin, rpc: "bench",
            identityHeader: nil, traffic: .rate(1), startedAt: 0, host: "bench", version: "bench"))
        var config = KubeAPIConfig(server: api.url, source: "bench")
        config.namespace = "bench"

        // List + apply: a fresh resolver and model each run (what starting grpctop does).
        var listMs: [Double] = []
        var applyMs: [Double] = []
        var endpoints = 0
        for _ in 0..<max(1, runs) {
            let sink = ResolverSink(session: session)
            let resolver = try KubeBenchmark.resolver(config)
            let t0 = DispatchTime.now().uptimeNanoseconds
            resolver.start { sink.receive($0) }
            let t1 = try sink.wait("update 1") { $0.updates >= 1 }
            listMs.append(Double(t1 - t0) / 1e6)
            applyMs.append(sink.read { $0.lastApplyMs })
            endpoints = sink.read { $0.model.endpoints.count }
            resolver.stop()
        }

        // Watch events: one slice's endpoint flips readiness; time from the API change to the
        // model that shows it.
        let sink = ResolverSink(session: session)
        let resolver = try KubeBenchmark.resolver(config)
        resolver.start { sink.receive($0) }
        _ = try sink.wait("update 1") { $0.updates >= 1 }
        var waited = 0
        while api.watcherCount == 0 && waited < 500 { usleep(10_000); waited += 1 }
        var eventMs: [Double] = []
        var applyWatchMs: [Double] = []
        let events = max(20, runs * 10)
        for k in 0..<events {
            let s = k % slices
            let eps = (0..<perSlice).map { i in
                KubeAPIServer.SliceEndpoint("10.\(s / 200).\(s % 200).\(i + 1)", ready: !(i == 0 && k % 2 == 0), pod: "big-7d9f8c6b5-s\(s)p\(i)", node: "node-\(i % 20)", zone: "zone-\(i % 3)")
            }
            api.putSlice(namespace: "bench", service: "big", name: "big-\(s)", endpoints: eps)
            let t1 = try sink.wait("update \(2 + k)") { $0.updates >= 2 + k }
            // From the moment the API server sent the event (its own serialisation not counted).
            eventMs.append(Double(t1 - api.lastEventSentAt) / 1e6)
            applyWatchMs.append(sink.read { $0.lastApplyMs })
        }
        resolver.stop()
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        return Report(slices: slices, endpoints: endpoints, runs: listMs.count,
                      listAndApplyMsP50: median(listMs), listAndApplyMsMax: listMs.max() ?? 0, applyOnlyMsP50: median(applyMs),
                      watchEvents: eventMs.count, watchEventToModelMsP50: median(eventMs), watchEventToModelMsMax: eventMs.max() ?? 0,
                      watchApplyOnlyMsP50: median(applyWatchMs))
    }

    static func resolver(_ config: KubeAPIConfig) throws -> KubernetesResolver {
        do { return try KubernetesResolver(namespace: "bench", service: "big", port: "grpc", config: config) } catch {
            throw BenchFailure("\(error)")
        }
    }

    static func table(_ r: Report) -> String {
        """
        Kubernetes: \(r.endpoints) endpoints in \(r.slices) EndpointSlices, stand-in API server on loopback
          list (HTTP, 500 a page) + decode + union + apply to a new model   p50 \(String(format: "%.1f", r.listAndApplyMsP50)) ms   max \(String(format: "%.1f", r.listAndApplyMsMax)) ms   (\(r.runs) runs; apply alone \(String(format: "%.1f", r.applyOnlyMsP50)) ms)
          watch event (one slice modified) sent → updated model            p50 \(String(format: "%.2f", r.watchEventToModelMsP50)) ms   max \(String(format: "%.2f", r.watchEventToModelMsMax)) ms   (\(r.watchEvents) events; apply alone \(String(format: "%.1f", r.watchApplyOnlyMsP50)) ms)

        """
    }
}

