import Foundation
import NIOCore
import TopologyCore
import TopologyResolvers
import TopologyTransport

/// One load-balancing story: a script of timed steps (each with a caption, also written to the
/// event log) and the checks that make its verdict.
struct DemoScenario: Sendable {
    enum Action: Sendable {
        case startPods([Int])
        /// The endpoint set the "Kubernetes API" now returns.
        case publish([Int])
        /// Graceful termination: GOAWAY, in-flight RPCs finish.
        case drainPods([Int])
        case setPolicy(LBPolicy)
        /// Remember every backend's totals under this name (phases for the verdict).
        case mark(String)
    }

    struct Step: Sendable {
        var at: Double
        var caption: String?
        var actions: [Action]
    }

    var name: String
    var summary: String
    var policy: LBPolicy
    var rps: Double
    var duration: Double
    var steps: @Sendable (Int) -> [Step]
    var checks: @Sendable (DemoRecord) -> [DemoVerdict.Check]

    static func pod(_ i: Int) -> String {
        let suffixes = ["xk2lp", "b8h2m", "q9w4t", "m3n7v", "z5r1c", "h6j8d", "c4f9s", "p2g6y", "t7k3a", "w1d5e",
                        "n8s2q", "r4v6b", "j9x1u", "e3m7h", "a5z2k", "y6c8n", "g2t4w", "u7b9f", "k1q3r", "d8h5m"]
        return "web-7d9f8c6b5-\(suffixes[i % suffixes.count])"
    }

    static let all: [DemoScenario] = [headless, scale]

    static let headless = DemoScenario(
        name: "headless",
        summary: "A headless Service: the resolver returns every pod; round_robin spreads RPCs evenly, then pick_first collapses onto one pod.",
        policy: .roundRobin, rps: 200, duration: 16,
        steps: { n in [
            Step(at: 0, caption: "headless Service: the resolver returns all \(n) pods; round_robin keeps a connection to each and spreads RPCs evenly",
                 actions: [.startPods(Array(0..<n)), .publish(Array(0..<n)), .mark("start")]),
            Step(at: 8, caption: "switched to pick_first (l does this live): one connection, so every RPC goes to one pod",
                 actions: [.mark("round_robin"), .setPolicy(.pickFirst)]),
            // RPCs in flight at the switch still finish on the old connections: measure after.
            Step(at: 9.5, caption: nil, actions: [.mark("pick_first-settled")]),
            Step(at: 16, caption: nil, actions: [.mark("pick_first")]),
        ] },
        checks: { r in
            let rr = r.delta(from: "start", to: "round_robin")
            let pf = r.delta(from: "pick_first-settled", to: "pick_first")
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
        summary: "3 → 6 → 2 pods: new endpoints appear, connect and take their share; removed ones drain and disappear.",
        policy: .roundRobin, rps: 200, duration: 15,
        steps: { _ in [
            Step(at: 0, caption: "3 pods behind the Service, round_robin over all of them",
                 actions: [.startPods([0, 1, 2]), .publish([0, 1, 2]), .mark("start")]),
            Step(at: 5, caption: "scaled up to 6: the new endpoints appear (+), connect and take their share",
                 actions: [.startPods([3, 4, 5]), .publish([0, 1, 2, 3, 4, 5])]),
            Step(at: 10, caption: "scaled down to 2: removed endpoints (-) lose their subchannels, then the pods drain",
                 actions: [.publish([3, 4]), .drainPods([0, 1, 2, 5]), .mark("scaled-down")]),
            Step(at: 12, caption: nil, actions: [.mark("settled")]),
            Step(at: 15, caption: nil, actions: [.mark("end")]),
        ] },
        checks: { r in
            let last = r.delta(from: "settled", to: "end")
            let carrying = Set(last.filter { $0.value > 0 }.map(\.key))
            let expected: Set<String> = [pod(3), pod(4)]
            return [
                .init(name: "only the last 2 pods carry traffic at the end", value: Double(carrying.count), passed: carrying == expected),
                .init(name: "all 6 pods served while scaled up", value: Double(r.delta(from: "start", to: "scaled-down").filter { $0.value > 0 }.count),
                      passed: r.delta(from: "start", to: "scaled-down").filter { $0.value > 0 }.count == 6),
                .init(name: "no failed RPCs", value: Double(r.failed), passed: r.failed == 0),
            ]
        })
}

func jain(_ totals: [String: Int]) -> Double? { Fairness.jain(totals.values.map(Double.init)) }

/// Per-backend totals remembered at each mark.
struct DemoRecord: Sendable {
    var marks: [String: [String: Int]] = [:]
    var failed = 0

    /// RPCs each backend completed between two marks.
    func delta(from a: String, to b: String) -> [String: Int] {
        let start = marks[a] ?? [:]
        var out: [String: Int] = [:]
        for (name, n) in marks[b] ?? [:] { out[name] = n - (start[name] ?? 0) }
        return out
    }
}

struct DemoVerdict: Codable, Sendable {
    struct Check: Codable, Sendable {
        var name: String
        var value: Double?
        var passed: Bool
    }
    var type = "verdict"
    var scenario: String
    var passed: Bool
    var checks: [Check]

    var text: String {
        var out = "verdict: \(scenario) \(passed ? "PASSED" : "FAILED")\n"
        for c in checks {
            out += "  [\(c.passed ? "ok" : "FAIL")] \(c.name)\(c.value.map { String(format: " (%.3f)", $0) } ?? "")\n"
        }
        return out
    }
}

/// Plays a scenario's steps on a timer: starts and drains pods, publishes endpoint sets through
/// the resolver, switches policies, writes captions to the event log, remembers phase totals.
final class DemoController: @unchecked Sendable {
    let story: DemoScenario
    let fleet: DemoFleet
    let resolver: ControlledResolver
    let engine: Engine
    let pods: Int
    let speed: Double
    private let queue = DispatchQueue(label: "grpctop.demo")
    private let lock = NSLock()
    private var record = DemoRecord()
    private var done = false
    private var cancelled = false

    init(story: DemoScenario, fleet: DemoFleet, resolver: ControlledResolver, engine: Engine, pods: Int, speed: Double) {
        self.story = story
        self.fleet = fleet
        self.resolver = resolver
        self.engine = engine
        self.pods = pods
        self.speed = speed
    }

    var finished: Bool { lock.lock(); defer { lock.unlock() }; return done }

    func start() {
        let steps = story.steps(pods)
        let t0 = DispatchTime.now()
        for (i, step) in steps.enumerated() {
            queue.asyncAfter(deadline: t0 + step.at / speed) { [self] in
                guard !isCancelled else { return }
                perform(step)
                if i == steps.count - 1 {
                    lock.lock()
                    done = true
                    lock.unlock()
                }
            }
        }
    }

    private var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }

    func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    private func perform(_ step: DemoScenario.Step) {
        if let c = step.caption { engine.submit(.notice(Notice(.caption, c))) }
        for action in step.actions {
            switch action {
            case .startPods(let ids):
                for i in ids {
                    do {
                        _ = try fleet.start(DemoScenario.pod(i))
                        engine.submit(.notice(Notice(.info, "demo: pod \(DemoScenario.pod(i)) started")))
                    } catch {
                        engine.submit(.notice(Notice(.error, "demo: pod \(DemoScenario.pod(i)) did not start: \(error)")))
                    }
                }
            case .publish(let ids):
                resolver.push(ids.compactMap { fleet.endpoint(DemoScenario.pod($0)) })
            case .drainPods(let ids):
                for i in ids {
                    fleet.drain(DemoScenario.pod(i))
                    engine.submit(.notice(Notice(.info, "demo: pod \(DemoScenario.pod(i)) terminating (GOAWAY, drain)")))
                }
            case .setPolicy(let p):
                engine.submit(.policyChanged(p))
            case .mark(let name):
                // Let the collector report what finished by now (one tick), then read totals.
                Thread.sleep(forTimeInterval: 0.3)
                let totals = (try? engine.withModel { m in
                    (Dictionary(uniqueKeysWithValues: m.backends.map { ($0.key, $0.value.traffic.total.completed) }), m.channel.total.failed)
                }.wait()) ?? ([:], 0)
                lock.lock()
                record.marks[name] = totals.0
                record.failed = totals.1
                lock.unlock()
            }
        }
    }

    func verdict(final model: Model) -> DemoVerdict {
        lock.lock()
        var r = record
        lock.unlock()
        r.failed = model.channel.total.failed
        let checks = story.checks(r)
        return DemoVerdict(scenario: story.name, passed: checks.allSatisfy(\.passed), checks: checks)
    }
}
