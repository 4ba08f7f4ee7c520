import EtcdAPI
import Foundation
import TopologyCore
import TopologyResolvers

/// `grpctop bench --etcd URL` (scripts/bench-etcd starts a throw-away etcd): 1,000 keys
/// registered under one lease, ranged and applied to a model by the etcd resolver; then a new
/// key put, and the time until the model has it (the watch path), many times.
enum EtcdBenchmark {
    struct Report: Codable {
        var keys: Int
        var rangeAndApplyMsP50: Double
        var rangeAndApplyMsMax: Double
        var watchEventMsP50: Double
        var watchEventMsMax: Double
        var watchEvents: Int
    }

    static func run(url: String, keys n: Int, runs: Int) throws -> Report {
        let config: EtcdConfig
        do { config = EtcdConfig(endpoints: try EtcdConfig.parseEndpoints(url)) } catch { throw UsageFailure("\(error)") }
        let prefix = "grpctop-bench-\(getpid())/"
        let client = try EtcdClient(config: config)
        let setup = Blocking { () async throws -> Int64 in
            try await client.connect()
            let lease = try await client.grantLease(ttl: 300).id
            for i in 0..<n {
                try await client.put(key: "\(prefix)\(i)", value: #"{"Op":0,"Addr":"10.\#(i / 250).\#(i % 250).1:50051","Metadata":null}"#, lease: lease)
            }
            return lease
        }
        let lease = try setup.get()
        defer {
            _ = try? Blocking { () async throws -> Int in
                try await client.revokeLease(lease)
                client.disconnect()
                return 0
            }.get()
        }
        func ms(_ t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 }
        var rangeMs: [Double] = []
        var watchMs: [Double] = []
        for run in 0..<runs {
            let sink = ResolverSink(session: .sessionStarted(SessionInfo(
                target: "etcd:///bench", resolver: "etcd", policy: .roundRobin, rpc: "bench", identityHeader: nil,
                traffic: .rate(1), startedAt: 0, host: "bench", version: GRPCTop.version)))
            let resolver = try EtcdResolver(prefix: prefix, config: config)
            let t0 = DispatchTime.now().uptimeNanoseconds
            resolver.start { sink.receive($0) }
            let expected = n + run * 10  // and the keys earlier runs put
            _ = try sink.wait("answer with the \(expected) keys") { $0.model.resolver.endpoints.count == expected }
            rangeMs.append(ms(t0))
            _ = try sink.wait("watch") { $0.model.resolver.info["watches"] == "1" }
            for i in 0..<10 {
                let host = "10.200.\(run).\(i + 1)"
                let t1 = DispatchTime.now().uptimeNanoseconds
                _ = try Blocking { try await client.put(key: "\(prefix)new-\(run)-\(i)", value: "\(host):50051", lease: lease) }.get()
                _ = try sink.wait("update with the key put") { s in s.model.resolver.endpoints.contains { $0.addresses.first == .tcp(host: host, port: 50051) } }
                watchMs.append(ms(t1))
            }
            resolver.stop()
        }
        rangeMs.sort()
        watchMs.sort()
        return Report(keys: n, rangeAndApplyMsP50: rangeMs[rangeMs.count / 2], rangeAndApplyMsMax: rangeMs.last ?? 0,
                      watchEventMsP50: watchMs[watchMs.count / 2], watchEventMsMax: watchMs.last ?? 0, watchEvents: watchMs.count)
    }

    static func table(_ r: Report) -> String {
        """
        etcd: \(r.keys) keys (etcd naming JSON, one lease) in a real etcd
          connect + range + apply to the model   p50 \(String(format: "%.1f", r.rangeAndApplyMsP50)) ms   max \(String(format: "%.1f", r.rangeAndApplyMsMax)) ms
          put → watch event → model (\(r.watchEvents) puts)   p50 \(String(format: "%.1f", r.watchEventMsP50)) ms   max \(String(format: "%.1f", r.watchEventMsMax)) ms

        """
    }
}

/// Runs async work from the synchronous benchmark and waits for it.
final class Blocking<T: Sendable>: @unchecked Sendable {
    private var result: Result<T, Error>?
    private let done = DispatchSemaphore(value: 0)
    init(_ work: @escaping @Sendable () async throws -> T) {
        Task {
            do { result = .success(try await work()) } catch { result = .failure(error) }
            done.signal()
        }
    }
    func get() throws -> T {
        done.wait()
        return try result!.get()
    }
}
