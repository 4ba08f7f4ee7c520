import Foundation
import Histogram
import TopologyCore
import TopologyRecording
import TopologyView

/// `grpctop bench --recording`: a synthetic session of 100 endpoints at 10,000 RPS (each tick's
/// latencies bucketed by the same HdrHistogram the engine uses), applied to a model and written
/// through the recorder (keyframes every 20 s by default, as `watch --record` writes them): bytes per minute, plain
/// and gzip; then replaying the gzip file: opening it, seeking to random points, and 64×
/// playback (events applied and a 200×60 frame rendered per 250 ms of wall time).
enum RecordingBenchmark {
    struct Report: Codable {
        var endpoints: Int
        var rps: Int
        var minutes: Double
        var keyframeEveryMs: Millis
        var bytesPerMinutePlain: Int64
        var bytesPerMinuteGzip: Int64
        var openMs: Double
        /// Opening the plain file without its index line, as a killed recorder leaves it: the
        /// index is rebuilt by one pass over the file.
        var rebuildIndexMs: Double
        var seekMsP50: Double
        var seekMsMax: Double
        var seeks: Int
        /// The parts of a seek (medians): reading the segment it starts from (inflate, decode the
        /// lines and the keyframe), applying the lines up to the target (reading the next
        /// segment's lines when the target is in it), rendering the frame.
        var seekReadMsP50: Double
        var seekApplyMsP50: Double
        var seekRenderMsP50: Double
        /// Decoding a keyframe into a model (part of reading), median.
        var keyframeDecodeMsP50: Double
        var playback64xFrameMsP50: Double
        var playback64xFrameMsMax: Double
    }

    /// The session, one event at a time (an hour of it does not fit in memory as a list).
    static func events(endpoints n: Int, rps: Int, seconds: Int, seed: UInt64, _ body: (TimedEvent) -> Void) {
        var rng = SeededGenerator(seed: seed)
        body(TimedEvent(at: 0, .sessionStarted(SessionInfo(
            target: "kubernetes:///big.bench:grpc", resolver: "kubernetes", policy: .roundRobin, rpc: "Health/Check",
            identityHeader: nil, traffic: .rate(Double(rps)), startedAt: 1_795_000_000, host: "bench", version: GRPCTop.version))))
        let eps = (0..<n).map { ScriptedModel.endpoint($0) }
        body(TimedEvent(at: 5, .resolverUpdated(ResolverResult(endpoints: eps))))
        for id in 1...n { body(TimedEvent(at: 10, .subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))) }
        for id in 1...n {
            body(TimedEvent(at: 12, .subchannel(id, .connected(local: "10.9.0.1:4\(id)", remote: eps[id - 1].addresses[0].description, connectMs: 2))))
            body(TimedEvent(at: 12, .subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil))))
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
            if k % 240 == 120 { body(TimedEvent(at: Millis(k * 250), .marker("minute \(k / 240)"))) }
            body(TimedEvent(at: Millis(k * 250), .stats(tick)))
        }
    }

    static func run(minutes: Double, keyframeEveryMs: Millis) throws -> Report {
        let seconds = max(10, Int(minutes * 60))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-bench-rec-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if ProcessInfo.processInfo.environment["GRPCTOP_BENCH_KEEP"] == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let names = ["r.jsonl", "r.jsonl.gz"]
        var writers: [RecordingWriter] = []
        for name in names {
            do {
                writers.append(try RecordingWriter(path: dir + "/" + name, header: RecordingHeader(grpctop: GRPCTop.version, target: "bench", options: [], startedAt: 0, host: "bench"),
                                               keyframeEveryMs: keyframeEveryMs))
            } catch { throw UsageFailure("\(error)") }
        }
        var model = Model()
        var count = 0
        events(endpoints: 100, rps: 10_000, seconds: seconds, seed: 1) { e in
            _ = model.apply(e)
            for w in writers { w.record(e, model: model) }
            count += 1
            if count % 2000 == 0 { for w in writers { w.flush() } }
        }
        for w in writers { w.close() }
        let sizes = names.map { Int64((try? FileManager.default.attributesOfItem(atPath: dir + "/" + $0)[.size] as? Int) ?? 0) }
        let perMinute = { (b: Int64) in Int64(Double(b) / (Double(seconds) / 60)) }
        func ms(since t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6 }

        let t0 = DispatchTime.now().uptimeNanoseconds
        let source: ReplaySource
        do { source = try ReplaySource.open(path: dir + "/r.jsonl.gz", version: GRPCTop.version) } catch { throw UsageFailure("\(error)") }
        var player = ReplayPlayer(source, speed: 64)
        let openMs = ms(since: t0)
        guard source.indexed, source.stoppedAt == nil, source.duration == Millis(seconds) * 1000 else {
            throw UsageFailure("the benchmark's recording did not read back whole: \(source.stoppedAt?.description ?? "no index")")
        }
        // Seeks to random points (each one a segment the player has not read yet, mostly).
        var rng = SeededGenerator(seed: 7)
        var seekMs: [Double] = [], readMs: [Double] = [], applyMs: [Double] = [], renderMs: [Double] = [], keyframeMs: [Double] = []
        for _ in 0..<30 {
            let to = Millis(rng.next() % UInt64(source.duration + 1))
            let s0 = DispatchTime.now().uptimeNanoseconds
            // The segment the seek starts from and its keyframe, read first so their cost is
            // counted apart (the player may play on instead, when that is cheaper).
            let k = source.restartSegment(for: to)
            _ = source.segment(k)
            let sk = DispatchTime.now().uptimeNanoseconds
            if k > 0, source.keyframeModel(k) != nil { keyframeMs.append(ms(since: sk)) }
            let s1 = DispatchTime.now().uptimeNanoseconds
            player.seek(to: to)
            let s2 = DispatchTime.now().uptimeNanoseconds
            _ = Dashboard.render(model: player.model, state: ViewState(), width: 200, height: 60, previousRows: nil)
            seekMs.append(ms(since: s0))
            readMs.append(Double(s1 - s0) / 1e6)
            applyMs.append(Double(s2 - s1) / 1e6)
            renderMs.append(ms(since: s2))
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        // 64×: each 250 ms frame covers 16 s of session (64 ticks) to apply, then one render;
        // at most 5 minutes of it.
        player.seek(to: 0)
        var frameMs: [Double] = []
        var rows: PaneRows?
        var state = ViewState()
        while !player.atEnd && player.position < 300_000 {
            let f0 = DispatchTime.now().uptimeNanoseconds
            player.tick(wallMs: 250)
            state.timeline = Timeline(position: player.position, duration: player.duration, speed: 64, paused: false, markers: player.markers)
            let frame = Dashboard.render(model: player.model, state: state, width: 200, height: 60, previousRows: rows)
            rows = frame.rows
            frameMs.append(ms(since: f0))
        }
        seekMs.sort()
        // A killed recorder's file: the plain one without its last line (the index).
        let killed = dir + "/killed.jsonl"
        try? FileManager.default.removeItem(atPath: killed)
        try FileManager.default.copyItem(atPath: dir + "/r.jsonl", toPath: killed)
        guard let h = FileHandle(forReadingAtPath: killed) else { throw UsageFailure("bench: cannot read \(killed)") }
        let size = try h.seekToEnd()
        try h.seek(toOffset: size - min(size, 1 << 16))
        let tail = try h.readToEnd() ?? Data()
        try h.close()
        guard let lastNL = tail.dropLast().lastIndex(of: 0x0A) else { throw UsageFailure("bench: no index line in \(killed)") }
        guard truncate(killed, off_t(size) - off_t(tail.count - (lastNL - tail.startIndex) - 1)) == 0 else { throw UsageFailure("bench: cannot cut \(killed)") }
        let r0 = DispatchTime.now().uptimeNanoseconds
        let rebuilt: ReplaySource
        do { rebuilt = try ReplaySource.open(path: killed, version: GRPCTop.version) } catch { throw UsageFailure("\(error)") }
        let rebuildMs = ms(since: r0)
        guard rebuilt.indexRebuilt, rebuilt.segmentStarts == source.segmentStarts, rebuilt.restartFrom == source.restartFrom else {
            throw UsageFailure("bench: the rebuilt index differs from the recorder's")
        }
        return Report(endpoints: 100, rps: 10_000, minutes: Double(seconds) / 60, keyframeEveryMs: keyframeEveryMs,
                      bytesPerMinutePlain: perMinute(sizes[0]), bytesPerMinuteGzip: perMinute(sizes[1]),
                      openMs: openMs, rebuildIndexMs: rebuildMs, seekMsP50: seekMs[seekMs.count / 2], seekMsMax: seekMs.last ?? 0, seeks: seekMs.count,
                      seekReadMsP50: median(readMs), seekApplyMsP50: median(applyMs), seekRenderMsP50: median(renderMs),
                      keyframeDecodeMsP50: keyframeMs.isEmpty ? 0 : median(keyframeMs),
                      playback64xFrameMsP50: frameMs.sorted()[frameMs.count / 2], playback64xFrameMsMax: frameMs.max() ?? 0)
    }

    static func table(_ r: Report) -> String {
        """
        Recording: \(r.endpoints) endpoints at \(r.rps) RPS, \(formatNumber(r.minutes)) min synthetic session, keyframes every \(formatDuration(r.keyframeEveryMs))
          bytes per minute            plain \(formatBytes(r.bytesPerMinutePlain))   gzip \(formatBytes(r.bytesPerMinuteGzip))
          open (header, index, first segment, first frame's model)   \(String(format: "%.1f", r.openMs)) ms
          open without the index (a killed recorder's plain file: the index rebuilt by one pass)   \(String(format: "%.0f", r.rebuildIndexMs)) ms
          seek to a random point + render a 200×60 frame ( \(r.seeks) seeks)   p50 \(String(format: "%.1f", r.seekMsP50)) ms   max \(String(format: "%.1f", r.seekMsMax)) ms
            parts (medians): read the segment \(String(format: "%.1f", r.seekReadMsP50)) ms (its keyframe \(String(format: "%.1f", r.keyframeDecodeMsP50)) ms), apply up to the target \(String(format: "%.1f", r.seekApplyMsP50)) ms, render \(String(format: "%.1f", r.seekRenderMsP50)) ms
          64× playback, per 250 ms frame (16 s of events applied + a 200×60 render)  p50 \(String(format: "%.1f", r.playback64xFrameMsP50)) ms   max \(String(format: "%.1f", r.playback64xFrameMsMax)) ms

        """
    }
}
