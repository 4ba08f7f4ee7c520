import ArgumentParser
import Dashboard
import Foundation
import TopologyCore
import TopologyRecording
import TopologySources
import TopologyView

/// `grpctop envoy URL`: an Envoy proxy's clusters, read from its admin API — each cluster an
/// observed channel whose hosts are its subchannels (no traffic sent). The same dashboard,
/// batch output and recordings as `watch` and `attach`.
struct EnvoyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "envoy",
        abstract: "Show an Envoy proxy's clusters live, read from its admin API (no traffic sent).",
        discussion: """
            URL is Envoy's admin address: http://127.0.0.1:9901, or host:port. Istio's sidecar serves it on \
            127.0.0.1:15000 inside the pod: kubectl exec -it POD -c istio-proxy -- grpctop envoy 127.0.0.1:15000, or \
            kubectl port-forward POD 15000 and grpctop envoy 127.0.0.1:15000 from your machine.
            """)

    @Argument(help: "Envoy's admin URL: http://HOST:PORT or HOST:PORT.") var url: String
    @Option(help: "Time between polls (and snapshots with --batch).") var interval = "1s"
    @Option(help: "The cluster to show (default: the one with most requests; the Clusters pane changes it).") var cluster: String?
    @Flag(help: "Print snapshots instead of the dashboard (top's batch mode).") var batch = false
    @Option(help: "Stop after this many snapshots.") var iterations: Int?
    @Option(help: "Stop after this long (e.g. 30s).") var duration: String?
    @Option(help: "Snapshot format: table or json (JSON Lines).") var output = "table"
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard (also: NO_COLOR set).") var noColor = false
    @Option(help: "Record the session's events to FILE (FILE.gz compresses) for grpctop replay.") var record: String?

    func run() throws {
        if let problem = EnvoySource.problem(url: url) { throw UsageFailure(problem) }
        let intervalMs = try parseDuration(interval, flag: "--interval")
        guard intervalMs >= 100 else { throw UsageFailure("--interval \(interval) is too short (at least 100ms)") }
        let durationMs = try duration.map { try parseDuration($0, flag: "--duration") }
        if let i = iterations, i < 1 { throw UsageFailure("--iterations must be at least 1") }
        guard output == "table" || output == "json" else { throw UsageFailure("--output '\(output)' is not known: use table or json") }
        var useBatch = batch
        if !batch && (isatty(STDOUT_FILENO) == 0 || isatty(STDIN_FILENO) == 0) {
            FileHandle.standardError.write(Data("grpctop: stdout is not a terminal; running in --batch mode\n".utf8))
            useBatch = true
        }
        let session = ObservedSession()
        let recorder = try record.map { try RecordingWriter.open($0, target: "envoy:\(url)") }
        defer { recorder?.finish() }
        if let recorder { session.observe { timed, model in recorder.record(timed, model: model) } }
        let source = EnvoySource(url: url, intervalMs: intervalMs, cluster: cluster, mode: .observed)
        session.submit(.sessionStarted(SessionInfo(
            target: "envoy:\(source.baseURL)", resolver: "envoy admin", policy: .roundRobin, rpc: "(observed)", identityHeader: nil,
            traffic: .rate(0), tickMs: Int(intervalMs), startedAt: Date().timeIntervalSince1970,
            host: ProcessInfo.processInfo.hostName, version: GRPCTop.version, observed: true)))
        session.onChannelChosen { id in source.choose(channelID: id) }
        source.start { session.submit($0) }
        defer { source.stop() }

        if useBatch {
            try runObservedBatch(session, intervalMs: intervalMs, durationMs: durationMs, iterations: iterations, json: output == "json",
                                 recorder: recorder, stopSource: source.stop)
            return
        }
        let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let (model, note) = try DashboardLoop.run(engine: session, colors: colors, recording: recorder.map { r in { r.headerStatus } })
        source.stop()
        if let note { FileHandle.standardError.write(Data("grpctop: \(note)\n".utf8)) }
        try writeOut(Summary(model).table())
    }
}
