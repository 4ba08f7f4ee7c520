import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyRecording
import TopologyResolvers
import TopologyServer
import TopologyTransport

/// One scenario being played: its fleet, its kube-proxy (if any), its resolver, engine and controller.
public final class DemoRun: @unchecked Sendable {
    public let fleet: DemoFleet
    public let proxy: TCPProxy?
    public let engine: Engine
    public let controller: DemoController

    public init(story: DemoScenario, pods: Int, speed: Double, seed: UInt64?, group: EventLoopGroup, serverGroup: EventLoopGroup,
                recorder: RecordingWriter? = nil, version: String = "dev", envoy: String? = nil) throws {
        if story.needsEnvoy && (envoy ?? DemoEnvoy.binary()) == nil { throw DemoEnvoyError(DemoEnvoy.howToGet) }
        fleet = DemoFleet(group: serverGroup)
        if story.usesProxy {
            let p = seed.map { TCPProxy(group: serverGroup, rng: SeededGenerator(seed: $0)) } ?? TCPProxy(group: serverGroup)
            _ = try p.start()
            proxy = p
        } else {
            proxy = nil
        }
        let resolver = ControlledResolver()
        var config = EngineConfig(target: "demo:\(story.name)", resolverName: "demo", authority: "web.default.svc")
        config.policy = story.policy
        config.rpc = .greeter(name: "demo")
        config.traffic = .rate(story.rps(pods))
        config.identityHeader = story.identityHeader
        config.timeoutMs = 5000
        config.version = version
        // The story's sweeps and ejection times keep pace with --speed.
        config.outlierDetection = story.outlierDetection.map { od in
            var c = od
            c.intervalMs = max(100, Millis(Double(od.intervalMs) / speed))
            c.baseEjectionTimeMs = Millis(Double(od.baseEjectionTimeMs) / speed)
            c.maxEjectionTimeMs = Millis(Double(od.maxEjectionTimeMs) / speed)
            return c
        }
        engine = try Engine(config: config, resolver: resolver, loop: group.next())
        if let recorder { engine.observe { timed, model in recorder.record(timed, model: model) } }
        controller = DemoController(story: story, fleet: fleet, proxy: proxy, resolver: resolver, engine: engine, pods: pods, speed: speed)
        controller.envoyBinary = envoy
        try engine.start().wait()
        controller.start()
    }

    /// Stops the script, the client (in-flight RPCs get `grace`), then the pods and the proxy.
    public func stop(grace: TimeAmount) -> Model {
        controller.cancel()
        let model = (try? engine.stop(grace: grace).wait()) ?? Model()
        controller.stopEnvoy()
        fleet.stopAll()
        proxy?.stop()
        return model
    }
}

/// The interactive demo: one scenario at a time behind the dashboard; `n` (or the end of a
/// scenario, when looping) tears it down in the background and starts the next.
public final class DemoSession: @unchecked Sendable {
    private let lock = NSLock()
    private var current: DemoRun
    private var index: Int
    private let order = DemoScenario.loopOrder
    private let loop: Bool
    private let makeRun: (DemoScenario) throws -> DemoRun
    private var verdicts: [DemoVerdict] = []
    private var finishedAt: DispatchTime?
    /// Seconds a finished scenario stays on screen before the next starts.
    static let pause = 5.0

    public init(first: DemoScenario, loop: Bool, makeRun: @escaping (DemoScenario) throws -> DemoRun) throws {
        index = order.firstIndex { $0.name == first.name } ?? 0
        self.loop = loop
        self.makeRun = makeRun
        current = try makeRun(first)
    }

    public var engine: Engine { lock.lock(); defer { lock.unlock() }; return current.engine }

    /// Called by the dashboard loop between frames.
    public func poll() {
        lock.lock()
        let run = current
        guard let v = run.controller.verdict else { lock.unlock(); return }
        if finishedAt == nil {
            finishedAt = .now()
            verdicts.append(v)
            if loop {
                let next = order[(index + 1) % order.count].name
                run.engine.submit(.notice(Notice(.caption, "\(v.line) — next: \(next) in \(Int(Self.pause)) s (n: now)")))
            } else {
                run.engine.submit(.notice(Notice(.caption, "\(v.line) — n: next scenario, q: quit")))
            }
        }
        let due = loop && DispatchTime.now().uptimeNanoseconds - finishedAt!.uptimeNanoseconds > UInt64(Self.pause * 1e9)
        lock.unlock()
        if due { next() }
    }

    /// `n`: the next scenario in loop order.
    public func next() {
        lock.lock()
        let old = current
        index = (index + 1) % order.count
        let story = order[index]
        finishedAt = nil
        lock.unlock()
        old.controller.cancel()
        DispatchQueue.global().async { _ = old.stop(grace: .milliseconds(500)) }
        do {
            let run = try makeRun(story)
            lock.lock()
            current = run
            lock.unlock()
        } catch {
            old.engine.submit(.notice(Notice(.error, "demo: \(story.name) did not start: \(error)")))
        }
    }

    /// Stops the current scenario: its model, the verdicts so far, and its own verdict if it ended.
    public func finish() -> (Model, [DemoVerdict], DemoVerdict?) {
        lock.lock()
        let run = current
        let all = verdicts
        lock.unlock()
        let v = run.controller.verdict
        return (run.stop(grace: .seconds(1)), all, v)
    }
}

/// A fleet of in-process test servers, by pod name.
public final class DemoFleet: @unchecked Sendable {
    private let group: EventLoopGroup
    private let lock = NSLock()
    private var servers: [String: TestServer] = [:]
    private var addresses: [String: String] = [:]

    init(group: EventLoopGroup) { self.group = group }

    /// Starts a pod on 127.0.0.1 (a free port) and returns its endpoint.
    func start(_ name: String, configure: (inout ServerConfig) -> Void = { _ in }) throws -> Endpoint {
        var c = ServerConfig(name: name)
        c.delayMs = 2
        c.jitterMs = 3
        c.drainGraceMs = 10_000
        configure(&c)
        let server = try TestServer(config: c, group: group)
        let address = try server.start()
        lock.lock()
        servers[name] = server
        addresses[name] = address
        lock.unlock()
        return endpoint(name)!
    }

    func endpoint(_ name: String) -> Endpoint? {
        lock.lock()
        defer { lock.unlock() }
        guard let a = addresses[name], let colon = a.lastIndex(of: ":"), let port = Int(a[a.index(after: colon)...]) else { return nil }
        let n = name.unicodeScalars.reduce(0) { $0 &+ Int($1.value) }  // stable across runs
        return Endpoint(addresses: [.tcp(host: String(a[..<colon]), port: port)], pod: name, node: "node-\(n % 3)", zone: "zone-\(["a", "b"][n % 2])")
    }

    /// Graceful: GOAWAY, in-flight RPCs finish, then the listener is gone.
    func drain(_ name: String) {
        lock.lock()
        let s = servers.removeValue(forKey: name)
        lock.unlock()
        _ = s?.drain()
    }

    /// Health checks answer NOT_SERVING (or SERVING again); the pod keeps serving RPCs.
    func setServing(_ name: String, _ value: Bool) {
        lock.lock()
        let s = servers[name]
        lock.unlock()
        s?.setServing(value)
    }

    /// Abrupt: connections reset, the listener gone, in-flight RPCs lost.
    func kill(_ name: String) {
        lock.lock()
        let s = servers.removeValue(forKey: name)
        lock.unlock()
        s?.kill()
    }

    func stopAll() {
        lock.lock()
        let all = Array(servers.values)
        servers.removeAll()
        lock.unlock()
        for s in all { _ = try? s.drain().wait() }
    }
}
