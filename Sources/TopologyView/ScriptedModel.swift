import TopologyCore

/// Models built only from events, as a live session would build them: the golden frames, the
/// view tests and `grpctop bench --view` use them.
public struct ScriptedModel {
    public var model = Model()
    var t: Millis = 0

    public init(policy: LBPolicy = .roundRobin, identityHeader: String? = nil, target: String = "file:endpoints.txt", resolver: String = "file",
                healthCheckService: String? = nil, outlierDetection: OutlierDetectionConfig? = nil) {
        send(.sessionStarted(SessionInfo(
            target: target, resolver: resolver, policy: policy, rpc: "Health/Check", identityHeader: identityHeader,
            traffic: .rate(300), startedAt: 1_795_000_000, host: "test", version: "test",
            healthCheckService: healthCheckService, outlierDetection: outlierDetection)))
    }

    public mutating func send(_ e: Event, after: Millis = 10) {
        t += after
        _ = model.apply(TimedEvent(at: t, e))
    }

    public static func endpoint(_ i: Int, zone: String? = nil, ready: Bool = true, terminating: Bool = false) -> Endpoint {
        Endpoint(addresses: [.tcp(host: "10.0.\(i / 250).\(i % 250 + 1)", port: 50051)], pod: "greeter-7d9f8c6b5-p\(i)",
                 node: "node-\(i % 3)", zone: zone ?? ["a", "b", "c"][i % 3], ready: ready, serving: ready || terminating, terminating: terminating)
    }

    public mutating func resolve(_ eps: [Endpoint]) { send(.resolverUpdated(ResolverResult(endpoints: eps))) }

    public mutating func connect(_ ids: ClosedRange<Int>, rtt: Int64 = 180) {
        for id in ids {
            send(.subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
            send(.subchannel(id, .connected(local: "10.9.0.1:4\(id)000", remote: model.subchannels[id]?.endpoint.addresses[0].description ?? "", connectMs: 2)))
            send(.subchannel(id, .settingsReceived(maxConcurrentStreams: nil)))
            send(.subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
            send(.subchannel(id, .pingRTT(micros: rtt)))
        }
    }

    /// `seconds` of 250 ms ticks; `perTick[name]` RPCs per tick for each backend, routed to the
    /// subchannel serving it.
    public mutating func traffic(seconds: Int, perTick: [String: Int], failures: [String: Int] = [:], micros: UInt64 = 900) {
        var byName: [String: SubchannelID] = [:]
        for sc in model.subchannels.values where sc.state != .shutdown { byName[sc.endpoint.displayName] = sc.id }
        for _ in 0..<(seconds * 4) {
            var tick = StatsTick()
            for (name, n) in perTick.sorted(by: { $0.key < $1.key }) {
                var d = RPCDelta()
                let f = failures[name] ?? 0
                d.started = n
                d.succeeded = n - f
                d.failed = f
                if f > 0 { d.codes = [14: f] }
                d.messagesSent = n
                d.messagesReceived = n - f
                d.latency.values = [micros, micros * 3]
                d.latency.counts = [UInt32(max(0, n - n / 50)), UInt32(n / 50)]
                tick.backends.append(BackendTick(name: name, delta: d))
                if let id = byName[name] {
                    tick.subchannels.append(SubchannelTick(id: id, activeStreams: min(3, n / 20), queued: 0, delta: d))
                }
            }
            send(.stats(tick), after: 250)
        }
    }

    public static func pods(_ n: Int) -> [String] { (0..<n).map { "greeter-7d9f8c6b5-p\($0)" } }

    // MARK: - the scripted situations of the golden frames

    public static func healthyRoundRobin() -> Model {
        var s = ScriptedModel()
        s.resolve((0..<3).map { endpoint($0) })
        s.connect(1...3)
        s.traffic(seconds: 20, perTick: Dictionary(uniqueKeysWithValues: pods(3).map { ($0, 25) }))
        return s.model
    }

    /// Health checks and outlier detection at work: p0 answers NOT_SERVING (READY · unhealthy),
    /// p1 failed half its RPCs and is ejected (READY · ejected), p2 and p3 carry the traffic.
    public static func healthAndOutlier() -> Model {
        let od = OutlierDetectionConfig.failurePercentage(threshold: 30, minimumHosts: 3, requestVolume: 10, intervalMs: 1000,
                                                          baseEjectionTimeMs: 10_000, maxEjectionPercent: 50)
        var s = ScriptedModel(healthCheckService: "", outlierDetection: od)
        s.resolve((0..<4).map { endpoint($0) })
        s.connect(1...4)
        for id in 1...4 { s.send(.subchannel(id, .health(.answered("SERVING")))) }
        let p = pods(4)
        s.traffic(seconds: 4, perTick: [p[0]: 18, p[1]: 18, p[2]: 18, p[3]: 18], failures: [p[1]: 9])
        s.send(.subchannel(1, .health(.answered("NOT_SERVING"))))
        s.traffic(seconds: 6, perTick: [p[2]: 25, p[3]: 25])
        return s.model
    }

    public static func pickFirstStuck() -> Model {
        var s = ScriptedModel(policy: .pickFirst)
        s.resolve((0..<3).map { endpoint($0) })
        s.connect(1...1)
        s.traffic(seconds: 20, perTick: [pods(1)[0]: 75])
        return s.model
    }

    public static func podDeleted() -> Model {
        var s = ScriptedModel()
        s.resolve((0..<3).map { endpoint($0) })
        s.connect(1...3)
        s.traffic(seconds: 15, perTick: Dictionary(uniqueKeysWithValues: pods(3).map { ($0, 25) }))
        s.resolve([endpoint(0), endpoint(2)])
        s.traffic(seconds: 3, perTick: [pods(3)[0]: 37, pods(3)[2]: 38])
        return s.model
    }

    public static func backendInBackoff() -> Model {
        var s = ScriptedModel()
        s.resolve((0..<3).map { endpoint($0) })
        s.connect(1...3)
        s.traffic(seconds: 10, perTick: Dictionary(uniqueKeysWithValues: pods(3).map { ($0, 25) }))
        s.send(.subchannel(2, .stateChanged(to: .idle, reason: "connection reset", backoffMs: nil)))
        s.send(.subchannel(2, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
        s.send(.subchannel(2, .stateChanged(to: .transientFailure, reason: "connection refused", backoffMs: 1600)))
        s.traffic(seconds: 1, perTick: [pods(3)[0]: 37, pods(3)[2]: 38], failures: [pods(3)[1]: 0])
        return s.model
    }

    public static func goAwayDrain() -> Model {
        var s = ScriptedModel()
        s.resolve((0..<3).map { endpoint($0) } + [endpoint(3, ready: false, terminating: true)])
        s.connect(1...3)
        s.traffic(seconds: 10, perTick: Dictionary(uniqueKeysWithValues: pods(3).map { ($0, 25) }))
        s.send(.subchannel(1, .goAwayReceived(code: "NO_ERROR", lastStreamID: 2_147_483_647, debug: "max_age")))
        s.send(.subchannel(1, .stateChanged(to: .idle, reason: "GOAWAY NO_ERROR", backoffMs: nil)))
        s.send(.subchannel(1, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
        s.traffic(seconds: 1, perTick: [pods(3)[1]: 37, pods(3)[2]: 38])
        return s.model
    }

    public static func manyEndpoints(_ n: Int = 1000) -> Model {
        var s = ScriptedModel()
        s.resolve((0..<n).map { endpoint($0) })
        s.connect(1...n)
        s.traffic(seconds: 5, perTick: Dictionary(uniqueKeysWithValues: pods(n).map { ($0, 2) }))
        return s.model
    }
}
