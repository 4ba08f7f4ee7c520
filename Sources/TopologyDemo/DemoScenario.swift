import Foundation
import NIOCore
import TopologyCore
import TopologyResolvers
import TopologyServer
import TopologyTransport

/// One load-balancing story: a script of timed steps (each with a caption, also written to the
/// event log) and the checks that make its verdict.
public struct DemoScenario: Sendable {
    /// How a pod's server behaves.
    enum Server: Sendable {
        case normal
        /// Answers after `delayMs` (so RPCs are in flight when something happens).
        case slow(delayMs: Int64)
        /// At most `maxStreams` concurrent streams and a slow handler: an overloaded pod.
        case overloaded(delayMs: Int64, maxStreams: Int)
        /// gRFC A9 MAX_CONNECTION_AGE.
        case maxAge(ms: Int64)
        /// Fails SayHello UNAVAILABLE while NOT_SERVING (its database is gone).
        case dependsOnDatabase
        /// Fails this fraction of RPCs (UNAVAILABLE).
        case failing(rate: Double)
    }

    /// One endpoint as the "Kubernetes API" (an EndpointSlice) describes it.
    enum Published: Sendable {
        case ready(String)
        /// Created, readiness probe not yet passed.
        case starting(String)
        /// Being deleted: serving + terminating, not ready.
        case draining(String)
    }

    enum Action: Sendable {
        case start([String], Server)
        /// The endpoint set the resolver now returns (a headless Service's pods).
        case publish([Published])
        /// A ClusterIP Service: kube-proxy (the built-in L4 proxy) balances new connections over
        /// these pods; the resolver returns the one virtual IP and names the pods behind it.
        case service([String])
        /// Graceful termination (SIGTERM): GOAWAY, in-flight RPCs finish.
        case drain([String])
        /// Abrupt termination (SIGKILL, node loss): connections reset, listener gone.
        case kill([String])
        case setPolicy(LBPolicy)
        /// A new connection on the client's READY subchannel (what `x` does).
        case reconnect
        /// Says where kube-proxy sent the newest connection.
        case captionLanding
        /// Envoy in front of these pods; its listener is the client's one endpoint.
        case envoy([String])
        /// Pods answer health checks NOT_SERVING (their connections stay up).
        case notServing([String])
        /// …and SERVING again.
        case serving([String])
        /// Client-side health checking (A17) on, with this service ("" = the whole server).
        case healthCheck(String)
        /// Remember every backend's totals under this name (phases for the verdict).
        case mark(String)
    }

    struct Step: Sendable {
        var at: Double
        var caption: String?
        var actions: [Action]
    }

    public var name: String
    /// Two lines: what happens, and what to look at (`--list`, README).
    public var summary: String
    var policy: LBPolicy
    /// Backends named by the `x-served-by` response header (behind a proxy) instead of by endpoint.
    var identityHeader: String?
    var rps: @Sendable (Int) -> Double
    var steps: @Sendable (Int) -> [Step]
    var checks: @Sendable (DemoRecord) -> [DemoVerdict.Check]

    var usesProxy: Bool { identityHeader != nil && !needsEnvoy }
    /// gRFC A50 outlier detection around `policy` (the `outlier` story).
    var outlierDetection: OutlierDetectionConfig?
    /// Plays only where Envoy is installed (`proxy`).
    public var needsEnvoy = false

    /// A Deployment pod name: `web-<pod-template-hash>-<suffix>`; revision 2 is the rollout's.
    static func pod(_ i: Int, rev: Int = 1) -> String {
        let suffixes = ["xk2lp", "b8h2m", "q9w4t", "m3n7v", "z5r1c", "h6j8d", "c4f9s", "p2g6y", "t7k3a", "w1d5e",
                        "n8s2q", "r4v6b", "j9x1u", "e3m7h", "a5z2k", "y6c8n", "g2t4w", "u7b9f", "k1q3r", "d8h5m"]
        let hash = rev == 1 ? "7d9f8c6b5" : "5c48d7f9b"
        return "web-\(hash)-\(suffixes[(i + (rev == 1 ? 0 : 7)) % suffixes.count])"
    }

    static func pods(_ n: Int, rev: Int = 1) -> [String] { (0..<n).map { pod($0, rev: rev) } }

    /// `grpctop demo --list` and the README, in the issue's order.
    public static let all: [DemoScenario] = [clusterip, headless, proxy, scale, kill, rollout, maxAge, overload, unhealthy, outlier]
    /// With no `--scenario`: rollout first, then the others in turn (`proxy` only with Envoy).
    public static var loopOrder: [DemoScenario] {
        [rollout, clusterip, headless, proxy, scale, kill, maxAge, overload, unhealthy, outlier].filter { !$0.needsEnvoy || DemoEnvoy.binary() != nil }
    }

    public static func named(_ name: String) -> DemoScenario? { all.first { $0.name == name } }

    /// Whether Envoy is there for `proxy` (`--envoy BIN` sets GRPCTOP_ENVOY; else PATH), and
    /// how to get it.
    public static var hasEnvoy: Bool { DemoEnvoy.binary() != nil }
    public static var envoyHint: String { DemoEnvoy.howToGet }

    // MARK: - the stories

    static let clusterip = DemoScenario(
        name: "clusterip",
        summary: """
            A ClusterIP Service: one virtual IP, kube-proxy (a built-in L4 proxy) picks a pod per connection.
            One subchannel, one pod takes every RPC (Traffic per pod, fairness ≈ 1/N); a new connection lands by luck.
            """,
        policy: .pickFirst, identityHeader: "x-served-by", rps: { _ in 200 },
        steps: { n in [
            Step(at: 0, caption: "ClusterIP Service: the resolver returns one virtual IP; kube-proxy picks a pod per connection, not per RPC",
                 actions: [.start(pods(n), .normal), .service(pods(n))]),
            Step(at: 1.5, caption: nil, actions: [.mark("start")]),
            Step(at: 3, caption: "one HTTP/2 connection, so one pod serves every RPC and the other \(n - 1) idle: fairness ≈ 1/\(n)", actions: []),
            Step(at: 9, caption: "a second connection (x does this live): kube-proxy picks a pod again, at random",
                 actions: [.mark("one-connection"), .reconnect]),
            Step(at: 10.5, caption: nil, actions: [.captionLanding, .mark("second-settled")]),
            Step(at: 16, caption: nil, actions: [.mark("end")]),
        ] },
        checks: { r in
            let one = r.completed(from: "start", to: "one-connection")
            let total = one.values.reduce(0, +)
            let top = one.values.max() ?? 0
            let second = r.completed(from: "second-settled", to: "end").values.reduce(0, +)
            return [
                .init(name: "one connection: one pod takes ≥ 99 %", value: total > 0 ? Double(top) / Double(total) : nil,
                      passed: total > 0 && Double(top) / Double(total) >= 0.99),
                .init(name: "fairness over the \(one.count) pods ≤ 0.5", value: jain(one), passed: one.count >= 2 && (jain(one) ?? 1) <= 0.5),
                .init(name: "the new connection carries the traffic", value: Double(second), passed: second > 0),
                .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
            ]
        })

    static let proxy: DemoScenario = {
        var s = DemoScenario(
            name: "proxy",
            summary: """
                The same fleet behind Envoy (round_robin, active gRPC health checks): one client connection, Envoy spreads every RPC (fairness ≈ 1.0).
                A pod turns NOT_SERVING: Envoy's health check takes it out, seen on both levels (Traffic per pod and the Proxy pane).
                """,
            policy: .pickFirst, identityHeader: "x-served-by", rps: { _ in 200 },
            steps: { n in
                let p = pods(n)
                return [
                    Step(at: 0, caption: "the third cure: a proxy balancing per request — one client connection to Envoy, Envoy round_robin over \(n) pods",
                         actions: [.start(p, .normal), .envoy(p)]),
                    Step(at: 3, caption: "Traffic per pod (the client's level, by x-served-by) and the Envoy pane (the proxy's level) agree: every pod gets 1/\(n)",
                         actions: [.mark("start")]),
                    Step(at: 10, caption: "\(p[0]) answers health checks NOT_SERVING: Envoy's active health check takes it out; the client's one connection is untouched",
                         actions: [.mark("balanced"), .notServing([p[0]])]),
                    Step(at: 12, caption: nil, actions: [.mark("out")]),
                    Step(at: 20, caption: nil, actions: [.mark("end")]),
                ]
            },
            checks: { r in
                let balanced = r.completed(from: "start", to: "balanced")
                let after = r.completed(from: "out", to: "end")
                let out = pod(0)
                return [
                    .init(name: "Envoy spreads the one connection's RPCs: fairness ≥ 0.9", value: jain(balanced),
                          passed: balanced.count >= 2 && (jain(balanced) ?? 0) >= 0.9),
                    .init(name: "the NOT_SERVING pod gets nothing after Envoy's health check", value: Double(after[out] ?? 0),
                          passed: (after[out] ?? 0) == 0 && after.values.reduce(0, +) > 0),
                    .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
                ]
            })
        s.needsEnvoy = true
        return s
    }()

    static let headless = DemoScenario(
        name: "headless",
        summary: """
            A headless Service: the resolver returns every pod; round_robin keeps a connection to each.
            RPCs spread evenly (fairness ≥ 0.95), then pick_first (l) collapses them onto one pod.
            """,
        policy: .roundRobin, identityHeader: nil, rps: { _ in 200 },
        steps: { n in [
            Step(at: 0, caption: "headless Service: the resolver returns all \(n) pods; round_robin keeps a connection to each and spreads RPCs evenly",
                 actions: [.start(pods(n), .normal), .publish(pods(n).map { .ready($0) }), .mark("start")]),
            Step(at: 8, caption: "switched to pick_first (l does this live): one connection, so every RPC goes to one pod",
                 actions: [.mark("round_robin"), .setPolicy(.pickFirst)]),
            // RPCs in flight at the switch still finish on the old connections: measure after.
            Step(at: 9.5, caption: nil, actions: [.mark("pick_first-settled")]),
            Step(at: 16, caption: nil, actions: [.mark("pick_first")]),
        ] },
        checks: { r in
            let rr = r.completed(from: "start", to: "round_robin")
            let pf = r.completed(from: "pick_first-settled", to: "pick_first")
            let pfTotal = pf.values.reduce(0, +)
            let top = pf.values.max() ?? 0
            return [
                .init(name: "round_robin fairness ≥ 0.95", value: jain(rr), passed: (jain(rr) ?? 0) >= 0.95),
                .init(name: "pick_first: one pod takes ≥ 99 %", value: pfTotal > 0 ? Double(top) / Double(pfTotal) : nil,
                      passed: pfTotal > 0 && Double(top) / Double(pfTotal) >= 0.99),
                .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
            ]
        })

    static let scale = DemoScenario(
        name: "scale",
        summary: """
            3 → 6 → 2 pods behind a headless Service, round_robin.
            New endpoints appear (+), connect and take their share; removed ones lose their subchannel and drain.
            """,
        policy: .roundRobin, identityHeader: nil, rps: { _ in 200 },
        steps: { _ in
            let p = pods(6)
            return [
                Step(at: 0, caption: "3 pods behind the Service, round_robin over all of them",
                     actions: [.start(Array(p[0..<3]), .normal), .publish(p[0..<3].map { .ready($0) }), .mark("start")]),
                Step(at: 5, caption: "scaled up to 6: the new endpoints appear (+), connect and take their share",
                     actions: [.start(Array(p[3..<6]), .normal), .publish(p.map { .ready($0) })]),
                Step(at: 10, caption: "scaled down to 2: removed endpoints (-) lose their subchannels, then the pods drain",
                     actions: [.publish([.ready(p[3]), .ready(p[4])]), .drain([p[0], p[1], p[2], p[5]]), .mark("scaled-down")]),
                Step(at: 12, caption: nil, actions: [.mark("settled")]),
                Step(at: 15, caption: nil, actions: [.mark("end")]),
            ]
        },
        checks: { r in
            let p = pods(6)
            let last = r.completed(from: "settled", to: "end")
            let carrying = Set(last.filter { $0.value > 0 }.map(\.key))
            let up = r.completed(from: "start", to: "scaled-down").filter { $0.value > 0 }.count
            return [
                .init(name: "only the last 2 pods carry traffic at the end", value: Double(carrying.count), passed: carrying == [p[3], p[4]]),
                .init(name: "all 6 pods served while scaled up", value: Double(up), passed: up == 6),
                .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
            ]
        })

    static let kill = DemoScenario(
        name: "kill",
        summary: """
            The pod a pick_first client sits on is killed abruptly (SIGKILL: connections reset).
            Its in-flight RPCs fail, its subchannel goes TRANSIENT_FAILURE with a backoff, pick_first re-picks.
            """,
        policy: .pickFirst, identityHeader: nil, rps: { _ in 200 },
        steps: { n in
            let p = pods(n)
            return [
                Step(at: 0, caption: "pick_first: one connection, to the first pod in the resolver's list (\(p[0]))",
                     actions: [.start(p, .slow(delayMs: 40)), .publish(p.map { .ready($0) }), .mark("start")]),
                Step(at: 6, caption: "\(p[0]) killed (SIGKILL): connection reset, its in-flight RPCs fail; reconnecting is refused (TRANSIENT_FAILURE, backoff), pick_first moves on",
                     actions: [.mark("before-kill"), .kill([p[0]])]),
                Step(at: 8, caption: nil, actions: [.mark("recovered")]),
                Step(at: 10, caption: "Kubernetes notices the dead pod and removes its endpoint",
                     actions: [.publish(p.dropFirst().map { .ready($0) })]),
                Step(at: 15, caption: nil, actions: [.mark("end")]),
            ]
        },
        checks: { r in
            let killed = pod(0)
            let onKilled = r.failedBy(killed)
            let after = r.completed(from: "recovered", to: "end")
            let others = after.filter { $0.key != killed }.values.reduce(0, +)
            let laterFailures = r.failedTotal(at: "end") - r.failedTotal(at: "recovered")
            return [
                .init(name: "the kill failed RPCs in flight on \(killed)", value: Double(onKilled), passed: onKilled > 0),
                .init(name: "failures only on the killed pod", value: Double(r.failed - onKilled), passed: r.failed == onKilled),
                .init(name: "recovered: another pod serves", value: Double(others), passed: others > 0 && (after[killed] ?? 0) == 0),
                .init(name: "no failures after recovery", value: Double(laterFailures), passed: laterFailures == 0),
            ]
        })

    public static let rollout = DemoScenario(
        name: "rollout",
        summary: """
            A rolling update (maxSurge 1, maxUnavailable 0) from revision 7d9f8c6b5 to 5c48d7f9b.
            A new pod turns ready, an old one drains (serving + terminating, GOAWAY) and leaves; zero failed RPCs.
            """,
        policy: .roundRobin, identityHeader: nil, rps: { _ in 200 },
        steps: { n in
            let old = pods(n, rev: 1)
            let new = pods(n, rev: 2)
            var steps = [Step(at: 0, caption: "Deployment web at revision 7d9f8c6b5, \(n) pods behind a headless Service, round_robin",
                              actions: [.start(old, .slow(delayMs: 20)), .publish(old.map { .ready($0) }), .mark("start")])]
            func set(_ k: Int, newState: (String) -> Published, oldState: Published?) -> [Published] {
                Array(new[0..<k]).map { .ready($0) } + [newState(new[k])] + (oldState.map { [$0] } ?? []) + Array(old[(k + 1)...]).map { .ready($0) }
            }
            for k in 0..<n {
                let t = 4 + Double(k) * 6
                steps.append(Step(at: t, caption: "rolling update \(k + 1)/\(n): surge pod \(new[k]) created (revision 5c48d7f9b), not ready yet",
                                  actions: [.start([new[k]], .slow(delayMs: 20)), .publish(set(k, newState: { .starting($0) }, oldState: .ready(old[k])))]))
                steps.append(Step(at: t + 1.5, caption: "\(new[k]) is ready and takes traffic; \(old[k]) is draining (serving + terminating): no new RPCs, GOAWAY, in-flight RPCs finish",
                                  actions: [.publish(set(k, newState: { .ready($0) }, oldState: .draining(old[k]))), .drain([old[k]])]))
                steps.append(Step(at: t + 4.5, caption: nil,
                                  actions: [.publish(set(k, newState: { .ready($0) }, oldState: nil))]))
            }
            let end = 4 + Double(n) * 6
            steps.append(Step(at: end, caption: "rollout complete: every pod at revision 5c48d7f9b, and not one RPC failed (header: 0 failed)",
                              actions: [.mark("settled")]))
            steps.append(Step(at: end + 4, caption: nil, actions: [.mark("end")]))
            return steps
        },
        checks: { r in
            let last = r.completed(from: "settled", to: "end")
            let carrying = Set(last.filter { $0.value > 0 }.map(\.key))
            let newPods = Set(r.marks["end"]?.keys.filter { $0.contains("-5c48d7f9b-") } ?? [])
            return [
                .init(name: "zero failed RPCs", value: Double(r.failed), passed: r.failed == 0),
                .init(name: "only new-revision pods serve at the end", value: Double(carrying.count),
                      passed: !carrying.isEmpty && carrying.allSatisfy { $0.contains("-5c48d7f9b-") } && carrying == newPods),
            ]
        })

    static let maxAge = DemoScenario(
        name: "max-age",
        summary: """
            The ClusterIP again, but servers close connections older than 3 s (gRFC A9 MAX_CONNECTION_AGE).
            Each GOAWAY makes the client reconnect and kube-proxy pick again: traffic moves from pod to pod.
            """,
        policy: .pickFirst, identityHeader: "x-served-by", rps: { _ in 200 },
        steps: { n in [
            Step(at: 0, caption: "ClusterIP Service, servers with MAX_CONNECTION_AGE 3 s: each connection ends with a GOAWAY",
                 actions: [.start(pods(n), .maxAge(ms: 3000)), .service(pods(n)), .mark("start")]),
            Step(at: 7, caption: "every GOAWAY moves the client: the new connection goes wherever kube-proxy sends it — why max age cures sticky connections",
                 actions: []),
            Step(at: 20, caption: nil, actions: [.mark("end")]),
        ] },
        checks: { r in
            let goaways = r.reconnectReasons.filter { $0.key.hasPrefix("GOAWAY") }.values.reduce(0, +)
            let served = r.completed(from: "start", to: "end").filter { $0.value > 0 }.count
            return [
                .init(name: "≥ 2 reconnections after GOAWAY", value: Double(goaways), passed: goaways >= 2),
                .init(name: "traffic moved: ≥ 2 pods served", value: Double(served), passed: served >= 2),
                .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
            ]
        })

    static let overload = DemoScenario(
        name: "overload",
        summary: """
            One pod takes 4 concurrent streams and answers in 150 ms; round_robin still sends it 1/N.
            Its queue and latency climb; least_request then routes around it (a smaller share).
            """,
        // 1.25 × the slow pod's capacity (4 / 150 ms ≈ 27 RPC/s) under round_robin.
        policy: .roundRobin, identityHeader: nil, rps: { n in Double(n) * 33 },
        steps: { n in
            let p = pods(n)
            return [
                Step(at: 0, caption: "\(p[0]) is overloaded (4 streams, 150 ms per RPC); round_robin sends it 1/\(n) of the RPCs anyway: they queue on the client",
                     actions: [.start([p[0]], .overloaded(delayMs: 150, maxStreams: 4)), .start(Array(p.dropFirst()), .normal),
                               .publish(p.map { .ready($0) })]),
                Step(at: 2, caption: nil, actions: [.mark("start")]),
                Step(at: 10, caption: "switched to least_request: each RPC goes to the less loaded of two pods, so the queued-up pod gets few",
                     actions: [.mark("round_robin"), .setPolicy(.leastRequest)]),
                // Its client-side queue drains first; measure after.
                Step(at: 14, caption: nil, actions: [.mark("least_request-settled")]),
                Step(at: 22, caption: nil, actions: [.mark("end")]),
            ]
        },
        checks: { r in
            let slow = pod(0)
            func share(_ d: [String: Int]) -> Double? {
                let t = d.values.reduce(0, +)
                return t > 0 ? Double(d[slow] ?? 0) / Double(t) : nil
            }
            let rr = share(r.completed(from: "start", to: "round_robin"))
            let lr = share(r.completed(from: "least_request-settled", to: "end"))
            return [
                .init(name: "round_robin: the slow pod's share", value: rr, passed: (rr ?? 0) > 0),
                .init(name: "least_request gives the slow pod a smaller share", value: lr, passed: rr != nil && lr != nil && lr! < rr!),
            ]
        })
}

func jain(_ totals: [String: Int]) -> Double? { Fairness.jain(totals.values.map(Double.init)) }

/// Per-backend totals remembered at each mark, and the final model's counters.
struct DemoRecord: Sendable {
    struct Counts: Sendable {
        var completed = 0
        var failed = 0
    }
    var marks: [String: [String: Counts]] = [:]
    /// Every failed RPC of the run, including those that never reached a backend.
    var failed = 0
    var reconnectReasons: [String: Int] = [:]

    /// Outlier detection's log lines (`… ejected for 2.0s (×1): …`, `… back after …`).
    var outlierLines: [String] = []
    /// Pods whose subchannel is connected but held back at the end (`READY · unhealthy`…).
    var heldBack: [String] = []

    /// RPCs each backend failed between two marks.
    func failed(from a: String, to b: String) -> [String: Int] {
        let start = marks[a] ?? [:]
        var out: [String: Int] = [:]
        for (name, n) in marks[b] ?? [:] { out[name] = n.failed - (start[name]?.failed ?? 0) }
        return out
    }

    /// RPCs each backend completed between two marks.
    func completed(from a: String, to b: String) -> [String: Int] {
        let start = marks[a] ?? [:]
        var out: [String: Int] = [:]
        for (name, n) in marks[b] ?? [:] { out[name] = n.completed - (start[name]?.completed ?? 0) }
        return out
    }

    func failedTotal(at mark: String) -> Int { marks[mark]?.values.reduce(0) { $0 + $1.failed } ?? 0 }
    func failedBy(_ backend: String) -> Int { marks[Self.final]?[backend]?.failed ?? 0 }

    /// The mark the end of the run is kept under.
    static let final = "final"

    /// RPCs grpctop itself cancelled when it ended the scenario (UNFINISHED) are not the
    /// story's failures: the demo, not the fleet, cut them short.
    mutating func finish(with m: Model) {
        marks[Self.final] = Self.totals(m)
        failed = m.channel.total.failed - (m.channel.total.codes[GRPCStatusName.unfinished] ?? 0)
        reconnectReasons = m.reconnectReasons
        outlierLines = m.log.entries.map(\.text).filter { $0.hasPrefix("outlier detection: ") }
        heldBack = m.subchannelRows.filter { m.isHeldBack($0) }.map { $0.endpoint.displayName }
    }

    static func totals(_ m: Model) -> [String: Counts] {
        m.backends.mapValues {
            let t = $0.traffic.total
            return Counts(completed: t.completed - (t.codes[GRPCStatusName.unfinished] ?? 0), failed: t.failed - (t.codes[GRPCStatusName.unfinished] ?? 0))
        }
    }
}

public struct DemoVerdict: Codable, Sendable {
    public struct Check: Codable, Sendable {
        public var name: String
        var value: Double?
        public var passed: Bool
    }
    var type = "verdict"
    public var scenario: String
    public var passed: Bool
    public var checks: [Check]

    public var text: String {
        var out = "verdict: \(scenario) \(passed ? "PASSED" : "FAILED")\n"
        for c in checks {
            out += "  [\(c.passed ? "ok" : "FAIL")] \(c.name)\(c.value.map { String(format: " (%.3f)", $0) } ?? "")\n"
        }
        return out
    }

    /// One line for the caption and the event log.
    public var line: String {
        let failed = checks.filter { !$0.passed }.map(\.name)
        return "verdict: \(scenario) \(passed ? "PASSED" : "FAILED")" + (failed.isEmpty ? " (\(checks.map(\.name).joined(separator: "; ")))" : ": failed \(failed.joined(separator: "; "))")
    }
}
