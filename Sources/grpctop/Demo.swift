import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyResolvers
import TopologyServer
import TopologyTransport

/// `grpctop demo`: the load-balancing stories, live, on one machine: a fleet of real
/// `grpctop serve` servers in this process (127.0.0.1, free ports), a scripted controller that
/// plays Kubernetes through a resolver with the real contract, and the dashboard watching it.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a load-balancing story on a local fleet, with the dashboard (no cluster needed).",
        discussion: "Each scenario ends with a verdict; with --batch it runs headless and exits 1 if the verdict fails.")

    @Option(help: "Scenario to play (see --list).") var scenario = "headless"
    @Flag(help: "List the scenarios.") var list = false
    @Flag(help: "Run headless: print snapshots and the verdict.") var batch = false
    @Option(help: "Pace of the script: 2 plays it twice as fast.") var speed = 1.0
    @Option(help: "Fleet size, for the scenarios that take one (headless; scale is 3 → 6 → 2).") var pods = 3
    @Option(help: "Snapshot format with --batch: table or json.") var output = "table"
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard.") var noColor = false

    func run() throws {
        if list {
            for s in DemoScenario.all { print("\(s.name.padding(toLength: 10, withPad: " ", startingAt: 0)) \(s.summary)") }
            return
        }
        guard let story = DemoScenario.all.first(where: { $0.name == scenario }) else {
            throw UsageFailure("--scenario '\(scenario)' is not known: \(DemoScenario.all.map(\.name).joined(separator: ", "))")
        }
        guard speed > 0, speed <= 100 else { throw UsageFailure("--speed must be between 0 and 100") }
        guard (2...20).contains(pods) else { throw UsageFailure("--pods must be between 2 and 20") }
        guard output == "table" || output == "json" else { throw UsageFailure("--output must be table or json") }
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
        let fleet = DemoFleet(group: serverGroup)
        defer { fleet.stopAll() }
        let resolver = ControlledResolver()
        var config = EngineConfig(target: "demo:\(story.name)", resolverName: "demo", authority: "demo.default.svc")
        config.policy = story.policy
        config.rpc = .greeter(name: "demo")
        config.traffic = .rate(story.rps)
        config.timeoutMs = 5000
        config.version = GRPCTop.version
        let engine = try Engine(config: config, resolver: resolver, loop: group.next())
        let controller = DemoController(story: story, fleet: fleet, resolver: resolver, engine: engine, pods: pods, speed: speed)
        try engine.start().wait()
        controller.start()

        let model: Model
        if headless {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            while !controller.finished {
                Thread.sleep(forTimeInterval: 1)
                let snapshot = try engine.withModel { Snapshot($0) }.wait()
                print(output == "json" ? String(decoding: try encoder.encode(snapshot), as: UTF8.self) : snapshot.table())
                fflush(nil)
            }
            model = try engine.stop().wait()
        } else {
            let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
            _ = try DashboardLoop.run(engine: engine, colors: colors)
            model = try engine.stop(grace: .seconds(1)).wait()
        }
        controller.cancel()
        let verdict = controller.verdict(final: model)
        if output == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(Summary(model)), as: UTF8.self))
            print(String(decoding: try encoder.encode(verdict), as: UTF8.self))
        } else {
            print(Summary(model).table(), terminator: "")
            print(verdict.text)
        }
        fflush(nil)
        if headless && !verdict.passed { throw ExitCode(1) }
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

    func stopAll() {
        lock.lock()
        let all = Array(servers.values)
        servers.removeAll()
        lock.unlock()
        for s in all { _ = try? s.drain().wait() }
    }
}
