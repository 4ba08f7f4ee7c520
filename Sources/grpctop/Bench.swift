import GRPCWire
import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyView
import TopologyRecording
import TopologyResolvers
import TopologyTransport

/// `grpctop bench`: grpctop's data plane against a server, next to h2load on the same server,
/// and the cost of recording one RPC in the statistics collector.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark grpctop's client (RPS, CPU per 1,000 RPCs) next to h2load, and the stats collector.",
        discussion: """
        Run it against a server that is not the bottleneck (scripts/bench builds and starts a C++ \
        gRPC Greeter). Both clients use one HTTP/2 connection with the same number of RPCs in \
        flight and send helloworld.Greeter/SayHello. CPU time is the client process's user + \
        system time (getrusage), so the server's work is not counted.
        """)

    @Option(help: "Server to load, host:port or ipv4:host:port (h2c).") var target: String?
    @Flag(help: "Benchmark the dashboard's rendering instead (no server needed).") var view = false
    @Option(help: "Benchmark DNS lookups and applying their answers instead: dns://SERVER:PORT/NAME:PORT.") var dns: String?
    @Flag(help: "Moved to grpctop-bench --kubernetes (it needs the stand-in API server, a test double grpctop does not contain).") var kubernetes = false
    @Option(help: "Benchmark the etcd resolver against this etcd instead (scripts/bench-etcd starts one): 1,000 keys ranged, watch events.")
    var etcd: String?
    @Option(help: "Benchmark the consul resolver against this Consul agent (HOST:PORT; scripts/bench-consul starts the stand-in): 1,000 instances, check changes.")
    var consul: String?
    @Flag(help: "Benchmark recordings instead: size per minute of 100 endpoints at 10k RPS, reading, 64× playback.") var recording = false
    @Flag(help: "Benchmark one attach (channelz) poll of 1,000 subchannels instead: decode, report, apply.") var attach = false
    @Flag(help: "Benchmark one xDS EDS update of 5,000 endpoints instead: decode, validate, ACK, apply.") var xds = false
    @Option(help: "Minutes of synthetic session for --recording.") var minutes = 1.0
    @Option(name: .customLong("keyframe-every"), help: "Session time between keyframes for --recording (default: what watch --record writes, 20s).") var keyframeEvery: String?
    @Option(help: "RPCs per measured run.") var requests = 200_000
    @Option(help: "RPCs in flight on the one connection.") var concurrency = 100
    @Option(help: "Measured runs per client; the median is reported.") var runs = 3
    @Flag(name: .customLong("no-h2load"), help: "Do not run h2load.") var noH2load = false
    @Option(help: "Output: table or json.") var output = "table"

    struct ClientResult: Codable {
        var rps: Double
        var cpuMsPer1000: Double
        var ok: Bool
        var okRPCs: Int
    }

    struct Report: Codable {
        var target: String
        var requests: Int
        var concurrency: Int
        var grpctop: ClientResult
        var h2load: ClientResult?
        /// Medians of the per-run ratios grpctop / h2load.
        var rpsRatio: Double?
        var cpuRatio: Double?
        var recordNanosPerRPC: Double
        /// Every RPC either client counted as OK, warm-ups included (scripts/bench checks it
        /// against the server's own count).
        var rpcsCountedOK: Int
    }

    func run() throws {
        guard output == "table" || output == "json" else { throw UsageFailure("--output must be table or json") }
        guard (1...100).contains(runs) else { throw UsageFailure("--runs \(runs) is out of range (1 to 100)") }
        if let dns {
            let r = try DNSBenchmark.run(target: dns, lookups: runs * 10)
            try printReport(r, json: output == "json", table: DNSBenchmark.table(r))
            return
        }
        if recording {
            guard minutes >= 0.1, minutes <= 600 else { throw UsageFailure("--minutes \(formatNumber(minutes)) is out of range (0.1 to 600)") }
            let r = try RecordingBenchmark.run(minutes: minutes, keyframeEveryMs: try keyframeEvery.map { try parseDuration($0, flag: "--keyframe-every") } ?? RecordingWriter.defaultKeyframeEveryMs)
            try printReport(r, json: output == "json", table: RecordingBenchmark.table(r))
            return
        }
        if let etcd {
            let r = try EtcdBenchmark.run(url: etcd, keys: 1000, runs: max(1, runs) * 3)
            try printReport(r, json: output == "json", table: EtcdBenchmark.table(r))
            return
        }
        if let consul {
            let r = try ConsulBenchmark.run(agent: consul, instances: 1000, runs: max(1, runs))
            try printReport(r, json: output == "json", table: ConsulBenchmark.table(r))
            return
        }
        if kubernetes {
            throw UsageFailure("--kubernetes runs in grpctop-bench --kubernetes (swift build -c release --product grpctop-bench): it needs the stand-in API server, a test double the grpctop users run does not contain")
        }
        if xds {
            let r = try XDSBenchmark.run()
            try printReport(r, json: output == "json", table: XDSBenchmark.table(r))
            return
        }
        if attach {
            let r = try AttachBenchmark.run()
            try printReport(r, json: output == "json", table: AttachBenchmark.table(r))
            return
        }
        if view {
            let r = ViewBenchmark.run()
            try printReport(r, json: output == "json", table: ViewBenchmark.table(r))
            return
        }
        guard let target else { throw UsageFailure("--target HOST:PORT is needed (or --view for the dashboard benchmark)") }
        let parsed: Target
        do { parsed = try Target.parse(target) } catch { throw UsageFailure(error.message) }
        guard let addresses = parsed.staticAddresses, addresses.count == 1, case .tcp(let host, let port) = addresses[0] else {
            throw UsageFailure("--target '\(target)' must be one IP address and port, e.g. 127.0.0.1:50051")
        }
        guard (1000...100_000_000).contains(requests) else { throw UsageFailure("--requests \(requests) is out of range (1000 to 100000000)") }
        guard (1...100).contains(concurrency) else { throw UsageFailure("--concurrency must be 1-100 (one connection)") }
        guard (1...100).contains(runs) else { throw UsageFailure("--runs \(runs) is out of range (1 to 100)") }
        let h2loadPath = noH2load ? nil : Self.which("h2load")
        if !noH2load && h2loadPath == nil {
            throw UsageFailure("h2load not found: install Debian's nghttp2-client or pass --no-h2load")
        }

        let record = Self.recordingCost()
        // Warm-ups, then the clients alternate (grpctop, h2load, grpctop, …) so that a slower or
        // busier stretch of this shared machine falls on both; each run's ratio is taken, and
        // the median of the ratios reported (not a ratio of medians sorted apart).
        var sent = 0
        let warm = min(20_000, requests)
        sent += try runGrpctop(host: host, port: port, count: warm).okRPCs
        if let h2load = h2loadPath { sent += try runH2load(h2load, host: host, port: port, count: warm).okRPCs }
        var ours: [ClientResult] = []
        var theirs: [ClientResult] = []
        for _ in 0..<runs {
            let a = try runGrpctop(host: host, port: port, count: requests)
            ours.append(a)
            sent += a.okRPCs
            if let h2load = h2loadPath {
                let b = try runH2load(h2load, host: host, port: port, count: requests)
                theirs.append(b)
                sent += b.okRPCs
            }
        }
        let ratios = zip(ours, theirs).map { (rps: $0.rps / $1.rps, cpu: $0.cpuMsPer1000 / $1.cpuMsPer1000) }
        let report = Report(
            target: HostPort(host: host, port: port).description, requests: requests, concurrency: concurrency,
            grpctop: Self.median(ours), h2load: theirs.isEmpty ? nil : Self.median(theirs),
            rpsRatio: ratios.isEmpty ? nil : Self.median(ratios.map(\.rps)), cpuRatio: ratios.isEmpty ? nil : Self.median(ratios.map(\.cpu)),
            recordNanosPerRPC: record, rpcsCountedOK: sent)
        try writeOut(output == "json" ? try jsonLine(report) + "\n" : Self.table(report))
    }

    static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    static func median(_ rs: [ClientResult]) -> ClientResult {
        ClientResult(rps: median(rs.map(\.rps)), cpuMsPer1000: median(rs.map(\.cpuMsPer1000)), ok: rs.allSatisfy(\.ok), okRPCs: rs.reduce(0) { $0 + $1.okRPCs })
    }

    static func table(_ r: Report) -> String {
        var rows = [["client", "RPS", "CPU ms / 1,000 RPCs", "all OK"]]
        rows.append(["grpctop", String(format: "%.0f", r.grpctop.rps), String(format: "%.1f", r.grpctop.cpuMsPer1000), r.grpctop.ok ? "yes" : "NO"])
        if let h = r.h2load, let rps = r.rpsRatio, let cpu = r.cpuRatio {
            rows.append(["h2load", String(format: "%.0f", h.rps), String(format: "%.1f", h.cpuMsPer1000), h.ok ? "yes" : "NO"])
            rows.append(["grpctop / h2load (median of per-run ratios)", String(format: "%.2f×", rps), String(format: "%.2f×", cpu), ""])
        }
        return "grpctop bench: \(r.requests) unary RPCs a run, runs interleaved, medians, 1 connection, \(r.concurrency) in flight, server \(r.target)\n"
            + formatTable(rows)
            + String(format: "recording one RPC in the statistics collector (both of its slots, as on the hot path): %.1f ns\n", r.recordNanosPerRPC)
            + "RPCs the clients counted as OK (warm-ups included): \(r.rpcsCountedOK)\n"
    }

    // MARK: - grpctop's client

    func runGrpctop(host: String, port: Int, count: Int) throws -> ClientResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var config = EngineConfig(target: "ipv4:\(HostPort(host: host, port: port))", resolverName: "static", authority: HostPort(host: host, port: port).description)
        config.rpc = .greeter(name: "grpctop")
        config.traffic = .concurrency(concurrency)
        config.timeoutMs = 30_000
        let engine = try Engine(config: config, resolver: StaticResolver(addresses: [.tcp(host: host, port: port)]), loop: group.next())
        // Start counting once the connection is up.
        try engine.start().wait()
        var startCount = 0
        let readyBy = Date().addingTimeInterval(10)
        while Date() < readyBy {
            startCount = try engine.finishedRPCs().wait()
            if startCount > 0 { break }
            usleep(5_000)
        }
        guard startCount > 0 else { fail("bench: no RPC completed within 10s against \(HostPort(host: host, port: port))") }
        let cpu0 = Self.cpuSeconds(RUSAGE_SELF)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var done = startCount
        while done - startCount < count {
            usleep(10_000)
            done = try engine.finishedRPCs().wait()
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let cpu1 = Self.cpuSeconds(RUSAGE_SELF)
        let model = try engine.stop(grace: .seconds(2)).wait()
        let n = Double(done - startCount)
        return ClientResult(rps: n / (Double(t1 - t0) / 1e9), cpuMsPer1000: (cpu1 - cpu0) * 1e6 / n, ok: model.channel.total.failed == 0,
                            okRPCs: model.channel.total.succeeded)
    }

    // MARK: - h2load

    func runH2load(_ path: String, host: String, port: Int, count: Int) throws -> ClientResult {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let body = dir.appendingPathComponent("body.bin")
        let msg = ProtoWire.stringMessage("grpctop")
        try Data([0, 0, 0, 0, UInt8(msg.count)] + msg).write(to: body)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["-n", "\(count)", "-c", "1", "-m", "\(concurrency)", "-d", body.path,
                       "-H", "content-type: application/grpc", "-H", "te: trailers",
                       "http://\(HostPort(host: host, port: port))/helloworld.Greeter/SayHello"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        let cpu0 = Self.cpuSeconds(RUSAGE_CHILDREN)
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let cpu1 = Self.cpuSeconds(RUSAGE_CHILDREN)
        let text = String(decoding: data, as: UTF8.self)
        // "finished in 2.51s, 39840.64 req/s, …" and "requests: N total, N started, N done, N succeeded, 0 failed"
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("finished in") }),
              let rpsText = line.split(separator: ",").dropFirst().first?.split(separator: " ").first,
              let rps = Double(rpsText)
        else { fail("bench: could not read h2load's output: \(text.prefix(300))") }
        // h2load's "succeeded" is HTTP 2xx, whatever the grpc-status: scripts/bench checks the
        // server's own count.
        let succeeded = text.split(separator: "\n").first { $0.hasPrefix("requests:") }?.contains("\(count) succeeded") ?? false
        return ClientResult(rps: rps, cpuMsPer1000: (cpu1 - cpu0) * 1e6 / Double(count), ok: succeeded, okRPCs: succeeded ? count : 0)
    }

    // MARK: - helpers

    /// Nanoseconds to record one RPC as the hot path does: start + finish in both of its slots
    /// (the subchannel's and the backend's), including the amortised tick (`take`, every 2,500
    /// RPCs: 10k RPS at the 250 ms tick).
    static func recordingCost() -> Double {
        let slot = StatsSlot(), backend = StatsSlot()
        let n = 10_000_000
        var sink = 0
        let t0 = DispatchTime.now().uptimeNanoseconds
        for i in 0..<n {
            let code = i & 1023 == 0 ? 14 : 0, micros = UInt64(200 + (i & 255))
            slot.recordStarted()
            backend.recordStarted()
            slot.recordFinished(code: code, micros: micros, messages: 1)
            backend.recordFinished(code: code, micros: micros, messages: 1)
            if i % 2500 == 2499 { sink &+= slot.take().completed &+ backend.take().completed }
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        if sink == 42 { print("") }
        return Double(t1 - t0) / Double(n)
    }

    static func cpuSeconds(_ who: __rusage_who) -> Double {
        let who = __rusage_who_t(who.rawValue)
        var u = rusage()
        getrusage(who, &u)
        return Double(u.ru_utime.tv_sec) + Double(u.ru_utime.tv_usec) / 1e6 + Double(u.ru_stime.tv_sec) + Double(u.ru_stime.tv_usec) / 1e6
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}
