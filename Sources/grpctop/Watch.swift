import GRPCWire
import ArgumentParser
import EtcdAPI
import Dashboard
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyView
import TopologyRecording
import TopologyResolvers
import TopologySources
import TopologyTransport

/// `grpctop watch TARGET`: resolve, connect, send traffic and show the topology.
struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Watch a gRPC target: endpoints, subchannels, streams and per-backend rates.",
        discussion: """
        TARGET follows gRPC naming: dns:///host:port, dns://dns-server[:port]/host:port, kubernetes:///svc.ns:port, host:port, \
        ipv4:a:port,b:port, ipv6:[a]:port, unix:/path, plus file:PATH (one endpoint a line, watched for changes).
        Exit status: 0 ok, 1 --fail-on-error saw a failed RPC (or a runtime error), 2 bad input.
        """)

    @Argument(help: "The target, e.g. ipv4:127.0.0.1:50051,127.0.0.1:50052 or file:endpoints.txt")
    var target: String

    // Load balancing and traffic
    @Option(name: .customLong("lb"), help: "Load-balancing policy: pick_first, round_robin, least_request.")
    var lb = "round_robin"
    @Flag(name: .customLong("health-check"), help: "gRFC A17 client-side health checking: a grpc.health.v1.Health/Watch stream per READY subchannel; NOT_SERVING ones get no RPCs (--health-check=SERVICE names the service; pick_first ignores it).")
    var healthCheck = false
    @Option(name: .customLong("health-check-service"), help: ArgumentHelp("The service --health-check asks about (default \"\": the whole server).", visibility: .hidden))
    var healthCheckService: String?
    @Option(name: .customLong("outlier-detection"), help: "gRFC A50 outlier detection around the policy: failure-percentage and/or success-rate, with interval=10s, base-ejection-time=30s, max-ejection-time=300s, max-ejection-percent=10, threshold=85, minimum-hosts=5, request-volume=50, stdev-factor=1.9 … (or A50's JSON).")
    var outlierDetection: String?
    @Option(help: "Open-loop rate: RPCs per second.") var rps: Double?
    @Option(help: "Closed loop: this many RPCs in flight (instead of --rps).") var concurrency: Int?
    @Option(help: "Deadline of each RPC.") var timeout = "10s"
    @Option(name: [.customShort("H"), .customLong("header")], help: "Metadata 'key: value' sent with every RPC (repeatable).")
    var headers: [String] = []
    @Option(help: "RPC to send: health (grpc.health.v1.Health/Check) or greeter (helloworld.Greeter/SayHello).")
    var rpc = "health"
    @Option(help: "Name sent by --rpc greeter.") var name = "grpctop"
    @Option(help: "Service name sent by --rpc health (empty: the whole server).") var service = ""
    @Option(help: "Any unary method, e.g. /pkg.Service/Method (with --data-hex or --data-file).") var method: String?
    @Option(name: .customLong("data-hex"), help: "Request message for --method, as hex protobuf bytes.") var dataHex: String?
    @Option(name: .customLong("data-file"), help: "Request message for --method, read from a file (raw protobuf).") var dataFile: String?
    @Option(name: .customLong("max-recv-size"), help: "Largest response message accepted, e.g. 4MiB (gRPC's default); larger ones end the RPC with RESOURCE_EXHAUSTED.")
    var maxRecvSize = "4MiB"
    @Option(name: .customLong("identity-header"), help: "Response header (or trailer) naming the backend, e.g. x-served-by.")
    var identityHeader: String?

    // DNS
    @Option(name: .customLong("dns-refresh"), help: "When dns: looks again: grpc (on disconnect, ≥ 30 s apart, as gRPC does), ttl (poll at the record TTL), or an interval such as 5s.")
    var dnsRefresh = "grpc"
    @Option(name: .customLong("dns-min-interval"), help: "Least time between lookups (default 30s with grpc, 1s with ttl).")
    var dnsMinInterval: String?
    @Option(name: .customLong("dns-timeout"), help: "Give a DNS lookup up this long.") var dnsTimeout = "10s"
    @Flag(help: "Look up SRV records (_grpc._tcp.HOST unless HOST is a _service._proto. name): per-endpoint ports.")
    var srv = false

    // Kubernetes
    @Option(help: "kubeconfig file for kubernetes: targets (default: $KUBECONFIG, the pod's service account, ~/.kube/config).")
    var kubeconfig: String?
    @Option(help: "kubeconfig context to use (default: its current-context).") var context: String?
    @Option(name: .customLong("kube-api"), help: "Kubernetes API URL without auth, e.g. http://127.0.0.1:8001 from `kubectl proxy`.")
    var kubeAPI: String?

    // etcd
    @OptionGroup var etcdOptions: EtcdOptions

    // Connection
    @Flag(help: "Use TLS (ALPN h2).") var tls = false
    @Option(help: "PEM CA certificate to trust (with --tls).") var cacert: String?
    @Option(help: "PEM client certificate (with --tls).") var cert: String?
    @Option(help: "PEM client key (with --tls).") var key: String?
    @Option(help: "The :authority header (and TLS server name).") var authority: String?
    @Flag(help: "Do not verify the server certificate (with --tls).") var insecure = false
    @Option(help: "Send a keepalive PING this often (e.g. 10s).") var keepalive: String?
    @Option(name: .customLong("keepalive-timeout"), help: "Drop the connection when a keepalive PING is not answered within this.")
    var keepaliveTimeout = "20s"

    // Batch output
    @Flag(help: "Print snapshots instead of the dashboard (top's batch mode).") var batch = false
    @Option(help: "Time between snapshots.") var interval = "1s"
    @Option(help: "Stop after this many snapshots.") var iterations: Int?
    @Option(help: "Stop after this long (e.g. 30s).") var duration: String?
    @Option(help: "Snapshot format: table or json (JSON Lines).") var output = "table"
    @Flag(name: .customLong("fail-on-error"), help: "Exit 1 if any RPC failed (a rollout gate for CI).") var failOnError = false
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard (also: NO_COLOR set).") var noColor = false

    // Recording
    @Option(help: "Record the session's events to FILE (FILE.gz compresses) for grpctop replay.") var record: String?
    @Option(name: .customLong("keyframe-every"), help: "With --record: session time between keyframes (1s to 10m; default 20s). Shorter: faster seeks, larger files.")
    var keyframeEvery: String?
    @Option(name: .customLong("envoy-admin"), help: "Also show the proxy's own view: its admin API (http://127.0.0.1:15000 for Istio's sidecar), polled every --interval.")
    var envoyAdmin: String?
    @Option(name: .customLong("envoy-cluster"), help: "The Envoy cluster to show with --envoy-admin (default: the one with most requests).")
    var envoyCluster: String?
    @Option(name: .customLong("xds-bootstrap"), help: "xDS bootstrap JSON file for xds:/// targets (default: $GRPC_XDS_BOOTSTRAP, or the JSON in $GRPC_XDS_BOOTSTRAP_CONFIG).")
    var xdsBootstrap: String?
    @Option(name: .customLong("consul-token-file"), help: "Consul ACL token file for consul:// targets (default: $CONSUL_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN); never shown or recorded.")
    var consulTokenFile: String?
    @Option(name: .customLong("redact-header"), help: "Redact this -H header's value in the recording (every -H value is, unless harmless, e.g. x-request-id, or named by --keep-header).")
    var redactHeaders: [String] = []
    @Option(name: .customLong("keep-header"), help: "Keep this -H header's value in the recording (values are redacted by default).")
    var keepHeaders: [String] = []

    func run() throws {
        let options = try validatedOptions()
        var useBatch = batch
        if !batch && (isatty(STDOUT_FILENO) == 0 || isatty(STDIN_FILENO) == 0) {
            FileHandle.standardError.write(Data("grpctop: stdout is not a terminal; running in --batch mode\n".utf8))
            useBatch = true
        }
        // A 403 from the Kubernetes API: the Role and RoleBinding to apply, on stderr — at once
        // in batch mode, after the dashboard has closed otherwise.
        let rbacHelp = RBACHelp()
        if let k = options.resolver as? KubernetesResolver {
            let batchMode = useBatch
            k.onForbidden = { yaml in
                if batchMode { RBACHelp.print(yaml) } else { rbacHelp.set(yaml) }
            }
        }
        defer { if let yaml = rbacHelp.get() { RBACHelp.print(yaml) } }
        let keep = keepHeaders.filter { k in !redactHeaders.contains { $0.lowercased() == k.lowercased() } }
        var keyframeMs = RecordingWriter.defaultKeyframeEveryMs
        if let k = keyframeEvery {
            keyframeMs = try parseDuration(k, flag: "--keyframe-every")
            guard (1000...600_000).contains(keyframeMs) else { throw UsageFailure("--keyframe-every \(k) must be from 1s to 10m") }
            guard record != nil else { throw UsageFailure("--keyframe-every needs --record FILE") }
        }
        let recorder = try record.map {
            try RecordingWriter.open($0, target: target, headers: headers, keepHeaders: keep, secrets: [etcdOptions.etcdPassword].compactMap { $0 },
                                     keyframeEveryMs: keyframeMs)
        }
        defer { recorder?.finish() }
        let summary = useBatch ? try runBatch(options, recorder: recorder) : try runDashboard(options, recorder: recorder)
        if failOnError, let why = summary.gateFailure {
            FileHandle.standardError.write(Data("grpctop: --fail-on-error: \(why)\n".utf8))
            throw ExitCode(1)
        }
    }

    struct Options {
        var config: EngineConfig
        var resolver: any EndpointResolver
        var intervalMs: Int64
        var durationMs: Int64?
        var json: Bool
    }

    func validatedOptions() throws -> Options {
        let parsed: Target
        do { parsed = try Target.parse(target) } catch { throw UsageFailure(error.message) }
        let resolver = try makeResolver(parsed)

        guard let policy = LBPolicy(name: lb) else {
            throw UsageFailure("--lb '\(lb)' is not a policy: use pick_first, round_robin or least_request")
        }
        if rps != nil && concurrency != nil { throw UsageFailure("use either --rps or --concurrency, not both") }
        let traffic: TrafficSetting
        if let c = concurrency {
            guard c >= 1, c <= 100_000 else { throw UsageFailure("--concurrency \(c) must be between 1 and 100000") }
            traffic = .concurrency(c)
        } else {
            let r = rps ?? 20
            guard r > 0, r.isFinite, r <= 1_000_000 else { throw UsageFailure("--rps \(formatNumber(r)) must be greater than 0 (and at most 1000000)") }
            traffic = .rate(r)
        }
        let timeoutMs = try parseDuration(timeout, flag: "--timeout")
        guard timeoutMs > 0 else { throw UsageFailure("--timeout must be greater than 0") }

        let kind: RPCKind
        if let method {
            guard method.hasPrefix("/"), method.dropFirst().split(separator: "/").count == 2 else {
                throw UsageFailure("--method '\(method)' must look like /package.Service/Method")
            }
            var payload: [UInt8] = []
            if dataHex != nil && dataFile != nil { throw UsageFailure("use either --data-hex or --data-file, not both") }
            if let hex = dataHex {
                guard let bytes = ProtoWire.hex(hex) else {
                    throw UsageFailure("--data-hex '\(hex)' is not hex bytes (write e.g. 0a03626f62)")
                }
                payload = bytes
            } else if let file = dataFile {
                guard let data = FileManager.default.contents(atPath: file) else { throw UsageFailure("--data-file \(file): cannot read it") }
                payload = Array(data)
            }
            kind = .custom(path: method, payload: payload)
        } else {
            if dataHex != nil || dataFile != nil { throw UsageFailure("--data-hex and --data-file go with --method") }
            switch rpc.lowercased() {
            case "health": kind = .health(service: service)
            case "greeter", "hello", "sayhello": kind = .greeter(name: name)
            default: throw UsageFailure("--rpc '\(rpc)' is not known: use health or greeter (or --method for any unary method)")
            }
        }

        for (flag, names) in [("--keep-header", keepHeaders), ("--redact-header", redactHeaders)] {
            for n in names where n.isEmpty || !n.lowercased().unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) }) {
                throw UsageFailure("\(flag) '\(n)' is not a metadata key (letters, digits, - _ .), e.g. x-request-id")
            }
        }
        var metadata: [(String, String)] = []
        for h in headers {
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex else {
                throw UsageFailure("-H '\(h)' must be 'key: value'")
            }
            let k = h[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let v = h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let problem = GRPCMetadata.problem(key: k, value: v, whole: h) { throw UsageFailure(problem) }
            metadata.append((k, v))
        }

        if let a = authority, a.isEmpty || !a.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) {
            throw UsageFailure("--authority '\(a.debugDescription.dropFirst().dropLast())' must be host[:port] in printable ASCII, without spaces or line breaks")
        }
        var config = EngineConfig(target: target, resolverName: resolver.name, authority: authority ?? parsed.defaultAuthority)
        config.policy = policy
        config.rpc = kind
        config.traffic = traffic
        config.timeoutMs = timeoutMs
        config.metadata = metadata
        config.identityHeader = identityHeader?.lowercased()
        if let service = healthCheckService {
            guard healthCheck else { throw UsageFailure("--health-check-service needs --health-check (or write --health-check=\(service))") }
            guard service.utf8.count <= 1024, service.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7f }) else {
                throw UsageFailure("--health-check service '\(service.prefix(40))…' must be a service name (printable, at most 1024 bytes), e.g. helloworld.Greeter")
            }
        }
        if healthCheck { config.healthCheckService = healthCheckService ?? "" }
        if let spec = outlierDetection {
            switch OutlierDetectionConfig.parse(spec) {
            case .success(let od): config.outlierDetection = od
            case .failure(let e): throw UsageFailure("--outlier-detection '\(spec.prefix(60))' \(e.description)")
            }
        }
        guard let recv = ByteSizeText.parse(maxRecvSize), (1...Int(Int32.max)).contains(recv) else {
            throw UsageFailure("--max-recv-size '\(maxRecvSize)' must be a size from 1 byte to 2GiB, e.g. 4MiB, 512KiB or 1048576")
        }
        config.maxReceiveBytes = recv
        config.version = GRPCTop.version
        if let k = keepalive {
            let ms = try parseDuration(k, flag: "--keepalive")
            guard ms >= 1000 else { throw UsageFailure("--keepalive \(k) is too short (at least 1s; servers punish ping floods)") }
            config.keepaliveMs = ms
            config.keepaliveTimeoutMs = try parseDuration(keepaliveTimeout, flag: "--keepalive-timeout")
            guard config.keepaliveTimeoutMs >= 100 else { throw UsageFailure("--keepalive-timeout \(keepaliveTimeout) is too short (at least 100ms)") }
        }
        if tls || cacert != nil || cert != nil || key != nil || insecure {
            guard tls else { throw UsageFailure("--cacert, --cert, --key and --insecure need --tls") }
            guard (cert == nil) == (key == nil) else { throw UsageFailure("--cert and --key go together") }
            for (flag, path) in [("--cacert", cacert), ("--cert", cert), ("--key", key)] {
                if let path, !FileManager.default.isReadableFile(atPath: path) { throw UsageFailure("\(flag) \(path): cannot read it") }
            }
            config.tls = TLSOptions(caCertPath: cacert, certPath: cert, keyPath: key, insecure: insecure)
            // A file that is not PEM (--cacert /etc/passwd) is bad input: say so now, exit 2.
            do { _ = try config.tls?.makeContext() } catch {
                throw UsageFailure("--tls: cannot use the certificate files (\([cacert.map { "--cacert \($0)" }, cert.map { "--cert \($0)" }, key.map { "--key \($0)" }].compactMap { $0 }.joined(separator: ", "))): \(error); they must be PEM")
            }
            if let a = authority {
                do { config.tlsServerName = try Target.splitHostPort(a, whole: a, bareIPv6: true).host } catch {
                    throw UsageFailure("--authority '\(a)': \(error.message)")
                }
            }
        }

        let intervalMs = try parseDuration(interval, flag: "--interval")
        guard intervalMs >= 100 else { throw UsageFailure("--interval \(interval) is too short (at least 100ms)") }
        let durationMs = try duration.map { try parseDuration($0, flag: "--duration") }
        if let i = iterations, i < 1 { throw UsageFailure("--iterations must be at least 1") }
        if let url = envoyAdmin, let problem = EnvoySource.problem(url: url) { throw UsageFailure("--envoy-admin \(problem)") }
        if envoyCluster != nil && envoyAdmin == nil { throw UsageFailure("--envoy-cluster goes with --envoy-admin URL") }
        guard output == "table" || output == "json" else { throw UsageFailure("--output '\(output)' is not known: use table or json") }
        return Options(config: config, resolver: resolver, intervalMs: intervalMs, durationMs: durationMs, json: output == "json")
    }

    /// The resolver for the target (`ResolverFactory`), from the resolver flags.
    func makeResolver(_ t: Target) throws -> any EndpointResolver {
        var settings = ResolverFactory.Settings()
        if case .dns = t {
            let minMs = try dnsMinInterval.map { try parseDuration($0, flag: "--dns-min-interval") }
            guard let refresh = DNSRefresh.parse(dnsRefresh, minIntervalMs: minMs) else {
                throw UsageFailure("--dns-refresh '\(dnsRefresh)': use grpc, ttl or an interval such as 5s")
            }
            settings.dnsRefresh = refresh
            settings.dnsTimeoutMs = try parseDuration(dnsTimeout, flag: "--dns-timeout")
            guard settings.dnsTimeoutMs > 0 else { throw UsageFailure("--dns-timeout must be more than 0") }
        }
        settings.srv = srv
        settings.xdsBootstrap = xdsBootstrap
        settings.consulTokenFile = consulTokenFile
        // The route an xDS control plane gives is chosen for the RPC grpctop sends.
        settings.rpcPath = method ?? (["greeter", "hello", "sayhello"].contains(rpc.lowercased()) ? "/helloworld.Greeter/SayHello" : "/grpc.health.v1.Health/Check")
        settings.kubeAPI = kubeAPI
        settings.kubeconfig = kubeconfig
        settings.kubeContext = context
        let etcd = etcdOptions
        let text = target
        settings.etcdConfig = { try etcd.config(endpoint: $0, what: "target '\(text)'") }
        do {
            return try ResolverFactory.make(t, text: target, settings: settings)
        } catch let e as ResolverFactory.SetupError {
            throw UsageFailure(e.description)
        }
    }

    /// The engine on one event loop of `group`; a TLS setup error ends the run with one line.
    /// With a recorder, every event the model applies is recorded.
    func makeEngine(_ o: Options, _ group: EventLoopGroup, recorder: RecordingWriter?) -> Engine {
        let engine: Engine
        do {
            engine = try Engine(config: o.config, resolver: o.resolver, loop: group.next())
        } catch {
            fail("cannot set up TLS: \(error)")
        }
        if let recorder { engine.observe { timed, model in recorder.record(timed, model: model) } }
        return engine
    }

    /// `--envoy-admin`: the proxy's level, polled beside the client (nil without the flag).
    func startProxySource(_ o: Options, engine: Engine) -> EnvoySource? {
        guard let url = envoyAdmin else { return nil }
        let source = EnvoySource(url: url, intervalMs: max(250, o.intervalMs), cluster: envoyCluster, mode: .proxy)
        source.start { engine.submit($0) }
        return source
    }

    /// Runs the full-screen dashboard, then prints the summary on the normal screen.
    func runDashboard(_ o: Options, recorder: RecordingWriter?) throws -> Summary {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = makeEngine(o, group, recorder: recorder)
        try engine.start().wait()
        let proxy = startProxySource(o, engine: engine)
        defer { proxy?.stop() }
        let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let (_, note) = try DashboardLoop.run(engine: engine, colors: colors, recording: recorder.map { r in { r.headerStatus } })
        let model = try engine.stop(grace: .seconds(1)).wait()
        let summary = Summary(model)
        if let note { FileHandle.standardError.write(Data("grpctop: \(note)\n".utf8)) }
        try writeOut(summary.table())
        return summary
    }

    /// Runs headless: a snapshot every interval, then the summary. `--duration` is kept: traffic
    /// stops then, RPCs get at most `endGrace` more to finish, and what is left is UNFINISHED.
    func runBatch(_ o: Options, recorder: RecordingWriter?) throws -> Summary {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let engine = makeEngine(o, group, recorder: recorder)
        let stop = DispatchSemaphore(value: 0)
        let signals = SignalWatcher()
        signals.on([SIGINT, SIGTERM, SIGHUP]) { _ in stop.signal() }
        try engine.start().wait()
        let proxy = startProxySource(o, engine: engine)
        defer { proxy?.stop() }

        let started = DispatchTime.now()
        var printed = 0
        var next = started
        loop: while true {
            next = next + .milliseconds(Int(o.intervalMs))
            if let d = o.durationMs {
                let end = started + .milliseconds(Int(d))
                if next > end { next = end }
            }
            if stop.wait(timeout: next) == .success { break loop }
            // The recording notes where this snapshot was taken, so replay --batch prints the same.
            let snapshot = try engine.withModel { m in
                recorder?.markSnapshot(at: m.now)
                return Snapshot(m)
            }.wait()
            do {
                try writeOut(o.json ? try jsonLine(snapshot) + "\n" : snapshot.table() + "\n")
            } catch {
                // The reader is gone or the disk is full: stop sending RPCs at once.
                _ = try? engine.stop(grace: .zero).wait()
                throw error
            }
            printed += 1
            if let i = iterations, printed >= i { break }
            if let d = o.durationMs, DispatchTime.now() >= started + .milliseconds(Int(d)) { break }
        }
        let model = try engine.stop(grace: .milliseconds(min(o.config.timeoutMs, Self.endGraceMs))).wait()
        let summary = Summary(model)
        try printReport(summary, json: o.json, table: summary.table())
        return summary
    }

    /// How long RPCs in flight at the end of a batch run may still take.
    static let endGraceMs: Int64 = 500
}

/// The Role + RoleBinding text kept for after the dashboard.
final class RBACHelp: @unchecked Sendable {
    private let lock = NSLock()
    private var yaml: String?
    func set(_ y: String) { lock.withLock { yaml = y } }
    func get() -> String? { lock.withLock { yaml } }
    static func print(_ yaml: String) {
        FileHandle.standardError.write(Data("grpctop: the Kubernetes API refused to list/watch the Service's endpoints; apply this (kubectl apply -f -):\n\(yaml)".utf8))
    }
}

/// `grpctop kube-rbac`: the least RBAC the kubernetes resolver needs, as YAML for kubectl apply.
struct KubeRBACCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kube-rbac",
        abstract: "Print the Role and RoleBinding that let a service account watch a namespace's endpoints (kubectl apply -f -).")
    @Option(name: [.customShort("n"), .customLong("namespace")], help: "Namespace of the Services to watch.") var namespace = "default"
    @Option(name: .customLong("service-account"), help: "Service account grpctop runs as (in that namespace).") var serviceAccount = "default"

    func run() throws {
        for (flag, v) in [("--namespace", namespace), ("--service-account", serviceAccount)] where !Target.isDNS1123Label(v) {
            throw UsageFailure("\(flag) '\(v)' is not a valid Kubernetes name (lower-case letters, digits and '-', at most 63)")
        }
        print(KubeRBAC.yaml(namespace: namespace, serviceAccount: serviceAccount), terminator: "")
    }
}

extension RecordingWriter {
    /// A recorder for `--record PATH`: the header with this command line, secrets redacted; a
    /// file that cannot be created is one line and exit 2.
    static func open(_ path: String, target: String, headers: [String] = [], keepHeaders: [String] = [], secrets: [String] = [],
                     keyframeEveryMs: Millis = RecordingWriter.defaultKeyframeEveryMs) throws -> RecordingWriter {
        do {
            return try RecordingWriter(path: path, header: RecordingHeader(
                grpctop: GRPCTop.version, target: target,
                options: Redaction.options(Array(CommandLine.arguments.dropFirst()), headers: headers, keep: keepHeaders, secrets: secrets),
                startedAt: Date().timeIntervalSince1970, host: ProcessInfo.processInfo.hostName), keyframeEveryMs: keyframeEveryMs)
        } catch {
            throw UsageFailure(error.description)
        }
    }

    /// What the dashboard header shows: `REC 1.2 MB` (and FAILED after a write error).
    var headerStatus: String { "REC \(formatBytes(bytesOnDisk))" + (error != nil ? " FAILED" : "") }

    /// Closes the file and says on stderr if writing failed on the way.
    func finish() {
        close()
        if let e = error { FileHandle.standardError.write(Data("grpctop: \(e)\n".utf8)) }
    }
}

/// 1.2 MB, 340 kB, 12 B.
func formatBytes(_ n: Int64) -> String {
    if n >= 1_000_000 { return String(format: "%.1f MB", Double(n) / 1e6) }
    if n >= 1000 { return "\(n / 1000) kB" }
    return "\(n) B"
}

func formatNumber(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v) }
