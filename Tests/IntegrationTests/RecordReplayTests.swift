import Foundation
import Testing
import TopologyView

/// `watch --record` against a real fleet with churn, then `replay --batch`.
@Suite(.serialized)
struct RecordReplayTests {
    /// A live batch run with churn — a pod added, one SIGKILLed, GOAWAYs from a max connection
    /// age — recorded; `replay --batch` prints exactly what the live run printed.
    @Test(arguments: [("session.jsonl", "json"), ("session.jsonl.gz", "table")])
    func replayEqualsTheLiveRun(file: String, output: String) throws {
        let dir = tempDir()
        let a = try Backend(name: "pod-a")
        let b = try Backend(name: "pod-b", extra: ["--max-connection-age", "1500ms", "--max-connection-age-grace", "1s"])
        let c = try Backend(name: "pod-c")
        let endpoints = dir + "/endpoints.txt"
        try writeEndpoints(endpoints, [a.address + " pod=pod-a", b.address + " pod=pod-b"])
        let path = dir + "/" + file
        let live = try WatchRun(["file:" + endpoints, "--rps", "200", "--interval", "500ms", "--duration", "6s",
                                 "--output", output, "--record", path, "-H", "authorization: Bearer s3cret"])
        sleep(2)
        try writeEndpoints(endpoints, [a.address + " pod=pod-a", b.address + " pod=pod-b", c.address + " pod=pod-c"])
        usleep(1_500_000)
        a.signal(SIGKILL)
        #expect(live.wait() == 0)
        for x in [b, c] { x.stop() }
        #expect(live.out.all.count >= 12, "\(live.err.all)")
        let replay = try WatchRun([path, "--batch", "--output", output], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        #expect(replay.out.all == live.out.all)
        if output == "json" {
            let summary = try #require(live.summary)
            #expect((summary["goAways"] as? Int ?? 0) >= 1, "churn happened: \(summary)")
            // Every RPC is accounted for: ok + failed = total, and most succeeded.
            #expect(summary.int("ok") + summary.int("failed") == summary.int("total") && summary.int("ok") > summary.int("total") / 2, "\(summary)")
            let names = Set((summary["backends"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
            #expect(names == ["pod-a", "pod-b", "pod-c"])
        }
        // The bearer token never reaches the file.
        let text = try String(contentsOfFile: path, encoding: .isoLatin1)
        #expect(!text.contains("s3cret"))
        if !file.hasSuffix(".gz") { #expect(text.contains("authorization: [redacted]")) }
    }

    /// SIGKILL while recording: the file is still readable and holds all but the last second.
    @Test func sigkillLosesAtMostTheLastSecond() throws {
        let dir = tempDir()
        let a = try Backend(name: "pod-a")
        let endpoints = dir + "/endpoints.txt"
        try writeEndpoints(endpoints, [a.address])
        let path = dir + "/killed.jsonl"
        let live = try WatchRun(["file:" + endpoints, "--rps", "100", "--record", path, "--output", "json", "--interval", "250ms"])
        // Killed right after a snapshot printed at session time ≥ 5 s: that moment is known.
        let last = try #require(live.waitForSnapshot(timeout: 15) { $0.double("t") >= 5 })
        kill(live.process.processIdentifier, SIGKILL)
        _ = live.wait()
        a.stop()
        let shown = last.double("t")
        let replay = try WatchRun([path, "--batch", "--output", "json", "--interval", "1s"], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        let summary = try #require(replay.summary)
        // The recorder writes once a second: at most that second (and the tick being collected,
        // 250 ms) is lost.
        #expect(summary.double("seconds") >= shown - 1.25, "recording ends at \(summary.double("seconds")) s, killed after \(shown) s")
        #expect(summary.int("total") >= Int((shown - 1.25) * 100 * 0.8), "\(summary)")
        #expect(replay.snapshots.count >= 2)
    }

    /// Bad recordings: one line, exit 2; a corrupt line: the part before it, then the line, exit 1.
    @Test func badRecordings() throws {
        let dir = tempDir()
        try "not a recording\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        for (args, expected) in [([dir + "/notes.txt", "--batch"], "is not a grpctop recording"),
                                 ([dir + "/none.jsonl", "--batch"], "no such file"),
                                 ([dir + "/notes.txt", "--batch", "--output", "xml"], "--output 'xml' is not known")] {
            let r = try WatchRun(args, subcommand: "replay")
            #expect(r.wait() == 2)
            #expect(r.err.all.count == 1 && r.err.all[0].contains(expected), "\(r.err.all)")
        }
        // A recording with a corrupt line in the middle.
        let a = try Backend(name: "pod-a")
        try writeEndpoints(dir + "/e.txt", [a.address])
        let path = dir + "/s.jsonl"
        let live = try WatchRun(["file:" + dir + "/e.txt", "--rps", "50", "--duration", "2s", "--record", path, "--output", "json"])
        #expect(live.wait() == 0)
        a.stop()
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let bad = lines.count / 2
        lines[bad] = "{\"t\": oops"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try WatchRun([path, "--batch", "--output", "json"], subcommand: "replay")
        #expect(r.wait() == 1)
        #expect(r.summary != nil, "the valid part is replayed")
        #expect(r.err.all.contains { $0.contains("\(path):\(bad + 1): not a recording line") }, "\(r.err.all)")
        // --info says so too (exit 1), and refuses what is not a recording (exit 2).
        let info = try WatchRun([path, "--info"], subcommand: "replay")
        #expect(info.wait() == 1)
        #expect(info.out.all.contains { $0.contains("replayable up to here: \(path):\(bad + 1): not a recording line") }, "\(info.out.all)")
        let notOne = try WatchRun([dir + "/notes.txt", "--info"], subcommand: "replay")
        #expect(notOne.wait() == 2)
        #expect(notOne.err.all.count == 1 && notOne.err.all[0].contains("is not a grpctop recording"), "\(notOne.err.all)")
    }
}

/// The replay dashboard in a real terminal (tmux).
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux"), "tmux is not installed"))
struct ReplayDashboardTests {
    /// Recorded from the live dashboard (REC in the header, `m` marks a moment with a label),
    /// then replayed in the dashboard: play, pause, seek, speed, go to, the marker, quit.
    @Test func recordLiveThenReplayInTheDashboard() throws {
        let dir = tempDir()
        let fleet = try (0..<3).map { try Backend(name: "pod-\($0)") }
        defer { fleet.forEach { $0.stop() } }
        try writeEndpoints(dir + "/e.txt", fleet.enumerated().map { "\($1.address) pod=web-7d9f8c6b5-p\($0)" })
        let path = dir + "/s.jsonl.gz"
        // TERM as tmux itself encodes keys (Home, End, Shift-arrows), so curses decodes them.
        let env = "env -u NO_COLOR TERM=screen-256color"
        let live = try TmuxSession(width: 140, height: 40, command: "\(env) \(Paths.grpctop) watch file:\(dir)/e.txt --rps 100 --record \(path); echo EXIT=$?; sleep 60")
        #expect(live.waitFor { $0.contains("REC ") && $0.components(separatedBy: "READY").count - 1 >= 4 } != nil, "\(live.screen())")
        sleep(2)
        live.keys("m")
        #expect(live.waitFor { $0.contains("marker label:") } != nil)
        live.keys("saw it", "Enter")
        #expect(live.waitFor { $0.contains("marker: saw it") } != nil, "\(live.screen())")
        fleet[1].signal(SIGKILL)
        #expect(live.waitFor { $0.contains("TRANSIENT_FAILURE") } != nil)
        sleep(1)
        live.keys("q")
        #expect(live.waitFor { $0.contains("EXIT=0") } != nil, "\(live.screen())")

        let t = try TmuxSession(width: 140, height: 40, command: "\(env) \(Paths.grpctop) replay \(path); echo EXIT=$?; sleep 60")
        let first = t.waitFor { $0.contains("REPLAY") && $0.contains("web-7d9f8c6b5-p2") && $0.contains("/ 00:0") }
        #expect(first != nil, "\(t.screen())")
        #expect(first?.contains("▼") == true, "the marker on the timeline")
        t.keys("Space")
        #expect(t.waitFor { $0.contains("‖") } != nil, "paused:\n\(t.screen())")
        t.keys("Home")
        #expect(t.waitFor { $0.contains("‖ 00:00 /") } != nil, "\(t.screen())")
        t.keys("n")
        #expect(t.waitFor { $0.contains("marker: saw it") && !$0.contains("‖ 00:00 /") } != nil, "n jumps to the marker:\n\(t.screen())")
        t.keys("End")
        // At the end the killed pod's subchannel has failed, as it had live.
        #expect(t.waitFor { $0.contains("TRANSIENT_FAILURE") } != nil, "\(t.screen())")
        t.keys("]")
        #expect(t.waitFor { $0.contains(" 2× ") } != nil)
        t.keys("g")
        #expect(t.waitFor { $0.contains("go to:") } != nil)
        t.keys("0:01", "Enter")
        #expect(t.waitFor { $0.contains("‖ 00:01 /") } != nil, "\(t.screen())")
        t.keys("q")
        let done = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(done.contains("EXIT=0") && done.contains("summary:"))
        #expect(t.flag("alternate_on") == "0")

        // --info: who made it, what it watched, how long, and the marker with its label.
        let info = try WatchRun([path, "--info"], subcommand: "replay")
        #expect(info.wait() == 0, "\(info.err.all)")
        let text = info.out.all.joined(separator: "\n")
        #expect(text.contains("gzip, format 3, indexed"), "\(text)")
        #expect(text.contains("target     file:\(dir)/e.txt") && text.contains("command    grpctop watch file:"), "\(text)")
        #expect(text.contains("markers    1") && text.contains("saw it"), "\(text)")
        let json = try WatchRun([path, "--info", "--output", "json"], subcommand: "replay")
        #expect(json.wait() == 0)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.out.all.joined(separator: "\n").utf8)) as? [String: Any])
        #expect((obj["markers"] as? [[String: Any]])?.first?["label"] as? String == "saw it")
        #expect((obj["durationMs"] as? Int ?? 0) >= 3000 && obj["indexed"] as? Bool == true)
    }
}

struct CastExportTests {
    /// `--export-cast`: an asciicast v2 file (header, then [time, "o", text] events with rising
    /// times) whose last frame is the replay's end: the timeline at the end and every pod.
    @Test func exportCastIsAsciicastV2() throws {
        let dir = tempDir()
        let fleet = try (0..<2).map { try Backend(name: "pod-\($0)") }
        try writeEndpoints(dir + "/e.txt", fleet.enumerated().map { "\($1.address) pod=web-7d9f8c6b5-p\($0)" })
        let path = dir + "/s.jsonl"
        let live = try WatchRun(["file:" + dir + "/e.txt", "--rps", "50", "--duration", "3s", "--record", path, "--output", "json"])
        #expect(live.wait() == 0)
        fleet.forEach { $0.stop() }
        let cast = dir + "/out.cast"
        let run = try WatchRun([path, "--export-cast", cast, "--size", "100x30", "--speed", "2"], subcommand: "replay")
        #expect(run.wait() == 0, "\(run.err.all)")
        let lines = try String(contentsOfFile: cast, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(header["version"] as? Int == 2 && header["width"] as? Int == 100 && header["height"] as? Int == 30)
        var times: [Double] = []
        var chunks: [String] = []
        for l in lines.dropFirst() {
            let e = try #require(try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [Any])
            #expect(e.count == 3 && e[1] as? String == "o")
            times.append(e[0] as? Double ?? Double(e[0] as? Int ?? -1))
            chunks.append(e[2] as? String ?? "")
        }
        #expect(times.count >= 5 && times == times.sorted() && times.first == 0)
        #expect((times.last ?? 0) >= 1.0 && (times.last ?? 0) <= 2.0, "3 s at 2× ≈ 1.5 s: \(times.last ?? 0)")
        let screen = ANSIScreen.lines(of: chunks, width: 100, height: 30)
        let footer = screen.last { !$0.isEmpty } ?? ""
        let positions = footer.components(separatedBy: " / ")
        #expect(positions.count == 2 && positions[0].hasSuffix(String(positions[1].prefix(5))), "the last frame is the end: \(footer)")
        #expect(screen.contains { $0.contains("web-7d9f8c6b5-p0") } && screen.contains { $0.contains("web-7d9f8c6b5-p1") })
        #expect(screen[0].contains("REPLAY"))
    }
}

struct DemoRecordTests {
    /// `demo --scenario X --record F`: the replay prints the demo's snapshots and summary.
    @Test func demoScenarioRecordsAndReplays() throws {
        let path = tempDir() + "/demo.jsonl.gz"
        let demo = try WatchRun(["--scenario", "headless", "--batch", "--speed", "4", "--output", "json", "--record", path], subcommand: "demo")
        #expect(demo.wait(timeout: 90) == 0, "\(demo.err.all)")
        let replay = try WatchRun([path, "--batch", "--output", "json"], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        let live = demo.out.all.filter { !$0.contains("\"type\":\"verdict\"") }
        #expect(live.count >= 3 && replay.out.all == live)
        let noScenario = try WatchRun(["--batch", "--record", path], subcommand: "demo")
        #expect(noScenario.wait() == 2 && noScenario.err.all.first?.contains("--record records one scenario: add --scenario NAME") == true)
    }
}

/// Recordings made by earlier versions keep replaying: a keyframe written before the LB policies
/// were types (no policy tree in it) is read back into the same model.
@Suite struct OlderRecordingTests {
    /// `Fixtures/before-policy-types.grpctop` was recorded by grpctop at 5b2d92c (pick_first over
    /// two `grpctop serve`, 45 s, keyframes at 20 s and 40 s); the `.txt` beside it is what that
    /// version printed for `replay --batch --from 25s --interval 10s`, which starts from a keyframe.
    @Test func keyframesFromBeforePolicyTypesReplayTheSame() throws {
        let dir = Paths.root.appendingPathComponent("Tests/IntegrationTests/Fixtures")
        let run = try WatchRun([dir.appendingPathComponent("before-policy-types.grpctop").path,
                                "--batch", "--from", "25s", "--interval", "10s"], subcommand: "replay")
        #expect(run.wait() == 0, "\(run.err.all)")
        let expected = try String(contentsOf: dir.appendingPathComponent("before-policy-types.from25s.txt"), encoding: .utf8)
        #expect(run.out.all.joined(separator: "\n") + "\n" == expected)
    }
}
