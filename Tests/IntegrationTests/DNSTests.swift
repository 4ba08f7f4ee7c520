import Foundation
import Testing

/// A real dnsmasq on loopback (RECIPES): the DNS server of a "headless Service" whose A records
/// live in a `--hostsdir` the test rewrites (atomically: dot-file, then rename).
final class Dnsmasq: @unchecked Sendable {
    let dir: URL
    let port: Int
    let extra: [String]

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq") }

    init(port: Int? = nil, extra: [String] = []) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-dns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("hosts"), withIntermediateDirectories: true)
        self.port = try port ?? Self.freeUDPPort()
        self.extra = extra
        try start()
    }

    /// A UDP port free on 127.0.0.1 now (dnsmasq also takes the same TCP port).
    static func freeUDPPort() throws -> Int {
        for _ in 0..<20 {
            let u = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            let t = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(u); close(t) }
            if let port = bindLoopback(u), bindLoopback(t, port: port) != nil { return port }
        }
        throw FleetError("no free port for dnsmasq")
    }

    /// Started with posix_spawn and stopped by its PID: a Foundation `Process` for dnsmasq stops
    /// Foundation from noticing the exit of the other children (seen here: the watch stayed a
    /// zombie that `Process.isRunning` still called running).
    private var pid: pid_t = 0

    func start() throws {
        let args = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
                    "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--user=\(NSUserName())",
                    "--local=/cluster.local/", "--local-ttl=1", "--hostsdir=\(dir.appendingPathComponent("hosts").path)"] + extra
        pid = try spawnQuiet("/usr/sbin/dnsmasq", Array(args.dropFirst()))
        // Ready when it answers (NXDOMAIN for a name it does not know is an answer).
        for _ in 0..<100 {
            if Self.answers(port: port) { return }
            usleep(20_000)
        }
        throw FleetError("dnsmasq did not start on port \(port)")
    }

    /// True once something answers DNS on 127.0.0.1:port (a minimal query over UDP).
    static func answers(port: Int) -> Bool {
        let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(s) }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        a.sin_port = UInt16(port).bigEndian
        // id 0x1234, RD, one question: "probe.cluster.local" A IN
        var q: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in ["probe", "cluster", "local"] { q.append(UInt8(label.count)); q += Array(label.utf8) }
        q += [0, 0, 1, 0, 1]
        let sent = withUnsafePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(s, q, q.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard sent == q.count else { return false }
        var buf = [UInt8](repeating: 0, count: 512)
        return recv(s, &buf, buf.count, 0) > 0
    }

    /// Replaces the records: `ip name` lines.
    func setRecords(_ records: [(ip: String, name: String)]) throws {
        let hosts = dir.appendingPathComponent("hosts")
        let tmp = hosts.appendingPathComponent(".records.tmp")
        try records.map { "\($0.ip) \($0.name)\n" }.joined().write(to: tmp, atomically: false, encoding: .utf8)
        let final = hosts.appendingPathComponent("records")
        guard rename(tmp.path, final.path) == 0 else { throw FleetError("rename failed") }
        usleep(150_000)  // dnsmasq re-reads its hostsdir within ~30 ms (inotify)
    }

    func signal(_ sig: Int32) { if pid > 0 { kill(pid, sig) } }

    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) == pid { pid = 0; return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        pid = 0
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// `dns:` targets against real dnsmasq, with `grpctop serve` backends on 127.0.0.2, .3, … and one port.
@Suite(.serialized, .enabled(if: Dnsmasq.available, "dnsmasq-base is not installed (scripts/test installs it)"))
struct DNSTests {
    static let name = "web.default.svc.cluster.local"

    /// Backends on 127.0.0.(2+i) sharing the first one's port.
    func backends(_ n: Int, from first: Int = 0, port: Int = 0) throws -> [Backend] {
        try podsOnLoopbackIPs(n, from: first, port: port)
    }

    func records(_ bs: [Backend]) -> [(ip: String, name: String)] {
        bs.map { (ip: String($0.address.split(separator: ":")[0]), name: Self.name) }
    }

    func target(_ dns: Dnsmasq, port: Int) -> String { "dns://127.0.0.1:\(dns.port)/\(Self.name):\(port)" }

    func endpointCount(_ s: [String: Any]) -> Int { ((s["resolver"] as? [String: Any])?["endpoints"] as? Int) ?? -1 }

    func resolverError(_ s: [String: Any]) -> String? { (s["resolver"] as? [String: Any])?["error"] as? String }

    func readySubchannels(_ s: [String: Any]) -> Int {
        (s["subchannels"] as? [[String: Any]] ?? []).filter { $0["state"] as? String == "READY" }.count
    }

    /// 3 A records → 3 READY subchannels, round_robin fairness ≥ 0.95.
    @Test func threeRecordsRoundRobin() throws {
        let dns = try Dnsmasq()
        let bs = try backends(3)
        try dns.setRecords(records(bs))
        let run = try WatchRun([target(dns, port: bs[0].port), "--rps", "300", "--duration", "4s", "--interval", "1s", "--output", "json"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last, "\(run.err.all)")
        #expect(endpointCount(last) == 3)
        #expect(readySubchannels(last) == 3)
        let summary = try #require(run.summary)
        #expect((summary["fairness"] as? Double ?? 0) >= 0.95, "\(summary)")
        #expect(summary["failed"] as? Int == 0)
        for b in bs { #expect(Backend.total(b.stop()) > 100) }
    }

    /// Three backends in DNS and two more started but not yet published; a watch of the name
    /// with `flags`, once its 3 subchannels are READY.
    func watchThreeThenTwoMore(_ flags: [String]) throws -> (dns: Dnsmasq, first: [Backend], added: [Backend], run: WatchRun) {
        let dns = try Dnsmasq()
        let bs = try backends(3)
        let added = try backends(2, from: 3, port: bs[0].port)
        try dns.setRecords(records(bs))
        let run = try WatchRun([target(dns, port: bs[0].port), "--rps", "200", "--output", "json"] + flags)
        #expect(run.waitForSnapshot { readySubchannels($0) == 3 } != nil, "\(run.err.all)")
        return (dns, bs, added, run)
    }

    /// `--dns-refresh grpc`: new records are not used until a connection breaks — gRPC's
    /// documented behaviour, and the Endpoints status says why. A SIGKILLed backend's disconnect
    /// triggers the lookup that finds them.
    @Test func grpcRefreshWaitsForADisconnect() throws {
        let (dns, bs, added, run) = try watchThreeThenTwoMore(["--dns-refresh", "grpc", "--dns-min-interval", "2s", "--duration", "12s"])
        try dns.setRecords(records(bs + added))
        sleep(4)  // well past the TTL (1 s) and the min interval: gRPC still does not look
        let before = try #require(run.snapshots.last)
        #expect(endpointCount(before) == 3, "grpc mode must not poll: \(before)")
        let info = (before["resolver"] as? [String: Any])?["info"] as? [String: String]
        #expect(info?["next"] == "on disconnect", "what the user is shown as the next lookup: \(String(describing: info))")
        bs[0].signal(SIGKILL)
        // The disconnect asks for a lookup: the two new records appear and connect.
        let after = run.waitForSnapshot(timeout: 6) { endpointCount($0) == 5 && readySubchannels($0) == 4 }
        #expect(after != nil, "\(run.snapshots.last ?? [:])")
        _ = run.wait()
        for b in added { #expect(Backend.total(b.stop()) > 0, "\(b.name) got traffic after the lookup") }
        for b in bs.dropFirst() { b.stop() }
    }

    /// `--dns-refresh ttl`: new records are used within TTL + 1 s; a removed record's subchannel
    /// shuts down after the next lookup, with no failed RPC.
    @Test func ttlRefreshFollowsRecords() throws {
        let (dns, bs, added, run) = try watchThreeThenTwoMore(["--dns-refresh", "ttl", "--interval", "250ms", "--duration", "9s"])
        try dns.setRecords(records(bs + added))
        let t0 = Date()
        let grown = run.waitForSnapshot(timeout: 5) { readySubchannels($0) == 5 }
        #expect(grown != nil)
        #expect(Date().timeIntervalSince(t0) <= 2.5, "used within TTL (1 s) + 1 s (+ a snapshot interval)")
        try dns.setRecords(records([bs[0], bs[1]] + added))
        let shrunk = run.waitForSnapshot(timeout: 5) { endpointCount($0) == 4 && readySubchannels($0) == 4 }
        #expect(shrunk != nil)
        #expect(run.wait() == 0)
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs + added { b.stop() }
    }

    /// NXDOMAIN, dnsmasq stopped (timeout), an empty answer: the last good set is kept, the
    /// error is in the batch output, and the resolver recovers when DNS answers again.
    @Test func errorsKeepTheLastGoodSet() throws {
        let dns = try Dnsmasq()
        let bs = try backends(2)
        try dns.setRecords(records(bs))
        let run = try WatchRun([target(dns, port: bs[0].port), "--rps", "100", "--dns-refresh", "500ms", "--dns-timeout", "1s",
                                "--interval", "250ms", "--duration", "20s", "--output", "json"])
        #expect(run.waitForSnapshot { readySubchannels($0) == 2 } != nil, "\(run.err.all)")
        // NXDOMAIN: the name is gone from DNS.
        try dns.setRecords([])
        let nx = run.waitForSnapshot(timeout: 4) { resolverError($0)?.contains("NXDOMAIN") == true }
        #expect(nx.map(endpointCount) == 2, "kept the last good set: \(String(describing: nx))")
        try dns.setRecords(records(bs))
        #expect(run.waitForSnapshot(timeout: 4) { resolverError($0) == nil && endpointCount($0) == 2 } != nil)
        // A server that does not answer (SIGSTOP): the lookup times out.
        dns.signal(SIGSTOP)
        let timeout = run.waitForSnapshot(timeout: 5) { resolverError($0)?.contains("timed out after 1.0s") == true }
        #expect(timeout.map(endpointCount) == 2, "\(String(describing: run.snapshots.last))")
        #expect(timeout.map(readySubchannels) == 2, "connections stay up while DNS is down")
        dns.signal(SIGCONT)
        #expect(run.waitForSnapshot(timeout: 4) { resolverError($0) == nil } != nil)
        // No server at all: on loopback the query is refused at once.
        dns.stop()
        let gone = run.waitForSnapshot(timeout: 5) { resolverError($0)?.contains("unreachable") == true }
        #expect(gone.map(endpointCount) == 2, "\(String(describing: run.snapshots.last))")
        try dns.start()
        try dns.setRecords(records(bs))
        #expect(run.waitForSnapshot(timeout: 6) { resolverError($0) == nil } != nil, "recovered when dnsmasq returned")
        run.process.interrupt()  // the story is told: end now, not at --duration
        #expect(run.wait() == 0)
        #expect(run.summary?["failed"] as? Int == 0)
        for b in bs { b.stop() }
    }

    /// A name that exists with no A/AAAA records: an empty answer, shown as an error (gRPC treats
    /// it like NXDOMAIN), never as an empty endpoint set.
    @Test func emptyAnswerIsAnError() throws {
        let dns = try Dnsmasq(extra: ["--txt-record=\(Self.name),only-text"])
        let run = try WatchRun([target(dns, port: 50051), "--rps", "10", "--duration", "2s", "--output", "json"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last)
        #expect(resolverError(last)?.contains("empty answer") == true, "\(last)")
    }

    /// A single A record (a ClusterIP-like virtual IP): one subchannel; `--identity-header` still
    /// names the pod behind it.
    @Test func singleRecordWithIdentityHeader() throws {
        let dns = try Dnsmasq()
        let bs = try backends(1)
        try dns.setRecords(records(bs))
        let run = try WatchRun([target(dns, port: bs[0].port), "--rps", "100", "--identity-header", "x-served-by",
                                "--duration", "3s", "--output", "json"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last)
        #expect((last["subchannels"] as? [[String: Any]])?.count == 1)
        let names = (run.summary?["backends"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(names == ["web-0"])
        bs[0].stop()
    }

    /// `--srv`: SRV records give each endpoint its own port (Kubernetes' named ports).
    @Test func srvRecordsGivePerEndpointPorts() throws {
        let a = try Backend(name: "pod-a", host: "127.0.0.2")
        let b = try Backend(name: "pod-b", host: "127.0.0.3")
        let dns = try Dnsmasq(extra: [
            "--srv-host=_grpc._tcp.\(Self.name),pod-a.\(Self.name),\(a.port),0,10",
            "--srv-host=_grpc._tcp.\(Self.name),pod-b.\(Self.name),\(b.port),0,10",
        ])
        try dns.setRecords([(ip: "127.0.0.2", name: "pod-a.\(Self.name)"), (ip: "127.0.0.3", name: "pod-b.\(Self.name)")])
        let run = try WatchRun(["dns://127.0.0.1:\(dns.port)/\(Self.name)", "--srv", "--rps", "100", "--duration", "3s", "--output", "json"])
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last)
        let addresses = Set((last["endpoints"] as? [[String: Any]] ?? []).compactMap { ($0["addresses"] as? [String])?.first })
        #expect(addresses == [a.address, b.address], "\(last)")
        #expect(readySubchannels(last) == 2)
        #expect(Backend.total(a.stop()) > 0 && Backend.total(b.stop()) > 0)
    }

    @Test func badDNSFlags() throws {
        let bad = try WatchRun(["dns:///web:50051", "--dns-refresh", "sometimes"])
        #expect(bad.wait() == 2)
        #expect(bad.err.all.count == 1 && bad.err.all[0].contains("--dns-refresh 'sometimes'"))
    }
}
