import TopologyCore

/// The two stories of connected-but-not-serving pods: client-side health checking (gRFC A17) and
/// outlier detection (gRFC A50).
extension DemoScenario {
    static let unhealthy = DemoScenario(
        name: "unhealthy",
        summary: """
            A pod's database goes away: it answers health checks NOT_SERVING and fails its RPCs, but its connection is fine.
            round_robin keeps sending it 1/N (failures); with client-side health checking (A17) it gets none and stays connected.
            """,
        policy: .roundRobin, identityHeader: nil, rps: { _ in 200 },
        steps: { n in
            let p = pods(n)
            return [
                Step(at: 0, caption: "\(n) pods, round_robin, no health checking: every READY connection gets its share",
                     actions: [.start(p, .dependsOnDatabase), .publish(p.map { .ready($0) }), .mark("start")]),
                Step(at: 4, caption: "\(p[0]) lost its database: NOT_SERVING, its RPCs fail UNAVAILABLE — but its connection is READY, so round_robin keeps sending it 1/\(n)",
                     actions: [.notServing([p[0]])]),
                Step(at: 5, caption: nil, actions: [.mark("unhealthy")]),
                Step(at: 10, caption: "client-side health checking on (--health-check): a Watch stream per subchannel; \(p[0]) answers NOT_SERVING → READY · unhealthy: no RPCs, connection kept",
                     actions: [.mark("no-health-check"), .healthCheck("")]),
                Step(at: 11.5, caption: nil, actions: [.mark("health-check")]),
                Step(at: 18, caption: "\(p[0])'s database is back: SERVING on the same connection, and it takes its share again (no reconnect)",
                     actions: [.mark("still-out"), .serving([p[0]])]),
                Step(at: 19.5, caption: nil, actions: [.mark("back")]),
                Step(at: 24, caption: nil, actions: [.mark("end")]),
            ]
        },
        checks: { r in
            let bad = pod(0)
            let before = r.failed(from: "unhealthy", to: "no-health-check")[bad] ?? 0
            let out = r.completed(from: "health-check", to: "still-out")
            let back = r.completed(from: "back", to: "end")[bad] ?? 0
            let laterFailures = r.failedTotal(at: "end") - r.failedTotal(at: "health-check")
            return [
                .init(name: "without health checks the NOT_SERVING pod still gets RPCs, and they fail", value: Double(before), passed: before > 0),
                .init(name: "with health checks it gets none", value: Double(out[bad] ?? 0), passed: (out[bad] ?? 0) == 0 && out.values.reduce(0, +) > 0),
                .init(name: "no failed RPCs once health checks took it out", value: Double(laterFailures), passed: laterFailures == 0),
                .init(name: "its connection stayed up (no reconnection)", value: Double(r.reconnectReasons.values.reduce(0, +)), passed: r.reconnectReasons.isEmpty),
                .init(name: "SERVING again: it takes traffic on the same connection", value: Double(back), passed: back > 0),
            ]
        })

    /// A50 as the story runs it: one-second sweeps, 2 s base ejection, failure percentage > 30 %.
    static let outlierConfig: OutlierDetectionConfig = {
        var c = OutlierDetectionConfig.failurePercentage(threshold: 30, minimumHosts: 3, requestVolume: 10, intervalMs: 1000,
                                                         baseEjectionTimeMs: 2000, maxEjectionPercent: 50)
        c.maxEjectionTimeMs = 30_000
        return c
    }()

    static let outlier: DemoScenario = {
        var s = DemoScenario(
            name: "outlier",
            summary: """
                A pod fails half its RPCs while its connection stays READY. Outlier detection (A50, failure percentage > 30 %)
                ejects it, lets it back after 2 s, ejects it again for 4 s, then 6 s — READY · ejected, why, back in.
                """,
            policy: .roundRobin, identityHeader: nil, rps: { _ in 200 },
            steps: { n in
                let p = pods(max(n, 3))
                return [
                    Step(at: 0, caption: "\(p.count) pods, round_robin inside outlier detection (sweep every 1 s, eject when failures > 30 %); \(p[0]) fails half its RPCs",
                         actions: [.start([p[0]], .failing(rate: 0.5)), .start(Array(p.dropFirst()), .normal), .publish(p.map { .ready($0) }), .mark("start")]),
                    Step(at: 3, caption: "the sweep saw \(p[0]) fail ~50 %: ejected (READY · ejected) — the connection stays, round_robin just skips it",
                         actions: []),
                    Step(at: 8, caption: "each time it comes back it fails again and is ejected for longer: base × multiplier (2 s, 4 s, 6 s…)",
                         actions: []),
                    Step(at: 20, caption: nil, actions: [.mark("end")]),
                ]
            },
            checks: { r in
                let bad = pod(0)
                let ejections = r.outlierLines.filter { $0.contains("\(bad) ejected for") }
                let times = ejections.compactMap { line -> Double? in
                    guard let a = line.range(of: "ejected for "), let b = line.range(of: "s (×", range: a.upperBound..<line.endIndex) else { return nil }
                    return Double(line[a.upperBound..<b.lowerBound])
                }
                let backs = r.outlierLines.filter { $0.contains("\(bad) back after") }.count
                let all = r.completed(from: "start", to: "end")
                let total = all.values.reduce(0, +)
                let share = total > 0 ? Double(all[bad] ?? 0) / Double(total) : nil
                let others = r.failed(from: "start", to: "end").filter { $0.key != bad }.values.reduce(0, +)
                return [
                    .init(name: "ejected at least twice", value: Double(ejections.count), passed: ejections.count >= 2),
                    .init(name: "let back in between", value: Double(backs), passed: backs >= 1),
                    .init(name: "each ejection longer than the last", value: times.last,
                          passed: times.count >= 2 && zip(times, times.dropFirst()).allSatisfy { $0 < $1 }),
                    .init(name: "the failing pod's share is well under 1/N", value: share, passed: share != nil && share! < 0.6 / Double(all.count)),
                    .init(name: "no failures on the healthy pods", value: Double(others), passed: others == 0),
                ]
            })
        s.outlierDetection = outlierConfig
        return s
    }()
}
