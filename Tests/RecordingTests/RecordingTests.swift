import Foundation
import Testing
import TopologyCore
import TopologyView
@testable import TopologyRecording

/// A small but busy session, built from events as a live one is (ScriptedModel), recorded.
func scriptedEvents(ticks: Int = 16) -> [TimedEvent] {
    var s = ScriptedModel(target: "file:endpoints.txt", resolver: "file")
    var events: [TimedEvent] = []
    var t: Millis = 0
    func add(_ e: Event, after: Millis = 10) { t += after; events.append(TimedEvent(at: t, e)) }
    _ = s
    add(.sessionStarted(SessionInfo(target: "file:endpoints.txt", resolver: "file", policy: .roundRobin, rpc: "Health/Check",
                                    identityHeader: nil, traffic: .rate(300), startedAt: 1_795_000_000, host: "test", version: "test")), after: 0)
    add(.resolverUpdated(ResolverResult(endpoints: (0..<3).map { ScriptedModel.endpoint($0) })))
    for id in 1...3 {
        add(.subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
        add(.subchannel(id, .connected(local: "10.9.0.1:4\(id)000", remote: "10.0.0.\(id):50051", connectMs: 2)))
        add(.subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
    }
    for k in 0..<ticks {
        var tick = StatsTick()
        for (i, name) in ScriptedModel.pods(3).enumerated() {
            var d = RPCDelta()
            d.started = 20 + i
            d.succeeded = 20 + i
            d.latency.values = [900 + UInt64(k) * 40, 2700 + UInt64(k) * 50]
            d.latency.counts = [UInt32(19 + i), 1]
            tick.backends.append(BackendTick(name: name, delta: d))
            tick.subchannels.append(SubchannelTick(id: i + 1, activeStreams: 1, queued: 0, delta: d))
        }
        add(.stats(tick), after: 250)
        if k == 8 { add(.marker("saw it")) }
    }
    add(.subchannel(2, .stateChanged(to: .transientFailure, reason: "connection reset", backoffMs: 1000)))
    add(.resolverUpdated(ResolverResult(endpoints: [0, 2].map { ScriptedModel.endpoint($0) })))
    return events
}

func tempPath(_ name: String) -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-rec-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d + "/" + name
}

/// Records `events` as the engine would (with the model after each), keyframes every second
/// by default, and closes the file (`close: false` leaves it as a killed recorder would: no index).
func write(_ events: [TimedEvent], to path: String, marks: Set<Int> = [], keyframeEveryMs: Millis = 1000, close: Bool = true) throws {
    let w = try RecordingWriter(path: path, header: RecordingHeader(grpctop: "0.1.0", target: "file:endpoints.txt", options: ["file:endpoints.txt"], startedAt: 1_795_000_000, host: "test"),
                                keyframeEveryMs: keyframeEveryMs)
    var model = Model()
    for (i, e) in events.enumerated() {
        _ = model.apply(e)
        w.record(e, model: model)
        if marks.contains(i) { w.markSnapshot(at: e.at) }
    }
    if close {
        w.close()
    } else {
        // What a SIGKILL leaves: everything flushed, no index.
        w.flush()
        let flushed = try Data(contentsOf: URL(fileURLWithPath: path))
        w.close()
        try flushed.write(to: URL(fileURLWithPath: path))
    }
}

func modelOf(_ events: [TimedEvent]) -> Model {
    var m = Model()
    for e in events { _ = m.apply(e) }
    return m
}

struct RecordingFormatTests {
    /// Written and read back (plain and gzip), the replay builds the same model: same snapshot,
    /// same summary, same rendered frame.
    @Test(arguments: ["session.jsonl", "session.jsonl.gz"]) func roundTrip(name: String) throws {
        let events = scriptedEvents()
        let path = tempPath(name)
        try write(events, to: path, marks: [5, 12])
        let rec = try Recording.read(path: path, version: "0.1.0")
        #expect(rec.stoppedAt == nil && !rec.truncated && rec.events == events.count && rec.hasSnapshotMarks)
        if name.hasSuffix(".gz") {
            let raw = try #require(FileManager.default.contents(atPath: path))
            #expect(raw.starts(with: [0x1f, 0x8b]))
        }
        var r = Replayer(rec)
        while !r.atEnd { r.step() }
        let live = modelOf(events)
        #expect(Snapshot(r.model) == Snapshot(live))
        #expect(Summary(r.model).table() == Summary(live).table())
        let a = Dashboard.render(model: r.model, state: ViewState(), width: 120, height: 40).grid.lines
        let b = Dashboard.render(model: live, state: ViewState(), width: 120, height: 40).grid.lines
        #expect(a == b)
    }

    /// Cut at every byte offset: never a crash; the lines read are always a prefix of the whole.
    @Test func truncationAtEveryOffset() throws {
        let events = Array(scriptedEvents().prefix(14))
        let path = tempPath("small.jsonl")
        try write(events, to: path, marks: [3])
        let full = try #require(FileManager.default.contents(atPath: path))
        let whole = try Recording.parse(full, name: "small.jsonl", version: "0.1.0").lines
        let headerEnd = full.firstIndex(of: 0x0A)!
        for cut in 0..<full.count {
            let part = full.prefix(cut)
            do {
                let rec = try Recording.parse(part, name: "small.jsonl", version: "0.1.0")
                #expect(Array(whole.prefix(rec.lines.count)) == rec.lines, "cut at \(cut)")
                #expect(rec.stoppedAt == nil, "cut at \(cut): \(String(describing: rec.stoppedAt))")
                var r = Replayer(rec)
                while !r.atEnd { r.step() }
            } catch {
                #expect(cut <= headerEnd, "only a cut inside the header line may fail (cut at \(cut): \(error))")
            }
        }
    }

    @Test func corruptLineStopsThereWithFileAndLine() throws {
        let events = Array(scriptedEvents().prefix(10))
        let path = tempPath("bad.jsonl")
        try write(events, to: path)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[6] = #"{"t":70,"e":{"nonsense":{}}}"#
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let rec = try Recording.read(path: path, version: "0.1.0")
        #expect(rec.lines.count == 5)
        #expect(rec.stoppedAt?.description.hasPrefix("\(path):7: not a recording line") == true, "\(String(describing: rec.stoppedAt))")
    }

    @Test func notARecordingNewerFormatEmpty() throws {
        let empty = tempPath("empty")
        FileManager.default.createFile(atPath: empty, contents: Data())
        let text = tempPath("notes.txt")
        try "hello\nworld\n".write(toFile: text, atomically: true, encoding: .utf8)
        let newer = tempPath("newer.jsonl")
        try #"{"format":"grpctop-recording","grpctop":"9.0.0","host":"h","options":[],"startedAt":0,"target":"x","version":7}"#.appending("\n").write(toFile: newer, atomically: true, encoding: .utf8)
        let cases: [(String, String)] = [
            (empty, "is empty: not a grpctop recording"),
            (text, "is not a grpctop recording"),
            (newer, "has recording format 7, written by grpctop 9.0.0; this grpctop (0.1.0) reads format 3: replay it with grpctop 9.0.0 or newer"),
            (tempPath("missing"), "no such file"),
        ]
        for (path, expected) in cases {
            #expect(throws: RecordingError.self) { try Recording.read(path: path, version: "0.1.0") }
            do { _ = try Recording.read(path: path, version: "0.1.0") } catch {
                #expect(error.description.contains(expected), "\(error)")
                #expect(!error.description.contains("\n"))
            }
            // The dashboard opens files through the index reader: the same messages.
            do { _ = try ReplaySource.open(path: path, version: "0.1.0") } catch {
                #expect(error.description.contains(expected), "\(error)")
            }
        }
    }

    /// Random damage to a valid recording: reading and replaying never crash.
    @Test func fuzzedRecordingsNeverCrash() throws {
        let path = tempPath("fuzz.jsonl")
        try write(scriptedEvents(), to: path, marks: [4])
        let good = try #require(FileManager.default.contents(atPath: path))
        var rng = SeededGenerator(seed: 42)
        let alphabet = Array(#"{}[]":,0123456789-eEtrufalsn\ "#.utf8) + [0x0A, 0x00, 0xFF]
        var readWhole = 0, stoppedEarly = 0, rejected = 0
        for _ in 0..<400 {
            var bytes = [UInt8](good)
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
            }
            guard let rec = try? Recording.parse(Data(bytes), name: "fuzz", version: "0.1.0") else {
                rejected += 1
                continue
            }
            if rec.stoppedAt != nil { stoppedEarly += 1 } else { readWhole += 1 }
            var r = Replayer(rec)
            while !r.atEnd { r.step() }
            _ = Dashboard.render(model: r.model, state: ViewState(), width: 100, height: 30)
            _ = Summary(r.model).table()
        }
        // The damage reached every path: whole files (values changed inside valid JSON), files
        // that stop at a bad line, and files refused outright (a damaged header).
        #expect(readWhole > 0 && stoppedEarly > 0 && rejected > 0, "\(readWhole) whole, \(stoppedEarly) stopped, \(rejected) refused")
    }

    @Test func secretsAreRedacted() {
        // The -H values as ArgumentParser hands them over, whatever spelling carried them.
        let headers = ["authorization: Bearer abc", "x-api-key: k1", "x-tenant: blue", "x-team: red", "x-auth: S", "x-request-id: r-17", "x-zone: z1"]
        let args = ["watch", "dns:///x:1", "-H", "authorization: Bearer abc", "--header=x-api-key: k1", "-H", "x-tenant: blue",
                    "-Hx-team: red", "-H=x-auth: S", "-H", "x-request-id: r-17", "-H", "x-zone: z1", "--keep-header", "x-zone",
                    "--etcd-password", "hunter2", "--token=t0", "--etcd-password-file", "/run/pw"]
        let out = Redaction.options(args, headers: headers, keep: ["x-zone"], secrets: ["hunter2"])
        #expect(out == ["watch", "dns:///x:1", "-H", "authorization: [redacted]", "--header=x-api-key: [redacted]", "-H", "x-tenant: [redacted]",
                        "-Hx-team: [redacted]", "-H=x-auth: [redacted]", "-H", "x-request-id: r-17", "-H", "x-zone: z1", "--keep-header", "x-zone",
                        "--etcd-password", "[redacted]", "--token=[redacted]", "--etcd-password-file", "/run/pw"])
        // The attached form of a password flag, found from the parsed value.
        #expect(Redaction.options(["--etcd-password=hunter2"], secrets: ["hunter2"]) == ["--etcd-password=[redacted]"])
        for line in out { #expect(!line.contains("abc") && !line.contains("k1") && !line.contains("hunter2") && !line.hasSuffix(": S")) }
    }
}

struct ReplayPlayerTests {
    func recording() throws -> Recording {
        let path = tempPath("player.jsonl")
        try write(scriptedEvents(), to: path)
        return try Recording.read(path: path, version: "0.1.0")
    }

    /// Seeking anywhere, forwards or backwards, lands on the model playing through gives.
    @Test func seekEqualsPlayingThrough() throws {
        let rec = try recording()
        var rng = SeededGenerator(seed: 7)
        var player = ReplayPlayer(rec, checkpointEveryMs: 700)
        for _ in 0..<60 {
            let t = Millis.random(in: 0...(rec.duration + 500), using: &rng)
            player.seek(to: t)
            var straight = Replayer(rec)
            straight.advance(to: min(t, rec.duration))
            #expect(Snapshot(player.model) == Snapshot(straight.model), "seek to \(t)")
            #expect(player.position == min(t, rec.duration))
        }
    }

    /// Through the index (plain and gzip): opening reads the first segment only, and seeking
    /// anywhere — restoring keyframes, forwards and backwards — lands on the model (and the
    /// frame) playing the whole file through gives.
    @Test(arguments: ["indexed.jsonl", "indexed.jsonl.gz"]) func keyframeSeekEqualsPlayingThrough(name: String) throws {
        let path = tempPath(name)
        let events = scriptedEvents(ticks: 90)
        try write(events, to: path, keyframeEveryMs: 700)
        let source = try ReplaySource.open(path: path, version: "0.1.0")
        let whole = try Recording.read(path: path, version: "0.1.0")
        #expect(source.indexed && source.stoppedAt == nil)
        // Keyframes every 700 ms of a 22 s session; the ones of its last 10 s are no restart points.
        #expect(source.segmentStarts.count >= 15, "\(source.segmentStarts)")
        #expect(zip(source.segmentStarts, source.restartFrom).dropFirst().allSatisfy { $1 >= $0 + 9_750 }, "\(source.restartFrom)")
        #expect(source.restartFrom.last! <= whole.duration && source.restartFrom.last! > whole.duration - 1_000)
        #expect(source.duration == whole.duration && source.markers == [whole.lines.first { if case .event(let e) = $0, case .marker = e.event { true } else { false } }!.at])
        #expect(source.header.target == whole.header.target)
        var rng = SeededGenerator(seed: 11)
        var player = ReplayPlayer(source)
        for _ in 0..<80 {
            let t = Millis.random(in: 0...(whole.duration + 500), using: &rng)
            player.seek(to: t)
            var straight = Replayer(whole)
            straight.advance(to: min(t, whole.duration))
            #expect(Snapshot(player.model) == Snapshot(straight.model), "seek to \(t)")
            #expect(Summary(player.model) == Summary(straight.model), "seek to \(t)")
            let a = Dashboard.render(model: player.model, state: ViewState(), width: 160, height: 50).grid
            let b = Dashboard.render(model: straight.model, state: ViewState(), width: 160, height: 50).grid
            #expect(a == b, "frame at \(t)")
        }
        // Playing through the keyframes (not restoring them) gives the same end.
        var play = ReplayPlayer(source, speed: 1)
        while !play.atEnd { play.tick(wallMs: 250) }
        #expect(Snapshot(play.model) == Snapshot(modelOf(events)))
    }

    /// A damaged keyframe in an indexed file: the first seek that needs it finds out, the
    /// replay then ends where its segment starts (saying which line), and everything before
    /// stays as playing through gives.
    @Test func damagedKeyframeEndsTheReplayBeforeIt() throws {
        let path = tempPath("damaged-keyframe.jsonl")
        let events = scriptedEvents(ticks: 90)
        try write(events, to: path, keyframeEveryMs: 700)
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        let probe = try ReplaySource.open(path: path, version: "0.1.0")
        let j = 10  // ~7 s in: far enough ahead of the start that a seek restarts from it
        let offset = Int(try #require(probe.indexedOffsets?[j - 1]))
        // Same length, so the index still points at the lines: `"t":` inside the model becomes `"t"!`.
        let nl = try #require(bytes[offset...].firstIndex(of: 0x0A))
        let line = String(decoding: bytes[offset..<nl], as: UTF8.self)
        let colon = try #require(line.range(of: #""now":"#)).upperBound
        bytes[offset + line.utf8.distance(from: line.startIndex, to: colon) - 1] = UInt8(ascii: "!")
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let source = try ReplaySource.open(path: path, version: "0.1.0")
        let start = source.segmentStarts[j]
        var player = ReplayPlayer(source)
        player.seek(to: source.restartFrom[j] + 100)
        #expect(source.stoppedAt?.description.contains("not a keyframe") == true, "\(String(describing: source.stoppedAt))")
        #expect(source.duration == start && player.position == start)
        let whole = try Recording.read(path: path, version: "0.1.0")
        var straight = Replayer(whole)
        straight.advance(to: start)
        #expect(Snapshot(player.model) == Snapshot(straight.model))
    }

    /// `replay --batch` goes through an indexed file a segment at a time and, with `--from`,
    /// starts at a keyframe: the same snapshots and end as the file read whole and played
    /// through from the start.
    @Test(arguments: [(Millis(0), Millis.max, Millis(1000)), (Millis(14_300), Millis(19_000), Millis(700)), (Millis(17_000), Millis.max, Millis(250))])
    func batchFromAKeyframeEqualsPlayingThrough(from: Millis, to: Millis, interval: Millis) throws {
        let events = scriptedEvents(ticks: 90)
        let indexed = tempPath("batch.jsonl.gz"), whole = tempPath("batch-killed.jsonl.gz")
        try write(events, to: indexed, keyframeEveryMs: 700)
        try write(events, to: whole, keyframeEveryMs: 700, close: false)
        let a = try ReplaySource.open(path: indexed, version: "0.1.0"), b = ReplaySource(try Recording.read(path: whole, version: "0.1.0"))
        #expect(a.indexed && !b.indexed)
        if from > 0 { #expect(a.restartSegment(for: from) > 0, "--from \(from) starts at a keyframe") }
        var snapsA: [Snapshot] = [], snapsB: [Snapshot] = []
        var paced: Millis = 0
        let endA = BatchReplay.run(a, from: from, to: to, intervalMs: interval, pace: { paced += $0 }) { snapsA.append(Snapshot($0)) }
        let endB = BatchReplay.run(b, from: from, to: to, intervalMs: interval) { snapsB.append(Snapshot($0)) }
        #expect(snapsA.count >= 5 && snapsA == snapsB)
        #expect(Summary(endA) == Summary(endB) && Snapshot(endA) == Snapshot(endB))
        #expect(paced == events.last { $0.at <= to }!.at - from, "paced over the session time replayed")
    }

    /// A recorder that was killed leaves keyframes but no index: one pass over the file rebuilds
    /// the index the recorder would have written (same keyframes, restart points, markers,
    /// length), and seeking through it lands on the model playing through gives. Cut anywhere
    /// (killed mid-write), it still opens and replays its complete lines.
    @Test(arguments: ["killed.jsonl", "killed.jsonl.gz"]) func withoutIndexTheIndexIsRebuilt(name: String) throws {
        let events = scriptedEvents(ticks: 90)
        let closed = tempPath("closed-" + name), killed = tempPath(name)
        try write(events, to: closed, keyframeEveryMs: 700)
        try write(events, to: killed, keyframeEveryMs: 700, close: false)
        let a = try ReplaySource.open(path: closed, version: "0.1.0"), b = try ReplaySource.open(path: killed, version: "0.1.0")
        #expect(a.indexed && !a.indexRebuilt && b.indexed && b.indexRebuilt && b.stoppedAt == nil)
        #expect(b.segmentStarts == a.segmentStarts && b.restartFrom == a.restartFrom && b.segmentStarts.count >= 15)
        #expect(b.markers == a.markers && b.duration == a.duration && b.markers.count == 1)
        let whole = try Recording.read(path: killed, version: "0.1.0")
        var rng = SeededGenerator(seed: 13)
        var player = ReplayPlayer(b)
        for _ in 0..<30 {
            let t = Millis.random(in: 0...whole.duration, using: &rng)
            player.seek(to: t)
            var straight = Replayer(whole)
            straight.advance(to: t)
            #expect(Snapshot(player.model) == Snapshot(straight.model), "seek to \(t)")
        }
        // Killed mid-write: cut at random points. Only a cut inside the header line may fail
        // to open (nothing to replay yet); every other cut opens.
        let bytes = try #require(FileManager.default.contents(atPath: killed))
        let headerEnd = name.hasSuffix(".gz") ? 0 : (bytes.firstIndex(of: 0x0A) ?? 0)
        var cutsOpened = 0, cutsRefused = 0
        for _ in 0..<25 {
            let cut = Int.random(in: 1..<bytes.count, using: &rng)
            let path = tempPath("cut-" + name)
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: path))
            guard let source = try? ReplaySource.open(path: path, version: "0.1.0") else {
                cutsRefused += 1
                #expect(name.hasSuffix(".gz") || cut <= headerEnd, "a cut at \(cut), after the header, did not open")
                continue
            }
            cutsOpened += 1
            let prefix = try Recording.read(path: path, version: "0.1.0")
            var p = ReplayPlayer(source)
            p.seek(to: source.duration)
            var straight = Replayer(prefix)
            straight.advance(to: source.duration)
            #expect(source.duration <= prefix.duration && Snapshot(p.model) == Snapshot(straight.model), "cut at \(cut) of \(bytes.count)")
        }
        #expect(cutsOpened >= 20, "\(cutsOpened) of 25 cuts opened, \(cutsRefused) refused")
        // Damaged anywhere: opening, seeking about and rendering never crash.
        let alphabet = Array(#"{}[]":,0123456789-tkeyframsn"#.utf8) + [0x0A, 0x00, 0xFF, 0x1F, 0x8B]
        var opened = 0
        for _ in 0..<150 {
            var damaged = [UInt8](bytes)
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = Int.random(in: 0..<damaged.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: damaged[i] = alphabet.randomElement(using: &rng)!
                case 1: damaged.remove(at: i)
                default: damaged.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
            }
            let path = tempPath("fuzz-" + name)
            try Data(damaged).write(to: URL(fileURLWithPath: path))
            guard let source = try? ReplaySource.open(path: path, version: "0.1.0") else { continue }
            opened += 1
            var p = ReplayPlayer(source)
            for t in [source.duration, source.duration / 2, 0, source.duration * 3 / 4] { p.seek(to: t) }
            _ = Dashboard.render(model: p.model, state: ViewState(), width: 100, height: 30)
        }
        #expect(opened > 50)
    }

    /// A `.gz` recording gunzipped keeps an index whose offsets are the compressed file's, and
    /// an edited plain one has lines moved: the index is checked against the bytes (its `bytes`,
    /// what each keyframe offset points at) and rebuilt, so every seek still lands right.
    @Test func anIndexThatDoesNotMatchTheFileIsRebuilt() throws {
        let events = scriptedEvents(ticks: 90)
        let gz = tempPath("moved.jsonl.gz"), plain = tempPath("plain.jsonl")
        try write(events, to: gz, keyframeEveryMs: 700)
        try write(events, to: plain, keyframeEveryMs: 700)
        let gunzipped = tempPath("gunzipped.jsonl")
        try #require(Recording.gunzip(gz, limit: 1 << 30)).write(to: URL(fileURLWithPath: gunzipped))
        // Edited: a space inside the header line moves every offset by one.
        var edited = try #require(FileManager.default.contents(atPath: plain))
        edited.insert(UInt8(ascii: " "), at: 1)
        let editedPath = tempPath("edited.jsonl")
        try edited.write(to: URL(fileURLWithPath: editedPath))
        let reference = try ReplaySource.open(path: plain, version: "0.1.0")
        #expect(reference.indexed && !reference.indexRebuilt && reference.segmentStarts.count >= 15)
        for path in [gunzipped, editedPath] {
            let source = try ReplaySource.open(path: path, version: "0.1.0")
            #expect(source.indexRebuilt && source.stoppedAt == nil, "\(path)")
            #expect(source.segmentStarts == reference.segmentStarts && source.duration == reference.duration)
            var p = ReplayPlayer(source), q = ReplayPlayer(reference)
            for t in stride(from: source.duration, through: 0, by: -1_700) {
                p.seek(to: t)
                q.seek(to: t)
                #expect(Snapshot(p.model) == Snapshot(q.model), "seek to \(t) in \(path)")
            }
        }
    }

    /// A keyframe holds the whole model but the last 10 s of latency samples: decoded, and
    /// `recentTicks` stats ticks later, it renders and goes on exactly as the original.
    @Test func keyframeRoundTrip() throws {
        let events = scriptedEvents(ticks: 70)
        var m = Model()
        var compared = 0
        for (i, e) in events.enumerated() {
            _ = m.apply(e)
            guard i % 5 == 0 else { continue }
            let line = try RecordingCodec.encodeKeyframe(at: e.at, m)
            #expect(RecordingCodec.isKeyframe(line[...]))
            var back = try RecordingCodec.decoder().decode(RecordingCodec.KeyframeLine.self, from: line).keyframe
            var original = m
            var ticks = 0
            for later in events[(i + 1)...] {
                _ = original.apply(later)
                _ = back.apply(later)
                if case .stats = later.event { ticks += 1 }
                guard ticks >= TrafficSeries.recentTicks else { continue }
                #expect(Snapshot(back) == Snapshot(original) && Summary(back) == Summary(original), "keyframe after event \(i), \(ticks) ticks on")
                #expect(Dashboard.render(model: back, state: ViewState(), width: 140, height: 45).grid
                        == Dashboard.render(model: original, state: ViewState(), width: 140, height: 45).grid)
                compared += 1
            }
        }
        #expect(compared > 50)
    }

    /// Format 2 wrote index entries without the restart time (its keyframes held the latency
    /// samples too): such a keyframe is a restart point at once.
    @Test func formatTwoIndexEntriesRestartAtTheirKeyframe() throws {
        let line = #"{"index":{"duration":90000,"keyframes":[[30000,81234,41],[60000,99000,80,70000]],"markers":[],"snapshots":false}}"#
        let index = try RecordingCodec.decoder().decode(RecordingCodec.IndexLine.self, from: Data(line.utf8)).index
        #expect(index.keyframes.map(\.from) == [30000, 70000])
    }

    /// A keyframe's traffic series is one string of integers: damaged, it is refused (never a
    /// crash, never a wrong series); format 2's keyed objects still read.
    @Test func trafficSeriesInKeyframes() throws {
        var m = Model()
        for e in scriptedEvents(ticks: 30) { _ = m.apply(e) }
        let series = try #require(m.subchannels[1]?.traffic)
        let compact = String(decoding: try JSONEncoder().encode(series), as: UTF8.self)
        #expect(compact.hasPrefix("\"1,"))
        let back = try JSONDecoder().decode(TrafficSeries.self, from: Data(compact.utf8))
        #expect(back.total == series.total && back.rate(seconds: 10, tickMs: 250) == series.rate(seconds: 10, tickMs: 250))
        #expect(back.latency.percentile(50) == series.latency.percentile(50) && back.latency.percentile(100) == series.latency.percentile(100))
        var rng = SeededGenerator(seed: 3)
        var refused = 0
        let body = Array(compact.utf8.dropFirst().dropLast())
        for _ in 0..<500 {
            var bytes = body
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: bytes[i] = Array("0123456789,-x".utf8).randomElement(using: &rng)!
            case 1: bytes.remove(at: i)
            default: bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...40, using: &rng)))
            }
            if TrafficSeries(compact: String(decoding: bytes, as: UTF8.self)) == nil { refused += 1 }
        }
        #expect(refused > 100)
        let formatTwo = #"{"total":{"started":3,"succeeded":3,"failed":0,"codes":{},"messagesSent":3,"messagesReceived":3},"c":[1,2],"latency":{"values":[900,1000],"counts":[2,1]},"recent":[{"values":[900],"counts":[1]}],"at":500,"w":[3,3,3]}"#
        let old = try JSONDecoder().decode(TrafficSeries.self, from: Data(formatTwo.utf8))
        #expect(old.total.started == 3 && old.latency.count == 3 && old.recentPercentile(50) == 900 && old.completed(lastSeconds: 1, tickMs: 250) == 3)
    }

    @Test func clockSpeedPauseAndMarkers() throws {
        let rec = try recording()
        var p = ReplayPlayer(rec)
        p.tick(wallMs: 1000)
        #expect(p.position == 1000 + rec.lines[0].at)
        p.changeSpeed(faster: true)
        #expect(p.speed == 2)
        p.tick(wallMs: 500)
        #expect(p.position == 2000)
        p.togglePause()
        p.tick(wallMs: 1000)
        #expect(p.position == 2000 && p.paused)
        for _ in 0..<10 { p.changeSpeed(faster: true) }
        #expect(p.speed == 64)
        for _ in 0..<20 { p.changeSpeed(faster: false) }
        #expect(p.speed == 0.25)
        p.seek(to: 0)
        p.nextMarker()
        #expect(p.position == p.markers.first && p.model.markers.count == 1)
        p.seek(to: rec.duration)
        p.previousMarker()
        #expect(p.position == p.markers.first)
        p.togglePause()
        p.changeSpeed(faster: true)
        p.tick(wallMs: 100_000)
        #expect(p.atEnd && p.paused && p.position == rec.duration)
    }
}

struct ANSIFrameTests {
    /// Frame updates (only changed rows after the first) rebuild exactly the rendered grid.
    @Test func updatesRebuildTheGrid() throws {
        let events = scriptedEvents()
        var chunks: [String] = []
        var previous: CellGrid?
        var m = Model()
        var last: CellGrid?
        for (i, e) in events.enumerated() {
            _ = m.apply(e)
            guard i % 5 == 0 || i == events.count - 1 else { continue }
            let grid = Dashboard.render(model: m, state: ViewState(), width: 100, height: 30).grid
            chunks.append(ANSIFrame.update(from: previous, to: grid))
            previous = grid
            last = grid
            #expect(ANSIScreen.lines(of: chunks, width: 100, height: 30) == grid.lines, "after event \(i)")
        }
        #expect(ANSIFrame.update(from: last, to: last!) == "", "an unchanged frame writes nothing")
    }
}

struct CompactTickTests {
    @Test func statsTicksRoundTripCompactly() throws {
        var a = RPCDelta()
        a.started = 30; a.succeeded = 27; a.failed = 3; a.codes = [14: 2, 4: 1]; a.messagesSent = 30; a.messagesReceived = 27
        a.latency.values = [900, 1024, 2048, 90_000]; a.latency.counts = [10, 9, 7, 1]
        var b = a
        b.failed = 0; b.codes = [:]
        var other = a
        other.started = 5
        let tick = StatsTick(subchannels: [SubchannelTick(id: 1, activeStreams: 3, queued: 1, delta: a),
                                           SubchannelTick(id: 2, activeStreams: 0, queued: 0, delta: other)],
                             backends: [BackendTick(name: "pod-a", delta: a), BackendTick(name: "pod-b", delta: b)],
                             unassigned: b, channelQueued: 4)
        let data = try JSONEncoder().encode(tick)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("-1"), "subchannel 1 refers to backend pod-a: \(text)")
        #expect(try JSONDecoder().decode(StatsTick.self, from: data) == tick)
        // Damaged: a reference to a backend the tick does not have, latency pairs cut in half.
        for bad in [#"{"b":[],"s":[[1,0,0,-3]]}"#, #"{"b":[["x",[1,1,0,1,1,[900]]]],"s":[]}"#, #"{"b":[["x",[1,1,0,1,1,[18446744073709551615,1,5,1]]]],"s":[]}"#] {
            #expect(throws: (any Error).self) { try JSONDecoder().decode(StatsTick.self, from: Data(bad.utf8)) }
        }
    }
}

/// The fast reader of stats lines reads what `JSONDecoder` reads, and gives up (nil) on
/// anything `JSONDecoder` would not read the same way.
struct FastStatsLineTests {
    static func randomTick(_ rng: inout SeededGenerator) -> StatsTick {
        func delta() -> RPCDelta {
            var d = RPCDelta()
            d.started = Int.random(in: 0...500, using: &rng)
            d.succeeded = Int.random(in: 0...500, using: &rng)
            d.failed = Int.random(in: 0...3, using: &rng)
            if d.failed > 0 { d.codes[Int.random(in: 0...16, using: &rng)] = 1; d.codes[14] = d.failed }
            d.messagesSent = Int.random(in: 0...500, using: &rng)
            d.messagesReceived = Int.random(in: 0...500, using: &rng)
            var v: UInt64 = 0
            for _ in 0..<Int.random(in: 0...30, using: &rng) {
                v += UInt64.random(in: 1...50_000, using: &rng)
                d.latency.values.append(v)
                d.latency.counts.append(UInt32.random(in: 1...40, using: &rng))
            }
            return d
        }
        var t = StatsTick()
        for i in 0..<Int.random(in: 0...12, using: &rng) { t.backends.append(BackendTick(name: "pod-\(i)-7f9c", delta: delta())) }
        for id in 1...Int.random(in: 1...12, using: &rng) {
            let shared = !t.backends.isEmpty && Bool.random(using: &rng)
            t.subchannels.append(SubchannelTick(id: id, activeStreams: Int.random(in: 0...100, using: &rng), queued: Int.random(in: 0...3, using: &rng),
                                                delta: shared ? t.backends.randomElement(using: &rng)!.delta : delta()))
        }
        if Bool.random(using: &rng) { t.unassigned = delta() }
        if Bool.random(using: &rng) { t.channelQueued = Int.random(in: 1...9, using: &rng) }
        return t
    }

    @Test func readsWhatJSONDecoderReads() throws {
        var rng = SeededGenerator(seed: 5)
        let decoder = RecordingCodec.decoder()
        var damagedRead = 0, damagedRefused = 0
        for k in 0..<300 {
            let e = TimedEvent(at: Millis(k * 250), .stats(Self.randomTick(&rng)))
            let line = try RecordingCodec.encodeEvent(e)
            #expect(FastStatsLine.decode(line[...]) == e)
            // Damaged copies: whatever the fast reader accepts, JSONDecoder reads the same.
            for _ in 0..<20 {
                var bytes = [UInt8](line)
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                let alphabet = Array(#"{}[]":,0123456789-.eE "\"#.utf8)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng)!
                case 1: bytes.remove(at: i)
                default: bytes.insert(alphabet.randomElement(using: &rng)!, at: i)
                }
                let data = Data(bytes)
                if let fast = FastStatsLine.decode(data[...]) {
                    let slow = try decoder.decode(RecordingCodec.EventLine.self, from: data)
                    #expect(slow.e == fast.event && slow.t == fast.at && slow.snapshot == nil, "\(String(decoding: data, as: UTF8.self))")
                    damagedRead += 1
                } else {
                    damagedRefused += 1
                }
            }
        }
        #expect(damagedRead > 100 && damagedRefused > 100, "\(damagedRead) read, \(damagedRefused) refused")
        // Lines it leaves to JSONDecoder.
        for other in [#"{"snapshot":true,"t":5}"#, #"{"e":{"marker":{"_0":"x"}},"t":5}"#, #"{"e":{"stats":{"_0":{"b":[["a\u0041",[1,1,0,1,1,[]]]],"s":[]}}},"t":5}"#,
                      #"{"e":{"stats":{"_0":{"b":[],"s":[[1,0,0,-1]]}}},"t":5}"#, #"{"e":{"stats":{"_0":{"b":[],"s":[]}}},"t":5.0}"#,
                      #"{"e":{"stats":{"_0":{"b":[],"s":[]}}},"t":5} x"#, #"{"e":{"stats":{"_0":{"s":[]}}},"t":5}"#] {
            #expect(FastStatsLine.decode(Data(other.utf8)[...]) == nil, "\(other)")
        }
    }
}

struct ReplayFrameTests {
    /// Frames rendered from the replay at chosen moments (sought in a shuffled order) equal the
    /// frames the live session showed at those moments.
    @Test func framesAtChosenMomentsEqualTheLiveOnes() throws {
        let events = scriptedEvents()
        let path = tempPath("frames.jsonl.gz")
        try write(events, to: path)
        let rec = try Recording.read(path: path, version: "0.1.0")
        var live = Model()
        var liveFrames: [Millis: [String]] = [:]
        let chosen: Set<Int> = [1, 9, 14, 22, events.count - 2, events.count - 1]
        for (i, e) in events.enumerated() {
            _ = live.apply(e)
            // Only where the next event is later (a moment the screen could show).
            if chosen.contains(i), i + 1 == events.count || events[i + 1].at > e.at {
                liveFrames[e.at] = Dashboard.render(model: live, state: ViewState(), width: 120, height: 40).grid.lines
            }
        }
        #expect(liveFrames.count >= 4)
        var player = ReplayPlayer(rec, checkpointEveryMs: 1000)
        var rng = SeededGenerator(seed: 3)
        for t in liveFrames.keys.shuffled(using: &rng) + liveFrames.keys.sorted().reversed() {
            player.seek(to: t)
            let replayed = Dashboard.render(model: player.model, state: ViewState(), width: 120, height: 40).grid.lines
            #expect(replayed == liveFrames[t], "frame at \(t) ms")
        }
    }
}
