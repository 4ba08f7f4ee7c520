import ArgumentParser
import Dashboard
import Foundation
import GRPCWire
import NIOSSL
import TopologyCore
import TopologyRecording
import TopologyResolvers
import TopologySources
import TopologyTransport
import TopologyView

/// `grpctop attach ADDRESS`: another process's channel, live, read through its channelz service
/// (an *observed* channel: grpctop sends no RPCs). The same dashboard, batch output and
/// recordings as `watch`.
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running process's channels live, read from its channelz service (no traffic sent).",
        discussion: """
            ADDRESS is where the process serves grpc.channelz.v1.Channelz (often an admin port): \
            host:port, [v6]:port or unix:PATH. Inside a pod: kubectl exec -it POD -- grpctop attach \
            127.0.0.1:ADMIN_PORT; from outside: kubectl port-forward POD ADMIN_PORT, then attach to \
            127.0.0.1:ADMIN_PORT.
            """)

    @Argument(help: "Address of the process's channelz service: host:port or unix:PATH.") var address: String
    @Option(help: "Time between polls (and snapshots with --batch).") var interval = "1s"
    @Option(help: "The channel to watch, by channelz id (default: the first with subchannels).") var channel: Int64?
    @Option(help: "A target resolved only to name addresses by pod, node and zone, and to know every pod the channel should reach (kubernetes:///svc.ns:port, dns:///…, file:…).")
    var names: String?
    @Flag(help: "Use TLS (ALPN h2).") var tls = false
    @Option(help: "PEM CA certificate to trust (with --tls).") var cacert: String?
    @Option(help: "PEM client certificate (with --tls).") var cert: String?
    @Option(help: "PEM client key (with --tls).") var key: String?
    @Flag(help: "Do not verify the server certificate (with --tls).") var insecure = false
    @Option(name: .customLong("server-name"), help: "TLS server name (with --tls; default: the host).") var serverName: String?
    @Flag(help: "Print snapshots instead of the dashboard (top's batch mode).") var batch = false
    @Option(help: "Stop after this many snapshots.") var iterations: Int?
    @Option(help: "Stop after this long (e.g. 30s).") var duration: String?
    @Option(help: "Snapshot format: table or json (JSON Lines).") var output = "table"
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard (also: NO_COLOR set).") var noColor = false
    @Option(help: "Record the session's events to FILE (FILE.gz compresses) for grpctop replay.") var record: String?

    func run() throws {
        let target: EndpointAddress
        do {
            if address.hasPrefix("unix:") {
                let path = String(address.dropFirst(5))
                guard !path.isEmpty else { throw UsageFailure("'\(address)': unix: needs a socket path, e.g. unix:/run/app/admin.sock") }
                target = .unix(path: path)
            } else {
                let hp = try Target.splitHostPort(address, whole: address, bareIPv6: true, defaultPort: 0)
                guard hp.port > 0 else { throw UsageFailure("'\(address)' has no port: give the channelz (admin) port, e.g. 127.0.0.1:50052") }
                target = .tcp(host: hp.host, port: hp.port)
            }
        } catch let e as TargetError { throw UsageFailure(e.message) }
        let intervalMs = try parseDuration(interval, flag: "--interval")
        guard intervalMs >= 100 else { throw UsageFailure("--interval \(interval) is too short (at least 100ms)") }
        let durationMs = try duration.map { try parseDuration($0, flag: "--duration") }
        if let i = iterations, i < 1 { throw UsageFailure("--iterations must be at least 1") }
        if let c = channel, c < 0 { throw UsageFailure("--channel \(c): channelz ids are positive") }
        guard output == "table" || output == "json" else { throw UsageFailure("--output '\(output)' is not known: use table or json") }
        var context: NIOSSLContext?
        if tls || cacert != nil || cert != nil || key != nil || insecure || serverName != nil {
            guard tls else { throw UsageFailure("--cacert, --cert, --key, --insecure and --server-name need --tls") }
            for (flag, path) in [("--cacert", cacert), ("--cert", cert), ("--key", key)] {
                if let path, !FileManager.default.isReadableFile(atPath: path) { throw UsageFailure("\(flag) \(path): no such file (or not readable)") }
            }
            do { context = try TLSOptions(caCertPath: cacert, certPath: cert, keyPath: key, insecure: insecure).makeContext() } catch {
                throw UsageFailure("--tls: cannot use the certificate files: \(error); they must be PEM")
            }
        }
        var useBatch = batch
        if !batch && (isatty(STDOUT_FILENO) == 0 || isatty(STDIN_FILENO) == 0) {
            FileHandle.standardError.write(Data("grpctop: stdout is not a terminal; running in --batch mode\n".utf8))
            useBatch = true
        }

        let session = ObservedSession()
        let recorder = try record.map { try RecordingWriter.open($0, target: "channelz:\(address)") }
        defer { recorder?.finish() }
        if let recorder { session.observe { timed, model in recorder.record(timed, model: model) } }
        let source = ChannelzSource(address: target, intervalMs: intervalMs, channelID: channel, tls: context, serverName: serverName)
        if let names {
            let parsed: Target
            do { parsed = try Target.parse(names) } catch { throw UsageFailure("--names: \(error.message)") }
            do {
                source.names = try ResolverFactory.make(parsed, text: names, settings: ResolverFactory.Settings())
            } catch let e as ResolverFactory.SetupError {
                throw UsageFailure("--names: \(e.description)")
            }
        }
        let notEnabled = NotEnabled()
        source.onNotEnabled = { message in notEnabled.set(message) }
        session.submit(.sessionStarted(SessionInfo(
            target: "channelz:\(address)", resolver: "channelz", policy: .roundRobin, rpc: "(observed)", identityHeader: nil,
            traffic: .rate(0), tickMs: Int(intervalMs), startedAt: Date().timeIntervalSince1970,
            host: ProcessInfo.processInfo.hostName, version: GRPCTop.version, observed: true)))
        session.onChannelChosen { id in source.choose(channelID: id) }
        source.start { session.submit($0) }
        defer { source.stop() }

        if useBatch {
            // A process without channelz: one line, and how to turn it on; exit 1.
            try runObservedBatch(session, intervalMs: intervalMs, durationMs: durationMs, iterations: iterations, json: output == "json",
                                 recorder: recorder, stopSource: source.stop) { if let message = notEnabled.get() { fail(message) } }
            return
        }
        let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let (model, note) = try DashboardLoop.run(engine: session, colors: colors, recording: recorder.map { r in { r.headerStatus } })
        source.stop()
        if let note { FileHandle.standardError.write(Data("grpctop: \(note)\n".utf8)) }
        if let message = notEnabled.get() { fail(message) }
        try writeOut(Summary(model).table())
    }
}

/// The "no channelz service" message, once it came (from the source's task).
final class NotEnabled: @unchecked Sendable {
    private let lock = NSLock()
    private var message: String?
    func set(_ m: String) { lock.withLock { message = m } }
    func get() -> String? { lock.withLock { message } }
}

/// `--batch` for an observed session (`attach`, `envoy`): a snapshot every interval until
/// `--iterations`, `--duration` or a quit signal, then the source is stopped and the summary
/// printed. `check` runs before each snapshot (it may end the run).
func runObservedBatch(_ session: ObservedSession, intervalMs: Int64, durationMs: Int64?, iterations: Int?, json: Bool,
                      recorder: RecordingWriter?, stopSource: () -> Void, check: () -> Void = {}) throws {
    let stop = DispatchSemaphore(value: 0)
    let signals = SignalWatcher()
    signals.on([SIGINT, SIGTERM, SIGHUP]) { _ in stop.signal() }
    let started = DispatchTime.now()
    var next = started
    var printed = 0
    while true {
        next = next + .milliseconds(Int(intervalMs))
        if let d = durationMs { next = min(next, started + .milliseconds(Int(d))) }
        if stop.wait(timeout: next) == .success { break }
        check()
        let snapshot = session.withModel { m in
            recorder?.markSnapshot(at: m.now)
            return Snapshot(m)
        }
        try writeOut(json ? try jsonLine(snapshot) + "\n" : snapshot.table() + "\n")
        printed += 1
        if let i = iterations, printed >= i { break }
        if let d = durationMs, DispatchTime.now() >= started + .milliseconds(Int(d)) { break }
    }
    stopSource()
    let summary = session.withModel { Summary($0) }
    try printReport(summary, json: json, table: summary.table())
}
