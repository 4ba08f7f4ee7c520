import Foundation
import NIOHTTP1
import TopologyCore
import TopologyResolvers

/// `grpctop bench --consul HOST:PORT` (scripts/bench-consul starts the Consul stand-in): 1,000
/// instances registered with passing TTL checks; the pure decode + apply of their health answer;
/// then the consul resolver end to end — first answer → model, and a check turned critical →
/// the blocking query returns → model, many times.
enum ConsulBenchmark {
    struct Report: Codable {
        var instances: Int
        var decodeAndApplyMsP50: Double
        var decodeMsP50: Double
        var answerBytes: Int
        var firstAnswerMsP50: Double
        var changeToModelMsP50: Double
        var changeToModelMsMax: Double
        var changes: Int
    }

    static func run(agent: String, instances n: Int, runs: Int) throws -> Report {
        let hp: HostPort
        do { hp = try Target.splitHostPort(agent, whole: agent, bareIPv6: false, defaultPort: 8500) } catch { throw UsageFailure("--consul '\(agent)': \(error)") }
        let config = ConsulConfig(agent: hp)
        let client = try ConsulClient(config)
        client.open()
        defer { _ = try? Blocking { () async throws -> Int in await client.shutdown(); return 0 }.get() }
        let service = "bench-\(getpid())"
        func put(_ path: String, _ body: [String: Any]? = nil) throws {
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
            _ = try Blocking { try await client.expectOK(.PUT, path, body: data, timeout: .seconds(30)) }.get()
        }
        for i in 0..<n {
            try put("/v1/agent/service/register", ["ID": "\(service)-\(i)", "Name": service, "Address": "10.\(i / 250).\(i % 250).1", "Port": 50051,
                                                   "Tags": ["v1"], "Meta": ["version": "v1"],
                                                   "Check": ["CheckID": "service:\(service)-\(i)", "TTL": "10m", "Status": "passing"]])
        }
        defer { for i in 0..<n { try? put("/v1/agent/service/deregister/\(service)-\(i)") } }
        func ms(_ t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 }

        // The pure part: decode the agent's answer and apply it to a model.
        let body = try Blocking { try await client.expectOK(.GET, "/v1/health/service/\(service)", timeout: .seconds(30)) }.get().body
        var decodeMs: [Double] = []
        var decodeOnlyMs: [Double] = []
        for _ in 0..<max(5, runs * 5) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let d = try ConsulHealth.decode(body, passingOnly: false)
            decodeOnlyMs.append(ms(t0))
            var model = Model()
            _ = model.apply(TimedEvent(at: 1, .resolverUpdated(ResolverResult(endpoints: d.endpoints))))
            precondition(model.resolver.endpoints.count == n)
            decodeMs.append(ms(t0))
        }

        var firstMs: [Double] = []
        var changeMs: [Double] = []
        for run in 0..<runs {
            let sink = ResolverSink(session: .sessionStarted(SessionInfo(
                target: "consul:///\(service)", resolver: "consul", policy: .roundRobin, rpc: "bench", identityHeader: nil,
                traffic: .rate(1), startedAt: 0, host: "bench", version: GRPCTop.version)))
            let resolver = try ConsulResolver(service: service, query: ConsulQuery(), config: config)
            let t0 = DispatchTime.now().uptimeNanoseconds
            resolver.start { sink.receive($0) }
            _ = try sink.wait("the first answer") { $0.model.resolver.endpoints.count == n }
            firstMs.append(ms(t0))
            for k in 0..<10 {
                let i = (run * 10 + k) % n
                let t1 = DispatchTime.now().uptimeNanoseconds
                try put("/v1/agent/check/fail/service:\(service)-\(i)?note=bench")
                _ = try sink.wait("instance \(i) not ready") { s in s.model.resolver.endpoints.contains { $0.pod == "\(service)-\(i)" && !$0.ready } }
                changeMs.append(ms(t1))
                try put("/v1/agent/check/pass/service:\(service)-\(i)")
                _ = try sink.wait("instance \(i) ready again") { s in s.model.resolver.endpoints.contains { $0.pod == "\(service)-\(i)" && $0.ready } }
            }
            resolver.stop()
        }
        decodeMs.sort()
        decodeOnlyMs.sort()
        firstMs.sort()
        changeMs.sort()
        return Report(instances: n, decodeAndApplyMsP50: decodeMs[decodeMs.count / 2], decodeMsP50: decodeOnlyMs[decodeOnlyMs.count / 2], answerBytes: body.count,
                      firstAnswerMsP50: firstMs[firstMs.count / 2], changeToModelMsP50: changeMs[changeMs.count / 2],
                      changeToModelMsMax: changeMs.last ?? 0, changes: changeMs.count)
    }

    static func table(_ r: Report) -> String {
        """
        consul: \(r.instances) instances (passing TTL checks) in the Consul stand-in, answer \(r.answerBytes / 1024) KiB
          decode + apply to the model (pure)                 p50 \(String(format: "%.1f", r.decodeAndApplyMsP50)) ms (decode \(String(format: "%.1f", r.decodeMsP50)) ms)
          first answer → model (agent included)              p50 \(String(format: "%.1f", r.firstAnswerMsP50)) ms
          check fails → blocking query returns → model (\(r.changes))   p50 \(String(format: "%.1f", r.changeToModelMsP50)) ms   max \(String(format: "%.1f", r.changeToModelMsMax)) ms

        """
    }
}
