import Foundation
import Testing

/// gRFC A17 client-side health checking and gRFC A50 outlier detection, end to end: real
/// `grpctop serve` pods (SIGUSR1/SIGUSR2 flip their health, `--fail-rate` fails RPCs) and grpcio
/// servers with the standard health service, on loopback.
@Suite(.serialized) struct HealthCheckTests {
    func sub(_ s: [String: Any], _ address: String) -> [String: Any] {
        s.rows("subchannels").first { $0.string("address") == address } ?? [:]
    }

    /// A pod turned NOT_SERVING is shown `READY · unhealthy` within an answer and gets no RPCs
    /// while its connection stays (same local port); SERVING again, it takes its share on that
    /// same connection. Every connection carries one Watch stream (`+1` of its slots). The
    /// recording replays to the same snapshots.
    @Test func notServingTakesAPodOutWhileConnected() throws {
        let pods = try ["pod-a", "pod-b", "pod-c"].map { try Backend(name: $0) }
        defer { for p in pods { p.stop() } }
        let b = pods[1]
        let path = tempDir() + "/health.jsonl.gz"
        let run = try WatchRun(["ipv4:" + pods.map(\.address).joined(separator: ","), "--health-check", "--rpc", "greeter",
                                "--rps", "150", "--interval", "250ms", "--duration", "8s", "--batch", "--output", "json", "--record", path])
        let serving = run.waitForSnapshot { s in
            s.rows("subchannels").count == 3 && s.rows("subchannels").allSatisfy { $0.dict("health").string("status") == "SERVING" && $0.int("started") > 0 }
        }
        let first = try #require(serving, "\(run.snapshots.last ?? [:]) \(run.err.all)")
        #expect(first.string("healthCheck") == "" && first.rows("subchannels").allSatisfy { $0.dict("health")["stream"] as? Bool == true })
        let local = sub(first, b.address).string("local")
        b.signal(SIGUSR1)
        let out = run.waitForSnapshot(timeout: 3) { s in sub(s, b.address).string("shown") == "READY · unhealthy" }
        let o = try #require(out, "not shown unhealthy: \(sub(run.snapshots.last ?? [:], b.address))")
        #expect(sub(o, b.address).string("state") == "READY" && sub(o, b.address).dict("health").string("status") == "NOT_SERVING")
        // RPCs picked before the answer arrived are counted by the next stats tick: start after it.
        usleep(600_000)
        let startedThen = sub(try #require(run.snapshots.last), b.address).int("started")
        usleep(1_500_000)
        let later = try #require(run.snapshots.last)
        #expect(sub(later, b.address).int("started") == startedThen, "no RPCs to the NOT_SERVING pod")
        #expect(sub(later, b.address).string("local") == local, "the same connection")
        b.signal(SIGUSR2)
        let back = run.waitForSnapshot(timeout: 3) { s in sub(s, b.address).int("started") > startedThen + 20 }
        #expect(back != nil, "SERVING again: traffic again")
        #expect(back.map { sub($0, b.address).string("local") == local } ?? false)
        #expect(run.wait() == 0)
        #expect(run.summary?.int("failed") == 0, "\(run.summary ?? [:])")
        // The recording carries the health reports: its replay prints what the live run did.
        let replay = try WatchRun([path, "--batch", "--output", "json"], subcommand: "replay")
        #expect(replay.wait() == 0 && replay.out.all == run.out.all, "\(replay.err.all)")
    }

    /// grpcio's standard health service for a named service (`--health-check=helloworld.Greeter`)
    /// and a grpcio server without one (UNIMPLEMENTED: counted healthy, traffic goes on).
    @Test func grpcioHealthServiceAndUnimplemented() throws {
        let a = try Backend(name: "py-a", python: true)
        let b = try Backend(name: "py-b", python: true, extra: ["--no-health"])
        defer { a.stop(); b.stop() }
        let run = try WatchRun(["ipv4:\(a.address),\(b.address)", "--health-check=helloworld.Greeter", "--rpc", "greeter",
                                "--rps", "100", "--interval", "250ms", "--duration", "6s", "--batch", "--output", "json"])
        let ready = run.waitForSnapshot { s in
            sub(s, a.address).dict("health").string("status") == "SERVING" && sub(s, b.address).dict("health").string("status") == "UNIMPLEMENTED"
                && sub(s, b.address).int("started") > 0
        }
        let r = try #require(ready, "\(run.snapshots.last ?? [:]) \(run.err.all)")
        #expect(r.string("healthCheck") == "helloworld.Greeter")
        #expect(sub(r, b.address)["shown"] == nil && sub(r, b.address).dict("health")["stream"] as? Bool == false)
        a.signal(SIGUSR1)
        let out = run.waitForSnapshot(timeout: 3) { s in sub(s, a.address).string("shown") == "READY · unhealthy" }
        _ = try #require(out, "\(sub(run.snapshots.last ?? [:], a.address))")
        usleep(600_000)
        let o = try #require(run.snapshots.last)
        let aThen = sub(o, a.address).int("started"), bThen = sub(o, b.address).int("started")
        usleep(1_000_000)
        let later = try #require(run.snapshots.last)
        #expect(sub(later, a.address).int("started") == aThen && sub(later, b.address).int("started") > bThen + 50)
        #expect(run.wait() == 0)
        #expect(run.summary?.int("failed") == 0)
    }

    /// The Watch stream takes a stream slot: behind MAX_CONCURRENT_STREAMS 1 it takes the only
    /// one — shown `0+1/1` — and RPCs wait for a slot until their deadline; without health checks
    /// the same pod serves them.
    @Test func theWatchStreamTakesASlot() throws {
        let pod = try Backend(name: "pod-a", extra: ["--max-concurrent-streams", "1"])
        defer { pod.stop() }
        let with = try WatchRun(["ipv4:" + pod.address, "--health-check", "--rps", "20", "--timeout", "500ms",
                                 "--interval", "500ms", "--duration", "2s", "--batch", "--output", "json"])
        #expect(with.wait() == 0)
        let s = try #require(with.snapshots.last?.rows("subchannels").first)
        #expect(s.int("maxStreams") == 1 && s.int("streams") == 0 && s.dict("health")["stream"] as? Bool == true, "\(s)")
        #expect(s.int("ok") == 0 && (with.summary?.int("failed") ?? 0) > 0, "no slot left for RPCs: \(with.summary ?? [:])")
        let tables = try WatchRun(["ipv4:" + pod.address, "--health-check", "--rps", "5", "--duration", "1s", "--batch"])
        #expect(tables.wait() == 0)
        #expect(tables.out.all.contains { $0.contains("READY") && $0.contains(" 0+1/1 ") }, "\(tables.out.all)")
        let without = try WatchRun(["ipv4:" + pod.address, "--rps", "20", "--timeout", "500ms", "--duration", "1500ms", "--batch", "--output", "json"])
        #expect(without.wait() == 0)
        #expect((without.summary?.int("ok") ?? 0) > 0 && without.summary?.int("failed") == 0)
    }

    /// pick_first ignores health checking (A17): it stays on its NOT_SERVING pod, no Watch.
    @Test func pickFirstIgnoresHealthChecks() throws {
        let a = try Backend(name: "pod-a"), b = try Backend(name: "pod-b")
        defer { a.stop(); b.stop() }
        a.signal(SIGUSR1)
        let run = try WatchRun(["ipv4:\(a.address),\(b.address)", "--lb", "pick_first", "--health-check", "--rps", "50",
                                "--duration", "1500ms", "--batch", "--output", "json"])
        #expect(run.wait() == 0)
        let s = try #require(run.snapshots.last)
        #expect(sub(s, a.address).int("ok") > 0 && sub(s, a.address)["health"] == nil, "\(s)")
        #expect(s.string("healthCheck") == "")
    }

    /// A50 against real pods: one failing half its RPCs is ejected at a sweep, back after the
    /// base ejection time, ejected again for twice as long (multiplier 2); the healthy pods are
    /// never ejected and fail nothing. The recording replays to the same snapshots.
    @Test func outlierEjectionTimingAndReplay() throws {
        let good = try ["pod-a", "pod-b"].map { try Backend(name: $0) }
        let bad = try Backend(name: "pod-c", extra: ["--fail-rate", "0.5"])
        defer { for p in good + [bad] { p.stop() } }
        let path = tempDir() + "/od.jsonl"
        let run = try WatchRun(["ipv4:" + (good + [bad]).map(\.address).joined(separator: ","), "--rpc", "greeter", "--rps", "150",
                                "--outlier-detection", "failure-percentage,interval=1s,base-ejection-time=2s,threshold=30,minimum-hosts=3,request-volume=10,max-ejection-percent=50",
                                "--interval", "250ms", "--duration", "8s", "--batch", "--output", "json", "--record", path])
        #expect(run.wait(timeout: 30) == 0, "\(run.err.all)")
        // Ejection spells of the bad pod, from the snapshots: (start t, end t, multiplier).
        var spells: [(from: Double, to: Double?, multiplier: Int)] = []
        for s in run.snapshots {
            let o = sub(s, bad.address).dict("outlier")
            let ejected = o["ejected"] as? Bool == true
            if ejected, spells.last.map({ $0.to != nil }) ?? true { spells.append((s.double("t"), nil, o.int("multiplier"))) }
            if !ejected, let last = spells.last, last.to == nil { spells[spells.count - 1].to = s.double("t") }
            for g in good { #expect(sub(s, g.address).dict("outlier")["ejected"] as? Bool == false) }
        }
        #expect(spells.count >= 2, "\(spells)")
        if spells.count >= 2, let end0 = spells[0].to, let end1 = spells[1].to {
            #expect(spells[0].from <= 2.6, "ejected at an early sweep: \(spells)")
            #expect(abs((end0 - spells[0].from) - 2) <= 0.6, "first ejection ≈ base (2 s): \(spells)")
            #expect(spells[1].multiplier == 2 && abs((end1 - spells[1].from) - 4) <= 0.6, "second ≈ 2 × base: \(spells)")
        }
        let last = try #require(run.snapshots.last)
        #expect(last.string("outlierDetection").contains("of 3 ejected"))
        for g in good { #expect(sub(last, g.address).int("failed") == 0) }
        let replay = try WatchRun([path, "--batch", "--output", "json", "--interval", "250ms"], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        let liveOutlier = run.snapshots.map { sub($0, bad.address).dict("outlier")["ejected"] as? Bool ?? false }
        let replayed = replay.snapshots.map { sub($0, bad.address).dict("outlier")["ejected"] as? Bool ?? false }
        #expect(replayed == liveOutlier, "the replay ejects when the live run did")
    }

    /// max ejection percent is a maximum: two failing pods of four, at most 25 % → one at a time.
    @Test func maxEjectionPercentHonoured() throws {
        let pods = try ["pod-a", "pod-b"].map { try Backend(name: $0) } + ["pod-c", "pod-d"].map { try Backend(name: $0, extra: ["--fail-rate", "0.6"]) }
        defer { for p in pods { p.stop() } }
        let run = try WatchRun(["ipv4:" + pods.map(\.address).joined(separator: ","), "--rpc", "greeter", "--rps", "200",
                                "--outlier-detection", "failure-percentage,interval=500ms,base-ejection-time=5s,threshold=30,minimum-hosts=4,request-volume=10,max-ejection-percent=25",
                                "--interval", "250ms", "--duration", "4s", "--batch", "--output", "json"])
        #expect(run.wait(timeout: 30) == 0)
        let counts = run.snapshots.map { s in s.rows("subchannels").filter { $0.dict("outlier")["ejected"] as? Bool == true }.count }
        #expect(counts.max() == 1, "one of four at most: \(counts)")
        #expect(counts.last == 1)
    }

    /// Bad values of this flags (and --keyframe-every): one line, exit 2.
    @Test func badFlags() throws {
        let cases: [([String], String)] = [
            (["--outlier-detection", "interval=1s"], "--outlier-detection 'interval=1s' enables neither success-rate nor failure-percentage"),
            (["--outlier-detection", "failure-percentage,threshold=200"], "threshold=200 is not a whole number from 0 to 100"),
            (["--outlier-detection", "{\"interval\":5}"], "\"interval\" is not a duration"),
            (["--health-check-service", "x"], "--health-check-service needs --health-check"),
            (["--health-check=a\u{1}b"], "must be a service name"),
            (["--keyframe-every", "500ms", "--record", tempDir() + "/r.jsonl"], "--keyframe-every 500ms must be from 1s to 10m"),
            (["--keyframe-every", "5s"], "--keyframe-every needs --record FILE"),
        ]
        for (args, words) in cases {
            let run = try WatchRun(["127.0.0.1:1", "--batch", "--duration", "1s"] + args)
            #expect(run.wait() == 2, "\(args)")
            #expect(run.err.all.count == 1 && run.err.all.first?.contains(words) == true, "\(args): \(run.err.all)")
        }
    }
}
