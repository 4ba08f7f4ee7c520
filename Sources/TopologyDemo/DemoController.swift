import Foundation
import TopologyCore
import TopologyResolvers
import TopologyServer
import TopologyTransport

/// Plays a scenario's steps on a timer: starts, drains and kills pods, publishes endpoint sets
/// through the resolver (and the ClusterIP's pods to the L4 proxy), switches policies, writes
/// captions to the event log, remembers phase totals, and at the end computes the verdict.
public final class DemoController: @unchecked Sendable {
    let story: DemoScenario
    let fleet: DemoFleet
    let proxy: TCPProxy?
    let resolver: ControlledResolver
    let engine: Engine
    let pods: Int
    let speed: Double
    private let queue = DispatchQueue(label: "grpctop.demo")
    private let lock = NSLock()
    private var record = DemoRecord()
    private var result: DemoVerdict?
    private var cancelled = false
    /// Envoy, for the `proxy` scenario (started by its step, stopped with the run).
    private var envoy: DemoEnvoy?
    var envoyBinary: String?

    init(story: DemoScenario, fleet: DemoFleet, proxy: TCPProxy?, resolver: ControlledResolver, engine: Engine, pods: Int, speed: Double) {
        self.story = story
        self.fleet = fleet
        self.proxy = proxy
        self.resolver = resolver
        self.engine = engine
        self.pods = pods
        self.speed = speed
    }

    /// The verdict, once the last step ran.
    public var verdict: DemoVerdict? { lock.lock(); defer { lock.unlock() }; return result }
    public var finished: Bool { verdict != nil }

    func start() {
        let steps = story.steps(pods)
        let t0 = DispatchTime.now()
        for (i, step) in steps.enumerated() {
            queue.asyncAfter(deadline: t0 + step.at / speed) { [self] in
                guard !isCancelled else { return }
                perform(step)
                if i == steps.count - 1 { conclude() }
            }
        }
    }

    private var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }

    func cancel() {
        lock.lock()
        cancelled = true
        lock.unlock()
    }

    /// Stops Envoy, if the scenario started one.
    func stopEnvoy() {
        lock.lock()
        let e = envoy
        envoy = nil
        lock.unlock()
        e?.stop()
    }

    private func conclude() {
        guard let model = try? engine.withModel({ $0 }).wait() else { return }
        lock.lock()
        record.finish(with: model)
        let checks = story.checks(record)
        let v = DemoVerdict(scenario: story.name, passed: checks.allSatisfy(\.passed), checks: checks)
        result = v
        lock.unlock()
        engine.submit(.notice(Notice(v.passed ? .info : .error, v.line)))
    }

    private func note(_ text: String) { engine.submit(.notice(Notice(.info, "demo: \(text)"))) }

    private func perform(_ step: DemoScenario.Step) {
        if let c = step.caption { engine.submit(.notice(Notice(.caption, c))) }
        for action in step.actions {
            switch action {
            case .start(let names, let kind):
                for name in names {
                    do {
                        _ = try fleet.start(name) { c in
                            switch kind {
                            case .normal: break
                            case .slow(let d):
                                c.delayMs = d
                                c.jitterMs = d / 5
                            case .overloaded(let d, let m):
                                c.delayMs = d
                                c.jitterMs = 0
                                c.maxConcurrentStreams = m
                            case .maxAge(let ms):
                                c.maxConnectionAgeMs = Int64(Double(ms) / speed)
                                c.maxConnectionAgeGraceMs = 5000
                            case .dependsOnDatabase:
                                c.failWhileNotServing = true
                            case .failing(let rate):
                                c.failRate = rate
                            }
                        }
                        note("pod \(name) started")
                    } catch {
                        engine.submit(.notice(Notice(.error, "demo: pod \(name) did not start: \(error)")))
                    }
                }
            case .publish(let list):
                resolver.push(list.compactMap { p in
                    switch p {
                    case .ready(let n): return fleet.endpoint(n)
                    case .starting(let n):
                        return fleet.endpoint(n).map { var e = $0; e.ready = false; e.serving = false; return e }
                    case .draining(let n):
                        return fleet.endpoint(n).map { var e = $0; e.ready = false; e.serving = true; e.terminating = true; return e }
                    }
                })
            case .service(let names):
                guard let proxy else { break }
                proxy.setBackends(names.compactMap { n in
                    fleet.endpoint(n).flatMap { e in
                        if case .tcp(let h, let p) = e.addresses[0] { return (name: n, host: h, port: p) }
                        return nil
                    }
                })
                let endpoint = Endpoint(addresses: [.tcp(host: proxy.boundHost, port: proxy.boundPort)],
                                        hostname: "web.default.svc.cluster.local", metadata: ["service": "ClusterIP web (kube-proxy: built-in L4 proxy)"])
                resolver.push([endpoint], backends: names)
            case .drain(let names):
                for name in names {
                    fleet.drain(name)
                    note("pod \(name) terminating (SIGTERM: GOAWAY, drain)")
                }
            case .kill(let names):
                for name in names {
                    fleet.kill(name)
                    note("pod \(name) killed (SIGKILL: connections reset)")
                }
            case .setPolicy(let p):
                engine.submit(.policyChanged(p))
            case .reconnect:
                let id = try? engine.withModel { m in m.subchannelRows.first { $0.state == .ready }?.id }.wait()
                if let id = id ?? nil { engine.submit(.reconnectRequested(id)) }
            case .captionLanding:
                guard let a = proxy?.assignments, a.count >= 2 else { break }
                let (prev, last) = (a[a.count - 2], a[a.count - 1])
                engine.submit(.notice(Notice(.caption, prev == last
                    ? "the new connection landed on \(last) again: still one pod for everything — balance by luck, per connection"
                    : "the new connection landed on \(last): traffic moved, but it is still one pod at a time — balance by luck, per connection")))
            case .envoy(let names):
                guard let bin = envoyBinary ?? DemoEnvoy.binary() else {
                    engine.submit(.notice(Notice(.error, "demo: \(DemoEnvoy.howToGet)")))
                    break
                }
                let pods: [(host: String, port: Int)] = names.compactMap { n in
                    fleet.endpoint(n).flatMap { e in
                        if case .tcp(let h, let p) = e.addresses[0] { return (h, p) }
                        return nil
                    }
                }
                do {
                    let engine = self.engine
                    let e = try DemoEnvoy(binary: bin, pods: pods) { engine.submit($0) }
                    lock.lock()
                    envoy = e
                    lock.unlock()
                    resolver.push([Endpoint(addresses: [.tcp(host: "127.0.0.1", port: e.listenerPort)], hostname: "envoy",
                                            metadata: ["proxy": "Envoy (admin \(e.admin))"])], backends: names)
                    note("Envoy started in front of \(names.count) pods (admin http://\(e.admin))")
                } catch {
                    engine.submit(.notice(Notice(.error, "demo: \(error)")))
                }
            case .notServing(let names):
                for name in names {
                    fleet.setServing(name, false)
                    note("pod \(name) answers health checks NOT_SERVING")
                }
            case .serving(let names):
                for name in names {
                    fleet.setServing(name, true)
                    note("pod \(name) answers health checks SERVING")
                }
            case .healthCheck(let service):
                engine.submit(.healthCheckChanged(service))
            case .mark(let name):
                // Let the collector report what finished by now (one tick), then read totals.
                Thread.sleep(forTimeInterval: 0.3)
                let totals = (try? engine.withModel { DemoRecord.totals($0) }.wait()) ?? [:]
                lock.lock()
                record.marks[name] = totals
                lock.unlock()
            }
        }
    }
}
