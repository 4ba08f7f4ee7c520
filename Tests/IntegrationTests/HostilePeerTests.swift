import Foundation
import Testing

/// A server that misbehaves on purpose (scripts/hostile_peer.py speaks HTTP/2 by hand), one mode
/// per test: grpctop must show a clear reason, keep drawing (snapshots keep coming), stay within
/// bounded memory, never crash and never loop (issue 15).
@Suite(.serialized) struct HostilePeerTests {
    final class Peer {
        let process = Process()
        let out = LineCollector()
        let port: Int

        init(_ mode: String) throws {
            process.executableURL = URL(fileURLWithPath: Paths.python)
            process.arguments = [Paths.root.appendingPathComponent("scripts/hostile_peer.py").path, mode]
            let o = Pipe()
            process.standardOutput = o
            process.standardError = FileHandle.nullDevice
            out.attach(o)
            try process.run()
            guard let line = out.waitFor(timeout: 10, { $0.hasPrefix("serving ") }),
                  let p = Int(line.split(separator: ":").last ?? "") else {
                process.terminate()
                throw FleetError("hostile peer \(mode) did not start")
            }
            port = p
        }

        /// Stops it; its connection and stream counts.
        func stop() -> (connections: Int, streams: Int) {
            if process.isRunning { process.terminate() }
            let end = Date().addingTimeInterval(10)
            while process.isRunning && Date() < end { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            out.waitForEOF()
            guard let line = out.all.last(where: { $0.hasPrefix("{") }),
                  let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return (-1, -1) }
            return (obj.int("connections"), obj.int("streams"))
        }
    }

    struct Outcome {
        var status: Int32
        var run: WatchRun
        var maxRSSKB: Int
        var cpuSeconds: Double
        var connections: Int
        var summary: [String: Any]
        var reasons: [String]
        var errors: [String: Int]
    }

    /// `watch` against the peer for 3 s (1 s deadlines, 20 RPS), sampling its resident memory.
    func run(_ mode: String, duration: String = "3s", extra: [String] = []) throws -> Outcome {
        let peer = try Peer(mode)
        var before = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &before)
        let run = try WatchRun(["127.0.0.1:\(peer.port)", "--batch", "--output", "json", "--duration", duration, "--timeout", "1s",
                                "--interval", "500ms"] + extra)
        var maxRSS = 0
        let end = Date().addingTimeInterval(30)
        while run.process.isRunning && Date() < end {
            maxRSS = max(maxRSS, residentKB(run.process.processIdentifier))
            usleep(50_000)
        }
        let status = run.wait()
        var after = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &after)
        let cpu = seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)
        let counts = peer.stop()
        let summary = run.summary ?? [:]
        var reasons: [String] = []
        for s in run.snapshots {
            for sc in s.rows("subchannels") { if let r = sc["lastReason"] as? String, !reasons.contains(r) { reasons.append(r) } }
        }
        return Outcome(status: status, run: run, maxRSSKB: maxRSS, cpuSeconds: cpu, connections: counts.connections,
                       summary: summary, reasons: reasons, errors: summary["errors"] as? [String: Int] ?? [:])
    }

    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }

    /// What every mode must keep: a normal exit, the snapshots on time (the loop is free), a
    /// summary, memory well under what the runaways of issue 15 reached.
    func expectSurvived(_ o: Outcome, _ mode: String) {
        #expect(o.status == 0, "\(mode): exit \(o.status) \(o.run.err.all)")
        #expect(o.run.snapshots.count >= 5, "\(mode): only \(o.run.snapshots.count) snapshots in 3 s")
        #expect(o.summary["type"] as? String == "summary", "\(mode): no summary")
        #expect(o.maxRSSKB > 0 && o.maxRSSKB < 150_000, "\(mode): resident \(o.maxRSSKB) kB")
        #expect(o.summary.int("total") > 0, "\(mode): no RPC was counted")
    }

    @Test func wellBehavedPeerIsTheControlCase() throws {
        let o = try run("ok")
        expectSurvived(o, "ok")
        #expect(o.summary.int("failed") == 0 && o.summary.int("ok") >= 40, "\(o.summary)")
        #expect(o.connections == 1)
    }

    /// SETTINGS then GOAWAY on every connection: issue 15 measured 10,808 connections in 5 s.
    @Test func settingsThenGoAwayBacksOff() throws {
        let o = try run("settings-goaway")
        expectSurvived(o, "settings-goaway")
        #expect(o.connections >= 2 && o.connections <= 5, "\(o.connections) connections in 3 s")
        #expect(o.reasons.contains { $0.contains("GOAWAY NO_ERROR right after SETTINGS") }, "\(o.reasons)")
        #expect(o.cpuSeconds < 1.5, "cpu \(o.cpuSeconds) s")
    }

    @Test func http1AndRandomBytesAreNamed() throws {
        for mode in ["http1", "random"] {
            let o = try run(mode)
            expectSurvived(o, mode)
            #expect(o.reasons.contains("the server does not speak HTTP/2 (an HTTP/1.1 port?)"), "\(mode): \(o.reasons)")
            #expect(o.connections <= 5, "\(mode): \(o.connections) connections")
        }
    }

    /// The prefix claims 4 GiB and 100 bytes follow: never OK, never buffered.
    @Test func aFourGiBLengthPrefixIsResourceExhausted() throws {
        let o = try run("big-prefix")
        expectSurvived(o, "big-prefix")
        #expect(o.summary.int("ok") == 0)
        #expect(o.errors["RESOURCE_EXHAUSTED"] == o.summary.int("total"), "\(o.errors)")
        // The limit can be lowered: a small response over it fails the same way.
        let tiny = try WatchRun(["127.0.0.1:1", "--max-recv-size", "0"])
        #expect(tiny.wait() == 2)
        #expect(tiny.err.all.first?.contains("--max-recv-size '0'") == true, "\(tiny.err.all)")
    }

    /// A message that never completes: each RPC ends at its deadline; memory stays flat.
    @Test func anEndlessMessageEndsAtTheDeadline() throws {
        let o = try run("endless-message")
        expectSurvived(o, "endless-message")
        #expect(o.summary.int("ok") == 0)
        #expect((o.errors["DEADLINE_EXCEEDED"] ?? 0) >= 20, "\(o.errors)")
    }

    @Test func headerAbuseIsNamed() throws {
        for (mode, words) in [("huge-headers", "header block over the 16 KiB limit"), ("endless-headers", "CONTINUATION frames without end")] {
            let o = try run(mode)
            expectSurvived(o, mode)
            #expect(o.reasons.contains { $0.contains(words) }, "\(mode): \(o.reasons)")
            #expect(o.connections <= 5, "\(mode): \(o.connections) connections")
        }
    }

    @Test func controlFrameFloodsAreNamed() throws {
        for mode in ["ping-flood", "settings-flood"] {
            // NIO closes the connection once 10,000 answers are buffered: that takes a while.
            let o = try run(mode, duration: "8s")
            expectSurvived(o, mode)
            #expect(o.reasons.contains { $0.contains("floods control frames") }, "\(mode): \(o.reasons)")
        }
    }

    @Test func rstStormFailsEachRPCAndKeepsTheConnection() throws {
        let o = try run("rst-storm")
        expectSurvived(o, "rst-storm")
        // Its resets of streams not yet opened may cost the odd RPC its answer (then it is
        // DEADLINE_EXCEEDED or UNFINISHED): none is OK, nearly all are the reset's INTERNAL.
        #expect(o.summary.int("ok") == 0)
        #expect(Double(o.errors["INTERNAL"] ?? 0) >= 0.9 * Double(o.summary.int("total")), "\(o.errors)")
        #expect(o.connections == 1)
    }

    @Test func aFlowControlViolationIsNamed() throws {
        let o = try run("flow-violation")
        expectSurvived(o, "flow-violation")
        #expect(o.summary.int("ok") == 0)
        #expect(o.reasons.contains { $0.contains("violated flow control") }, "\(o.reasons)")
        // Each such connection dies before any RPC is answered: reconnects back off.
        #expect(o.connections <= 6, "\(o.connections) connections in 3 s")
    }

    /// The etcd client meets the same 4 GiB prefix: refused before buffering, named in the
    /// resolver's status (it buffered responses without a limit).
    @Test func theEtcdClientRefusesAHugeMessage() throws {
        let peer = try Peer("big-prefix")
        defer { _ = peer.stop() }
        let run = try WatchRun(["etcd:///svc", "--etcd", "http://127.0.0.1:\(peer.port)", "--batch", "--output", "json",
                                "--duration", "3s", "--interval", "500ms"])
        #expect(run.wait() == 0, "\(run.err.all)")
        let error = run.snapshots.last?.dict("resolver").string("error") ?? ""
        #expect(error.contains("RESOURCE_EXHAUSTED: received a message of 4294967295 bytes"), "\(error)")
    }

    /// h2c against a TLS port: the reason suggests --tls.
    @Test func plaintextAgainstATLSPortSuggestsTLS() throws {
        let dir = tempDir()
        try makeCertificates(in: dir)
        let b = try Backend(name: "tls", extra: ["--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key"])
        defer { b.stop() }
        let run = try WatchRun(["ipv4:" + b.address, "--batch", "--output", "json", "--duration", "2s", "--interval", "500ms"])
        #expect(run.wait() == 0)
        let reasons = Set(run.snapshots.flatMap { $0.rows("subchannels").compactMap { $0["lastReason"] as? String } })
        #expect(reasons.contains { $0.contains("a TLS port? try --tls") }, "\(reasons)")
    }
}
