import Foundation
import Histogram
import TopologyCore
import TopologyRecording
import TopologyView

/// `grpctop bench --recording`: a synthetic session of 100 endpoints at 10,000 RPS (each tick's
/// latencies bucketed by the same HdrHistogram the engine uses) written through the recorder:
/// bytes per minute, plain and gzip; then replaying it: reading, and 64× playback (events
/// applied and a 200×60 frame rendered per 250 ms of wall time).
enum RecordingBenchmark {
    struct Report: Codable {
        var endpoints: Int
        var rps: Int
        var minutes: Double
        var bytesPerMinutePlain: Int64
        var bytesPerMinuteGzip: Int64
        var readAndParseMsPerMinute: Double
        var playback64xFrameMsP50: Double
        var playback64xFrameMsMax: Double
    }

    static func events(endpoints n: Int, rps: Int, seconds: Int, seed: UInt64) -> [TimedEvent] {
        var rng = SeededGenerator(seed: seed)
        var out: [TimedEvent] = []
        out.append(TimedEvent(at: 0, .sessionStarted(SessionInfo(
            target: "kubernetes:///big.bench:grpc", resolver: "kubernetes", policy: .roundRobin, rpc: "Health/Check",
            identityHeader: nil, traffic: .rate(Double(rps)), startedAt: 1_795_000_000, host: "bench", version: GRPCTop.version))))
        let eps = (0..<n).map { ScriptedModel.endpoint($0) }
        out.append(TimedEvent(at: 5, .resolverUpdated(ResolverResult(endpoints: eps))))
        for id in 1...n {
            out.append(TimedEvent(at: 10, .subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil))))
            out.append(TimedEvent(at: 12, .subchannel(id, .connected(local: "10.9.0.1:4\(id)", remote: eps[id - 1].addresses[0].description, connectMs: 2))))
            out.append(TimedEvent(at: 12, .subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil))))
        }
        let perTick = rps / 4 / n
        for k in 1...(seconds * 4) {
            var tick = StatsTick()
            for i in 0..<n {
                var h = Histogram<UInt32>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .two)
                for _ in 0..<perTick {
                    // ~1.5 ms median, a long tail.
                    let u = Double(rng.next() % 1_000_000) / 1_000_000
                    _ = h.record(UInt64(900 + 1200 * u + (u > 0.97 ? 20_000 * u : 0)))
                }
                var d = RPCDelta()
                d.started = perTick
                d.succeeded = perTick
                d.messagesSent = perTick
                d.messagesReceived = perTick
                d.latency = LatencySample(h)
                tick.backends.append(BackendTick(name: eps[i].displayName, delta: d))
                tick.subchannels.append(SubchannelTick(id: i + 1, activeStreams: 2, queued: 0, delta: d))
            }
            out.append(TimedEvent(at: Millis(k * 250), .stats(tick)))
        }
        return out
    }

    static func run(minutes: Double) throws -> Report {
        let seconds = max(10, Int(minutes * 60))
        let evs = events(endpoints: 100, rps: 10_000, seconds: seconds, seed: 1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-bench-rec-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var sizes: [Int64] = []
        for name in ["r.jsonl", "r.jsonl.gz"] {
            let w: RecordingWriter
            do {
                w = try RecordingWriter(path: dir + "/" + name, header: RecordingHeader(grpctop: GRPCTop.version, target: "bench", options: [], startedAt: 0, host: "bench"))
            } catch { throw UsageFailure("\(error)") }
            for e in evs { w.record(e) }
            w.close()
            sizes.append(Int64((try? FileManager.default.attributesOfItem(atPath: dir + "/" + name)[.size] as? Int) ?? 0))
        }
        let perMinute = { (b: Int64) in Int64(Double(b) / (Double(seconds) / 60)) }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let rec: Recording
        do { rec = try Recording.read(path: dir + "/r.jsonl.gz", version: GRPCTop.version) } catch { throw UsageFailure("\(error)") }
        let readMs = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        // 64×: each 250 ms frame covers 16 s of session (64 ticks) to apply, then one render.
        var player = ReplayPlayer(rec, speed: 64)
        var frameMs: [Double] = []
        var rows: PaneRows?
        var state = ViewState()
        while !player.atEnd {
            let f0 = DispatchTime.now().uptimeNanoseconds
            player.tick(wallMs: 250)
            state.timeline = Timeline(position: player.position, duration: player.duration, speed: 64, paused: false, markers: [])
            let frame = Dashboard.render(model: player.model, state: state, width: 200, height: 60, previousRows: rows)
            rows = frame.rows
            frameMs.append(Double(DispatchTime.now().uptimeNanoseconds - f0) / 1e6)
        }
        return Report(endpoints: 100, rps: 10_000, minutes: Double(seconds) / 60,
                      bytesPerMinutePlain: perMinute(sizes[0]), bytesPerMinuteGzip: perMinute(sizes[1]),
                      readAndParseMsPerMinute: readMs / (Double(seconds) / 60),
                      playback64xFrameMsP50: frameMs.sorted()[frameMs.count / 2], playback64xFrameMsMax: frameMs.max() ?? 0)
    }

    static func table(_ r: Report) -> String {
        """
        Recording: \(r.endpoints) endpoints at \(r.rps) RPS, \(formatNumber(r.minutes)) min synthetic session
          bytes per minute            plain \(formatBytes(r.bytesPerMinutePlain))   gzip \(formatBytes(r.bytesPerMinuteGzip))
          read + parse (gzip)         \(String(format: "%.0f", r.readAndParseMsPerMinute)) ms per recorded minute
          64× playback, per 250 ms frame (16 s of events applied + a 200×60 render)  p50 \(String(format: "%.1f", r.playback64xFrameMsP50)) ms   max \(String(format: "%.1f", r.playback64xFrameMsMax)) ms

        """
    }
}
