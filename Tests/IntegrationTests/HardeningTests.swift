import Foundation
import Testing

/// Issue 15, as a new user met it: runaways when every pod is gone, a gate that passed on no
/// evidence, output that went nowhere, numbers that trapped. Each case failed before.
@Suite(.serialized) struct HardeningTests {
    struct Measured {
        var status: Int32
        var seconds: Double
        var maxRSSKB: Int
        var run: WatchRun
    }

    /// Runs `grpctop ARGS`, sampling resident memory; `during` runs once, after `at` seconds.
    func measure(_ args: [String], subcommand: String = "watch", at: Double = 0, during: (() -> Void)? = nil) throws -> Measured {
        let started = Date()
        let run = try WatchRun(args, subcommand: subcommand)
        var maxRSS = 0
        var done = during == nil
        let end = Date().addingTimeInterval(60)
        while run.process.isRunning && Date() < end {
            maxRSS = max(maxRSS, residentKB(run.process.processIdentifier))
            if !done && Date().timeIntervalSince(started) >= at { done = true; during?() }
            usleep(20_000)
        }
        let status = run.wait()
        return Measured(status: status, seconds: Date().timeIntervalSince(started), maxRSSKB: maxRSS, run: run)
    }

    /// Nothing listens: a closed loop of 1 or 50 must pace its failures, keep --duration and
    /// stay small (it spun at 100 % CPU to 4.5–17.9 GB and ignored SIGTERM).
    @Test(arguments: [1, 50]) func aClosedLoopAgainstNothingIsPaced(concurrency: Int) throws {
        let port = try freeTCPPort()
        let m = try measure(["127.0.0.1:\(port)", "--concurrency", "\(concurrency)", "--batch", "--output", "json", "--duration", "3s"])
        #expect(m.status == 0, "\(m.run.err.all)")
        #expect(m.seconds < 6, "took \(m.seconds) s for --duration 3s")
        #expect(m.maxRSSKB < 100_000, "\(m.maxRSSKB) kB")
        let s = try #require(m.run.summary)
        // Each worker fails at most about once a second (plus its first try).
        #expect(s.int("failed") >= concurrency && s.int("failed") <= concurrency * 5, "\(s)")
        #expect(s.int("ok") == 0 && (s["errors"] as? [String: Int])?["UNAVAILABLE"] == s.int("failed"), "\(s)")
    }

    @Test func sigtermEndsAClosedLoopAgainstNothing() throws {
        let port = try freeTCPPort()
        let started = Date()
        let run = try WatchRun(["127.0.0.1:\(port)", "--concurrency", "50", "--batch", "--duration", "60s"])
        let pid = run.process.processIdentifier
        usleep(1_500_000)
        kill(pid, SIGTERM)
        let status = run.wait(timeout: 10)
        #expect(status == 0, "\(run.err.all)")
        #expect(Date().timeIntervalSince(started) < 5, "SIGTERM took \(Date().timeIntervalSince(started)) s")
    }

    /// Every pod SIGKILLed mid-run, and a file: target emptied (scale to zero), under a closed loop:
    /// the run still ends on time (it ran 12 s past a 5 s --duration).
    @Test func everyPodGoneUnderAClosedLoop() throws {
        let dir = tempDir()
        let pods = [try Backend(name: "pod-a"), try Backend(name: "pod-b")]
        let file = dir + "/endpoints.txt"
        try writeEndpoints(file, pods.map(\.address))
        let killed = try measure(["ipv4:" + pods.map(\.address).joined(separator: ","), "--concurrency", "5", "--batch", "--output", "json", "--duration", "5s"],
                                 at: 2) { pods.forEach { $0.signal(SIGKILL) } }
        #expect(killed.status == 0 && killed.seconds < 8, "\(killed.seconds) s \(killed.run.err.all)")
        #expect(killed.maxRSSKB < 100_000)
        let b = try Backend(name: "pod-c")
        defer { b.stop() }
        try writeEndpoints(file, [b.address])
        let emptied = try measure(["file:" + file, "--concurrency", "5", "--batch", "--output", "json", "--duration", "5s"],
                                  at: 2) { try? writeEndpoints(file, []) }
        #expect(emptied.status == 0 && emptied.seconds < 8, "\(emptied.seconds) s \(emptied.run.err.all)")
        #expect(emptied.maxRSSKB < 100_000)
        let s = try #require(emptied.run.summary)
        #expect(s.int("ok") > 0 && (s["errors"] as? [String: Int])?["UNAVAILABLE"] ?? 0 > 0, "\(s)")
        #expect(emptied.run.snapshots.last?.dict("resolver").int("endpoints") == 0)
    }

    /// A server that never answers: the RPCs still in flight at the end are UNFINISHED and fail
    /// the gate; a run that completed nothing fails it; --duration is kept. The control: a
    /// server that answers passes.
    @Test func theGateNeedsEvidence() throws {
        let slow = try Backend(name: "slow", extra: ["--delay", "30s"])
        let zero = try Backend(name: "zero", extra: ["--max-concurrent-streams", "0"])
        let fine = try Backend(name: "fine")
        defer { [slow, zero, fine].forEach { $0.stop(SIGKILL) } }
        for b in [slow, zero] {
            let m = try measure(["ipv4:" + b.address, "--batch", "--output", "json", "--duration", "3s", "--fail-on-error", "--rpc", "greeter"])
            #expect(m.status == 1, "\(b.name): exit \(m.status)")
            #expect(m.seconds < 5.5, "\(b.name): \(m.seconds) s for --duration 3s")
            let s = try #require(m.run.summary)
            #expect(s.int("ok") == 0 && (s["errors"] as? [String: Int])?["UNFINISHED"] ?? 0 > 0, "\(b.name): \(s)")
            #expect(m.run.err.all.contains { $0.contains("--fail-on-error") && $0.contains("unfinished when the run ended") }, "\(m.run.err.all)")
        }
        let port = try freeTCPPort()
        let nothing = try measure(["127.0.0.1:\(port)", "--batch", "--duration", "2s", "--fail-on-error"])
        #expect(nothing.status == 1 && nothing.run.err.all.contains { $0.contains("RPCs failed") }, "\(nothing.run.err.all)")
        let ok = try measure(["ipv4:" + fine.address, "--batch", "--duration", "2s", "--fail-on-error"])
        #expect(ok.status == 0, "\(ok.run.err.all)")
    }

    /// `| head -1` ends the run (it went on sending RPCs); a full disk is exit 1 with the reason.
    @Test func outputThatGoesNowhereEndsTheRun() throws {
        let b = try Backend(name: "pod-a")
        defer { b.stop() }
        let started = Date()
        let status = try runTool("/bin/sh", ["-c", "\(Paths.grpctop) watch ipv4:\(b.address) --batch --duration 30s --interval 200ms | head -1"])
        #expect(status == 0)
        #expect(Date().timeIntervalSince(started) < 5, "grpctop kept running after its reader left")
        let toFull = try runTool("/bin/sh", ["-c", "\(Paths.grpctop) watch ipv4:\(b.address) --batch --duration 1s > /dev/full 2>/dev/null"])
        #expect(toFull == 1)
        // --export-cast to a full device: exit 1, and the device is still a device.
        let dir = tempDir()
        let rec = dir + "/r.jsonl"
        let recorded = try WatchRun(["ipv4:" + b.address, "--batch", "--duration", "1s", "--record", rec])
        #expect(recorded.wait() == 0)
        let cast = try WatchRun([rec, "--export-cast", "/dev/full"], subcommand: "replay")
        #expect(cast.wait() == 1)
        #expect(cast.err.all.contains { $0.contains("cannot write --export-cast /dev/full: No space left on device") }, "\(cast.err.all)")
        var st = stat()
        #expect(stat("/dev/full", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR, "/dev/full was replaced")
    }

    /// Every number from a flag is range-checked: one line naming the flag, exit 2, no trap.
    @Test(arguments: [
        (["watch", "127.0.0.1:1", "--duration", "1e17"], "--duration '1e17' is too long"),
        (["watch", "127.0.0.1:1", "--interval", "1e17"], "--interval '1e17' is too long"),
        (["watch", "127.0.0.1:1", "--keepalive", "1e17"], "--keepalive '1e17' is too long"),
        (["watch", "127.0.0.1:1", "--timeout", "1e11"], "--timeout '1e11' is too long"),
        (["watch", "dns:///x.test:1", "--dns-timeout", "1e17"], "--dns-timeout '1e17' is too long"),
        (["watch", "dns:///x.test:1", "--dns-refresh", "1e300"], "--dns-refresh '1e300'"),
        (["watch", "127.0.0.1:1", "-H", "x-a: b\r\nc"], "the value must be printable ASCII"),
        (["watch", "127.0.0.1:1", "-H", "te: gzip"], "a header grpctop or HTTP/2 sets itself"),
        (["watch", "127.0.0.1:1", "-H", "connection: close"], "a header grpctop or HTTP/2 sets itself"),
        (["watch", "127.0.0.1:1", "--authority", "a\r\nb"], "--authority"),
        (["watch", "127.0.0.1:1", "--tls", "--cacert", "/etc/passwd"], "they must be PEM"),
        (["watch", "127.0.0.1:1", "--max-recv-size", "1e9"], "--max-recv-size '1e9'"),
        (["watch", "127.0.0.1:1", "--keep-header", "x a"], "--keep-header 'x a' is not a metadata key"),
        (["watch", "127.0.0.1:1", "--redact-header", ""], "--redact-header '' is not a metadata key"),
        (["replay", "x.jsonl", "--from", "1e17"], "--from '1e17' is too long"),
        (["replay", "x.jsonl", "--to", "1e17"], "--to '1e17' is too long"),
        (["replay", "x.jsonl", "--interval", "1e17"], "--interval '1e17' is too long"),
        (["replay", "x.jsonl", "--batch", "--speed", "1e-300"], "--speed 1e-300 is out of range"),
        (["serve", "--delay", "1e17"], "--delay '1e17' is too long"),
        (["serve", "--max-connection-age", "1e17"], "--max-connection-age '1e17' is too long"),
        (["serve", "--drain-grace", "1e17"], "--drain-grace '1e17' is too long"),
        (["serve", "--max-concurrent-streams", "4294967296"], "--max-concurrent-streams 4294967296 is out of range"),
        (["demo", "--speed", "1e-300"], "--speed 1e-300 is out of range"),
    ])
    func badNumbersAreOneLine(args: [String], words: String) throws {
        let run = try WatchRun(Array(args.dropFirst()), subcommand: args[0])
        #expect(run.wait(timeout: 20) == 2, "\(args): \(run.err.all)")
        #expect(run.err.all.count == 1, "\(args): \(run.err.all)")
        #expect(run.err.all.first?.hasPrefix("grpctop: ") == true && run.err.all.first?.contains(words) == true, "\(args): \(run.err.all)")
    }
}
