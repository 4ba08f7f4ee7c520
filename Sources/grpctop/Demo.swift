import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyRecording
import TopologyResolvers
import TopologyServer
import TopologyTransport

/// `grpctop demo`: the load-balancing stories, live, on one machine: a fleet of real
/// `grpctop serve` servers in this process (127.0.0.1, free ports), a scripted controller that
/// plays Kubernetes through a resolver with the real contract (and kube-proxy, with a real L4
/// TCP proxy), and the dashboard watching it.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play load-balancing stories on a local fleet, with the dashboard (no cluster needed).",
        discussion: """
            With no --scenario: rollout, then the others in turn (n skips to the next). Each scenario \
            ends with a verdict; with --batch it runs headless and exits 1 if a verdict fails.
            """)

    @Option(help: "Scenario to play (see --list); default: all of them in turn, rollout first.") var scenario: String?
    @Flag(help: "List the scenarios.") var list = false
    @Flag(help: "Run headless: print snapshots and the verdict.") var batch = false
    @Option(help: "Pace of the script: 2 plays it twice as fast.") var speed = 1.0
    @Option(help: "Fleet size (2-20; scale is always 3 → 6 → 2).") var pods = 3
    @Option(help: "Seed for kube-proxy's random pod picks (clusterip, max-age), to replay a story exactly.") var seed: UInt64?
    @Option(help: "Snapshot format with --batch: table or json.") var output = "table"
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard.") var noColor = false
    @Option(help: "Record the scenario's events to FILE (FILE.gz compresses) for grpctop replay; needs --scenario.") var record: String?

    func run() throws {
        if list {
            for s in DemoScenario.all {
                let lines = s.summary.split(separator: "\n")
                print("\(s.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(lines.first ?? "")")
                for l in lines.dropFirst() { print("           \(l)") }
            }
            return
        }
        var first = DemoScenario.rollout
        if let scenario {
            guard let s = DemoScenario.named(scenario) else {
                throw UsageFailure("--scenario '\(scenario)' is not known: choose one of \(DemoScenario.all.map(\.name).joined(separator: ", "))")
            }
            first = s
        }
        guard speed >= 0.01, speed <= 100 else { throw UsageFailure("--speed \(formatNumber(speed)) is out of range (0.01 to 100; 1 is the normal pace)") }
        guard (2...20).contains(pods) else { throw UsageFailure("--pods must be between 2 and 20") }
        guard output == "table" || output == "json" else { throw UsageFailure("--output must be table or json") }
        if record != nil && scenario == nil {
            throw UsageFailure("--record records one scenario: add --scenario NAME (see --list)")
        }
        let recorder = try record.map { try RecordingWriter.open($0, target: "demo:\(first.name)") }
        defer { recorder?.finish() }
        let headless = batch || isatty(STDOUT_FILENO) == 0 || isatty(STDIN_FILENO) == 0
        if !batch && headless {
            FileHandle.standardError.write(Data("grpctop: stdout is not a terminal; running in --batch mode\n".utf8))
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer {
            try? group.syncShutdownGracefully()
            try? serverGroup.syncShutdownGracefully()
        }
        func report(_ model: Model, _ verdict: DemoVerdict?) throws {
            let summary = Summary(model)
            try printReport(summary, json: output == "json", table: summary.table())
            if let verdict {
                try printReport(verdict, json: output == "json", table: verdict.text)
            } else if output != "json" {
                print("verdict: \(model.session?.target ?? "demo") not reached (stopped before the end)")
            }
            fflush(nil)
        }

        if headless {
            // One scenario, or every scenario once in loop order.
            let stories = scenario == nil ? DemoScenario.loopOrder : [first]
            var allPassed = true
            for story in stories {
                let run = try DemoRun(story: story, pods: pods, speed: speed, seed: seed, group: group, serverGroup: serverGroup, recorder: recorder)
                while !run.controller.finished {
                    Thread.sleep(forTimeInterval: 1)
                    let snapshot = try run.engine.withModel { m in
                        recorder?.markSnapshot(at: m.now)
                        return Snapshot(m)
                    }.wait()
                    print(output == "json" ? try jsonLine(snapshot) : snapshot.table())
                    fflush(nil)
                }
                let verdict = run.controller.verdict
                let model = run.stop(grace: .seconds(1))
                try report(model, verdict)
                allPassed = allPassed && verdict?.passed == true
            }
            if !allPassed { throw ExitCode(1) }
            return
        }

        let (pods, speed, seed) = (pods, speed, seed)
        var firstRun = true
        let session = try DemoSession(first: first, loop: scenario == nil) { story in
            // Only the scenario asked for is recorded (one session per recording).
            defer { firstRun = false }
            return try DemoRun(story: story, pods: pods, speed: speed, seed: seed, group: group, serverGroup: serverGroup, recorder: firstRun ? recorder : nil)
        }
        let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let (_, note) = try DashboardLoop.run(engine: { session.engine }, colors: colors, demo: session, recording: recorder.map { r in { r.headerStatus } })
        let (model, verdicts, current) = session.finish()
        for v in verdicts.dropLast(current == nil ? 0 : 1) { print(v.line) }
        try report(model, current)
        if let note { FileHandle.standardError.write(Data("grpctop: \(note)\n".utf8)) }
    }
}

/// One scenario being played: its fleet, its kube-proxy (if any), its resolver, engine and controller.
final class DemoRun: @unchecked Sendable {
    let fleet: DemoFleet
    let proxy: TCPProxy?
    let engine: Engine
    let controller: DemoController

    init(story: DemoScenario, pods: Int, speed: Double, seed: UInt64?, group: EventLoopGroup, serverGroup: EventLoopGroup, recorder: RecordingWriter? = nil) throws {
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
        config.version = GRPCTop.version
        engine = try Engine(config: config, resolver: resolver, loop: group.next())
        if let recorder { engine.observe { timed, model in recorder.record(timed, model: model) } }
        controller = DemoController(story: story, fleet: fleet, proxy: proxy, resolver: resolver, engine: engine, pods: pods, speed: speed)
        try engine.start().wait()
        controller.start()
    }

    /// Stops the script, the client (in-flight RPCs get `grace`), then the pods and the proxy.
    func stop(grace: TimeAmount) -> Model {
        controller.cancel()
        let model = (try? engine.stop(grace: grace).wait()) ?? Model()
        fleet.stopAll()
        proxy?.stop()
        return model
    }
}

/// The interactive demo: one scenario at a time behind the dashboard; `n` (or the end of a
/// scenario, when looping) tears it down in the background and starts the next.
final class DemoSession: DemoDriver, @unchecked Sendable {
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

    init(first: DemoScenario, loop: Bool, makeRun: @escaping (DemoScenario) throws -> DemoRun) throws {
        index = order.firstIndex { $0.name == first.name } ?? 0
        self.loop = loop
        self.makeRun = makeRun
        current = try makeRun(first)
    }

    var engine: Engine { lock.lock(); defer { lock.unlock() }; return current.engine }

    /// Called by the dashboard loop between frames.
    func poll() {
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
    func next() {
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
    func finish() -> (Model, [DemoVerdict], DemoVerdict?) {
        lock.lock()
        let run = current
        let all = verdicts
        lock.unlock()
        let v = run.controller.verdict
        return (run.stop(grace: .seconds(1)), all, v)
    }
}

/// A fleet of in-process test servers, by pod name.
final class DemoFleet: @unchecked Sendable {
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
