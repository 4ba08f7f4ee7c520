import Foundation
import Testing

/// The engine against real servers: what `grpctop watch --batch` reports must match what the
/// servers themselves did.
@Suite(.serialized) struct WatchEndToEndTests {
    func fleet(_ n: Int, python: Bool = false, extra: [String] = []) throws -> [Backend] {
        try (0..<n).map { try Backend(name: "pod-\($0)", python: python, extra: extra) }
    }

    func ipv4(_ fleet: [Backend]) -> String { "ipv4:" + fleet.map(\.address).joined(separator: ",") }

    /// round_robin over 3 backends: even spread, and the client's per-backend counts equal the
    /// servers' own counts exactly.
    func checkRoundRobin(python: Bool) throws {
        let f = try fleet(3, python: python)
        let run = try WatchRun([ipv4(f), "--batch", "--output", "json", "--rps", "150", "--duration", "3s", "--interval", "1s"])
        #expect(run.wait() == 0)
        let summary = try #require(run.summary, "no summary: \(run.err.all)")
        #expect(summary.int("total") >= 300)
        #expect(summary.int("failed") == 0)
        #expect(summary.double("fairness") >= 0.95)
        let rows = summary.rows("backends")
        #expect(rows.count == 3)
        for b in f {
            let served = Backend.total(b.stop())
            let seen = rows.first { $0.string("name") == b.address }?.int("total")
            #expect(seen == served, "client saw \(seen ?? -1) RPCs on \(b.address), server answered \(served)")
        }
    }

    @Test func roundRobinSpreadsEvenlyOverGrpctopServe() throws { try checkRoundRobin(python: false) }
    @Test func roundRobinSpreadsEvenlyOverPythonGrpcio() throws { try checkRoundRobin(python: true) }

    func checkPickFirst(python: Bool) throws {
        let f = try fleet(3, python: python)
        defer { f.forEach { $0.stop() } }
        let run = try WatchRun([ipv4(f), "--lb", "pick_first", "--batch", "--output", "json", "--rps", "100", "--duration", "2s"])
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        let rows = summary.rows("backends").filter { $0.int("total") > 0 }
        #expect(rows.count == 1, "pick_first used \(rows.count) backends")
        #expect(rows.first?.double("share") == 1.0)
        #expect(summary.string("fairnessWord") == "one pod takes all")
        #expect(summary.int("failed") == 0)
    }

    @Test func pickFirstSendsEverythingToOneGrpctopServe() throws { try checkPickFirst(python: false) }
    @Test func pickFirstSendsEverythingToOnePythonGrpcio() throws { try checkPickFirst(python: true) }

    /// SIGKILL a backend: its subchannel goes TRANSIENT_FAILURE within 2 s, only RPCs in flight
    /// on it fail, the others keep serving.
    @Test func sigkillFailsOnlyTheKilledBackend() throws {
        let f = try fleet(3, extra: ["--delay", "20ms"])
        defer { f.forEach { $0.stop() } }
        let run = try WatchRun([ipv4(f), "--batch", "--output", "json", "--rps", "150", "--duration", "5s", "--interval", "250ms"])
        let before = try #require(run.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 && $0.double("t") >= 1.5 })
        let killedAt = before.double("t")
        let victim = f[1]
        victim.signal(SIGKILL)
        let after = run.waitForSnapshot(timeout: 4) { s in
            s.rows("subchannels").contains { $0.string("endpoint") == victim.address && $0.string("state") == "TRANSIENT_FAILURE" }
        }
        let seenAt = try #require(after, "the killed backend's subchannel never showed TRANSIENT_FAILURE").double("t")
        #expect(seenAt - killedAt <= 2.25, "TRANSIENT_FAILURE shown \(seenAt - killedAt)s after the kill")
        let tf = after!.rows("subchannels").first { $0.string("endpoint") == victim.address }!
        let reason = tf.string("lastReason")
        // A reconnect may reach the dying process's socket before the kernel closes it.
        #expect(reason.contains("connection reset") || reason.contains("connection refused") || reason.contains("connection closed before"), "reason: \(reason)")
        #expect(!reason.contains("TLS"), "an address that served h2c is not called a TLS port: \(reason)")
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        for row in summary.rows("backends") {
            if row.string("name") == victim.address {
                #expect(row.int("failed") <= 10, "more failures than RPCs in flight: \(row)")
            } else {
                #expect(row.int("failed") == 0)
                #expect(row.int("total") > 200)
            }
        }
        #expect(summary.int("unassignedFailed") == 0)
    }

    /// SIGTERM drains gracefully (GOAWAY, in-flight RPCs finish): no RPC fails.
    @Test func sigtermDrainsWithoutFailures() throws {
        let f = try fleet(3, extra: ["--delay", "20ms"])
        defer { f.forEach { $0.stop() } }
        let run = try WatchRun([ipv4(f), "--batch", "--output", "json", "--rps", "150", "--duration", "4s", "--interval", "250ms"])
        _ = try #require(run.waitForSnapshot { $0.double("t") >= 1.5 })
        let stats = f[0].stop(SIGTERM)
        #expect(f[0].process.terminationStatus == 0)
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0, "failed RPCs: \(summary["errors"] ?? "")")
        #expect(summary.int("goAways") >= 1)
        let row = summary.rows("backends").first { $0.string("name") == f[0].address }
        #expect(row?.int("total") == Backend.total(stats))
    }

    /// Removing a line from a file: target shuts that subchannel down without failed RPCs.
    @Test func removingAnEndpointShutsItsSubchannelDown() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let dir = tempDir()
        let file = dir + "/endpoints.txt"
        try writeEndpoints(file, f.enumerated().map { "\($1.address) pod=pod-\($0) zone=z\($0)" })
        let run = try WatchRun(["file:" + file, "--batch", "--output", "json", "--rps", "100", "--duration", "4s", "--interval", "250ms"])
        let ready = try #require(run.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 })
        #expect(ready.rows("endpoints").map { $0.string("name") }.sorted() == ["pod-0", "pod-1", "pod-2"])
        try writeEndpoints(file, [f[0], f[2]].enumerated().map { "\($1.address) pod=pod-\($0 == 0 ? 0 : 2)" })
        let after = try #require(run.waitForSnapshot(timeout: 3) { s in
            s.rows("subchannels").contains { $0.string("endpoint") == "pod-1" && $0.string("state") == "SHUTDOWN" }
        })
        #expect(after.rows("endpoints").contains { $0.string("name") == "pod-1" && $0.string("mark") == "removed" })
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0)
    }

    /// A server allowing 2 streams under 10 concurrent RPCs: queued RPCs are visible, none lost.
    @Test func maxConcurrentStreamsQueuesRPCs() throws {
        let f = try fleet(1, extra: ["--max-concurrent-streams", "2", "--delay", "50ms"])
        let run = try WatchRun([ipv4(f), "--batch", "--output", "json", "--concurrency", "10", "--duration", "3s", "--interval", "250ms"])
        let busy = try #require(run.waitForSnapshot { s in s.rows("subchannels").contains { $0.int("queued") > 0 } })
        let sc = busy.rows("subchannels")[0]
        #expect(sc.int("maxStreams") == 2)
        #expect(sc.int("streams") <= 2)
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0)
        #expect(summary.int("total") == Backend.total(f[0].stop()))
    }

    /// Max connection age (gRFC A9): reconnections with reason GOAWAY, no failures.
    @Test func maxConnectionAgeReconnectsWithGoAway() throws {
        let f = try fleet(1, extra: ["--max-connection-age", "1s"])
        defer { f.forEach { $0.stop() } }
        let run = try WatchRun([ipv4(f), "--batch", "--output", "json", "--rps", "100", "--duration", "4500ms", "--interval", "500ms"])
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("goAways") >= 2)
        #expect(summary.int("reconnects") >= 2)
        #expect(summary.int("failed") == 0)
        let sc = try #require(run.snapshots.last?.rows("subchannels").first)
        #expect((sc["transitions"] as? [String] ?? []).contains("READY->IDLE: GOAWAY NO_ERROR"))
        #expect((sc["lastGoAway"] as? [String: Any])?["code"] as? String == "NO_ERROR")
    }

    /// --identity-header attributes RPCs to the pod that answered.
    @Test func identityHeaderNamesBackends() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let run = try WatchRun([ipv4(f), "--identity-header", "x-served-by", "--rpc", "greeter", "--batch", "--output", "json", "--rps", "100", "--duration", "2s"])
        #expect(run.wait() == 0)
        let names = try #require(run.summary).rows("backends").map { $0.string("name") }.sorted()
        #expect(names == ["pod-0", "pod-1"])
    }
}

/// Bad input: one line naming the problem, exit status 2; unreachable addresses are shown.
@Suite(.serialized) struct BadInputTests {
    func run(_ args: [String]) throws -> (status: Int32, stderr: [String]) {
        let r = try WatchRun(args)
        let s = r.wait(timeout: 30)
        return (s, r.err.all)
    }

    @Test(arguments: [
        (["http://x:80"], "unknown scheme 'http'"),
        (["127.0.0.1:99999"], "out of range (1-65535)"),
        (["127.0.0.1:80", "--rps", "0"], "--rps 0 must be greater than 0"),
        (["127.0.0.1:80", "--method", "/a.B/C", "--data-hex", "zz"], "--data-hex 'zz' is not hex"),
        (["127.0.0.1:80", "--lb", "random"], "--lb 'random' is not a policy"),
        (["file:/nonexistent/endpoints.txt"], "no such file"),
        (["dns:///web:80", "--dns-timeout", "0s"], "--dns-timeout must be more than 0"),
        (["dns://kube-dns/web:80"], "the DNS server 'kube-dns' must be an IP address"),
        (["127.0.0.1:80", "--bogus"], "--bogus"),
    ])
    func rejected(args: [String], expected: String) throws {
        let (status, stderr) = try run(args + ["--batch", "--iterations", "1"])
        #expect(status == 2)
        #expect(stderr.count == 1, "stderr: \(stderr)")
        #expect(stderr.first?.contains(expected) == true, "stderr: \(stderr)")
    }

    @Test func unreachableAddressIsShownNotFatal() throws {
        // Bind a port and close it again, so nothing listens there.
        let b = try Backend(name: "gone")
        let address = b.address
        b.stop(SIGKILL)
        let r = try WatchRun(["ipv4:" + address, "--batch", "--output", "json", "--duration", "1500ms", "--interval", "500ms"])
        #expect(r.wait() == 0)
        let sc = try #require(r.snapshots.last?.rows("subchannels").first)
        #expect(sc.string("state") == "TRANSIENT_FAILURE")
        #expect(sc.string("lastReason") == "connection refused")
        #expect(r.snapshots.last?.string("channel") == "TRANSIENT_FAILURE")
        #expect((r.summary?.int("failed") ?? 0) > 0)
    }

    @Test func failOnErrorExitsOne() throws {
        let b = try Backend(name: "flaky", extra: ["--fail-rate", "0.5", "--fail-code", "INTERNAL"])
        defer { b.stop() }
        let r = try WatchRun(["ipv4:" + b.address, "--batch", "--output", "json", "--duration", "1s", "--fail-on-error"])
        #expect(r.wait() == 1)
        #expect((r.summary?["errors"] as? [String: Int])?["INTERNAL"] ?? 0 > 0)
    }
}
