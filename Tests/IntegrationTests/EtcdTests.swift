import EtcdAPI
import Foundation
import Testing
import TopologyCore

/// A real etcd (3.4, Debian etcd-server) on loopback, free ports, its own data directory;
/// started and stopped by PID (RECIPES).
final class EtcdServer: @unchecked Sendable {
    static var available: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") && FileManager.default.isExecutableFile(atPath: "/usr/bin/etcdctl")
    }
    let dir = tempDir()
    let clientPort: Int
    let peerPort: Int
    /// Clients must come over TLS with a certificate this CA signed.
    let tls: TestCA?
    private(set) var pid: pid_t = 0
    var url: String { "\(tls == nil ? "http" : "https")://127.0.0.1:\(clientPort)" }

    init(tls: TestCA? = nil) throws {
        clientPort = try freeTCPPort()
        peerPort = try freeTCPPort()
        self.tls = tls
        try start()
    }

    func start() throws {
        let peer = "http://127.0.0.1:\(peerPort)"
        pid = try spawnQuiet("/usr/bin/etcd", [
            "--name", "t", "--data-dir", dir + "/data", "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=\(peer)",
            "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", dir + "/etcd.log",
        ] + (tls.map { ["--cert-file", $0.serverCert, "--key-file", $0.serverKey, "--trusted-ca-file", $0.caCert, "--client-cert-auth"] } ?? []))
        for _ in 0..<100 {
            if (try? ctl(["endpoint", "health"]))?.contains("is healthy") == true { return }
            usleep(100_000)
        }
        throw FleetError("etcd did not start on \(url)")
    }

    /// Stops it (SIGTERM) and waits for it.
    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        pid = 0
    }

    /// etcdctl's output (stdout and stderr).
    /// etcdctl as this user ("name:password") once auth is enabled.
    var user: String?

    @discardableResult
    func ctl(_ args: [String]) throws -> String {
        let out = dir + "/ctl-\(UUID().uuidString.prefix(6)).out"
        let auth = (user.map { ["--user", $0] } ?? []) + (tls.map { ["--cacert", $0.caCert, "--cert", $0.clientCert, "--key", $0.clientKey] } ?? [])
        let quoted = (auth + args).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        try runTool("/bin/sh", ["-c", "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=127.0.0.1:\(clientPort) --dial-timeout=300ms --command-timeout=2s \(quoted) > \(out) 2>&1"])
        defer { try? FileManager.default.removeItem(atPath: out) }
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    func keys(_ prefix: String) -> [String] {
        ((try? ctl(["get", "--prefix", prefix, "--keys-only"])) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// Polls until `predicate` holds for the keys under `prefix`; the seconds it took, or nil.
    func waitForKeys(_ prefix: String, timeout: Double, _ predicate: ([String]) -> Bool) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if predicate(keys(prefix)) { return Date().timeIntervalSince(start) }
            usleep(50_000)
        }
        return nil
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dir)
    }
}

extension [String: Any] {
    func endpoint(_ address: String) -> [String: Any]? {
        rows("endpoints").first { ($0["addresses"] as? [String])?.contains(address) == true && $0.string("mark") != "removed" }
    }
    func subchannel(_ address: String) -> [String: Any]? {
        rows("subchannels").last { $0.string("address") == address }
    }
}

/// `etcd:///PREFIX` against real etcd, with `grpctop serve --register` servers (the seeds' flow).
@Suite(.serialized, .enabled(if: EtcdServer.available, "etcd-server and etcd-client are not installed (scripts/test installs them)"))
struct EtcdTests {
    static let prefix = "services/greeter"

    func registered(_ n: Int, _ etcd: EtcdServer, ttl: String = "10s", format: String = "etcd") throws -> [Backend] {
        try (0..<n).map {
            try Backend(name: "reg-\($0)", extra: ["--register", "etcd://127.0.0.1:\(etcd.clientPort)/\(Self.prefix)", "--lease-ttl", ttl, "--register-format", format])
        }
    }

    func watch(_ etcd: EtcdServer, _ extra: [String] = [], duration: String = "8s") throws -> WatchRun {
        try WatchRun(["etcd:///\(Self.prefix)", "--etcd", etcd.url, "--batch", "--output", "json", "--interval", "250ms",
                      "--duration", duration, "--rps", "200"] + extra)
    }

    /// Three servers register themselves; the client finds all three and spreads its RPCs evenly.
    @Test func threeRegisteredServersRoundRobin() throws {
        let etcd = try EtcdServer()
        let servers = try registered(3, etcd)
        defer { servers.forEach { $0.stop() } }
        #expect(etcd.waitForKeys(Self.prefix, timeout: 5) { $0.count == 3 } != nil, "keys: \(etcd.keys(Self.prefix))")
        let w = try watch(etcd, duration: "5s")
        #expect(w.wait() == 0, "\(w.err.all)")
        let last = try #require(w.snapshots.last)
        #expect(last.rows("endpoints").count == 3)
        for s in servers {
            let e = try #require(last.endpoint(s.address), "\(s.address) in \(last.rows("endpoints"))")
            let meta = e["metadata"] as? [String: String] ?? [:]
            #expect(meta["format"] == "etcd" && meta["key"] == "\(Self.prefix)/\(s.address)")
            #expect(meta["lease"] != nil && (meta["ttl"].flatMap { Int($0.dropLast()) } ?? 0) > 0, "\(meta)")
        }
        let info = last.dict("resolver").dict("info")
        #expect(info.string("watch").hasPrefix("up") && info.string("formats") == "etcd 3")
        let summary = try #require(w.summary)
        #expect(summary.double("fairness") >= 0.95, "\(summary)")
        #expect(summary.int("failed") == 0 && summary.int("total") > 500)
    }

    /// SIGTERM: the server deletes its key at once and drains; the client shuts the subchannel
    /// down; no RPC fails.
    @Test func sigtermDeregistersWithoutFailures() throws {
        let etcd = try EtcdServer()
        let servers = try registered(3, etcd)
        defer { servers.forEach { $0.stop() } }
        #expect(etcd.waitForKeys(Self.prefix, timeout: 5) { $0.count == 3 } != nil)
        let w = try watch(etcd, duration: "6s")
        let gone = servers[0]
        _ = w.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 }
        gone.signal(SIGTERM)
        let took = etcd.waitForKeys(Self.prefix, timeout: 3) { !$0.contains("\(Self.prefix)/\(gone.address)") }
        #expect((took ?? 99) < 1.0, "key deleted \(took.map { String(format: "%.2f s", $0) } ?? "never") after SIGTERM")
        let shut = w.waitForSnapshot { $0.subchannel(gone.address)?.string("state") == "SHUTDOWN" }
        #expect(shut != nil, "the subchannel to the deregistered server was not shut down")
        #expect(w.wait() == 0)
        let summary = try #require(w.summary)
        #expect(summary.int("failed") == 0, "\(summary)")
        #expect(gone.err.all.contains { $0.contains("deregistered \(Self.prefix)/\(gone.address)") })
    }

    /// SIGKILL: nobody deletes the key; it goes when the lease expires (TTL 3 s). Meanwhile the
    /// subchannel is in TRANSIENT_FAILURE and the traffic goes to the others.
    @Test func sigkillKeyExpiresWithTheLease() throws {
        let etcd = try EtcdServer()
        let servers = try registered(3, etcd, ttl: "3s")
        defer { servers.forEach { $0.stop() } }
        #expect(etcd.waitForKeys(Self.prefix, timeout: 5) { $0.count == 3 } != nil)
        let w = try watch(etcd, duration: "9s")
        let dead = servers[0]
        _ = w.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 }
        dead.signal(SIGKILL)
        let took = etcd.waitForKeys(Self.prefix, timeout: 8) { !$0.contains("\(Self.prefix)/\(dead.address)") }
        #expect((took ?? 99) <= 4.0, "key gone \(took.map { String(format: "%.2f s", $0) } ?? "never") after SIGKILL (lease TTL 3 s)")
        #expect(w.wait() == 0)
        // Between the kill and the expiry: the endpoint still listed, its subchannel failing, the
        // others serving.
        let between = w.snapshots.first { s in
            s.endpoint(dead.address) != nil && s.subchannel(dead.address)?.string("state") == "TRANSIENT_FAILURE"
        }
        let snap = try #require(between, "no snapshot with the killed server's subchannel in TRANSIENT_FAILURE")
        let others = snap.rows("backends").filter { $0.string("name") != dead.address }
        #expect(others.count == 2 && others.allSatisfy { $0.double("rps") > 0 }, "\(snap.rows("backends"))")
        let last = try #require(w.snapshots.last)
        #expect(last.endpoint(dead.address) == nil && last.rows("endpoints").filter { $0.string("mark") != "removed" }.count == 2)
    }

    /// Each value format, and a value that is none of them: reported and skipped, and the watch
    /// goes on (a key put later still arrives).
    @Test func valueFormatsAndAMalformedValue() throws {
        let etcd = try EtcdServer()
        let pods = try (0..<4).map { try Backend(name: "fmt-\($0)") }
        defer { pods.forEach { $0.stop() } }
        let p = Self.prefix
        let leaseOut = try etcd.ctl(["lease", "grant", "60"])
        let leaseHex = try #require(leaseOut.split(separator: " ").dropFirst().first.map(String.init), "\(leaseOut)")
        let lease = try #require(Int64(leaseHex, radix: 16))
        try etcd.ctl(["put", "\(p)/a", #"{"Op":0,"Addr":"\#(pods[0].address)","Metadata":{"zone":"a"}}"#])
        try etcd.ctl(["put", "--lease=\(leaseHex)", "\(p)/\(lease)", pods[1].address])
        try etcd.ctl(["put", "\(p)/kratos-1", #"{"id":"kratos-1","name":"greeter","version":"v2","endpoints":["http://127.0.0.1:1","grpc://\#(pods[2].address)"]}"#])
        try etcd.ctl(["put", "\(p)/broken", "not an address at all"])
        let w = try watch(etcd, duration: "6s")
        let first = try #require(w.waitForSnapshot { $0.rows("endpoints").count == 3 }, "\(w.err.all)")
        let formats = [pods[0].address: "etcd", pods[1].address: "gozero", pods[2].address: "kratos"]
        for (addr, f) in formats {
            #expect((first.endpoint(addr)?["metadata"] as? [String: String])?["format"] == f, "\(addr)")
        }
        #expect((first.endpoint(pods[1].address)?["metadata"] as? [String: String])?["lease"] == String(lease, radix: 16))
        #expect(first.endpoint(pods[2].address)?.string("name") == "kratos-1")
        #expect(first.dict("resolver").dict("info").string("skipped").hasPrefix("1 key"))
        try etcd.ctl(["put", "\(p)/plain", pods[3].address])
        let later = w.waitForSnapshot(timeout: 10) { s in
            (s.endpoint(pods[3].address)?["metadata"] as? [String: String])?["format"] == "plain"
                && s.rows("subchannels").filter { $0.string("state") == "READY" }.count == 4
        }
        #expect(later != nil, "a key put after the malformed one did not arrive")
        #expect(w.wait() == 0)
        #expect(try #require(w.summary).int("failed") == 0)
    }

    /// The watch falls behind (the client stopped) while etcd compacts past it: etcd cancels the
    /// watch with the compact revision, and the resolver ranges again and re-watches.
    @Test func compactionDuringTheWatchRecovers() async throws {
        let etcd = try EtcdServer()
        let pods = try (0..<2).map { try Backend(name: "cmp-\($0)") }
        defer { pods.forEach { $0.stop() } }
        try etcd.ctl(["put", "\(Self.prefix)/a", pods[0].address])
        let w = try watch(etcd, duration: "12s")
        _ = try #require(w.waitForSnapshot { $0.rows("endpoints").count == 1 })
        // Stop the client, write far more than HTTP/2 flow control and etcd's buffers hold, and
        // compact everything.
        kill(w.process.processIdentifier, SIGSTOP)
        let client = try EtcdClient(config: EtcdConfig(endpoints: [EtcdConfig.Endpoint(tls: false, host: "127.0.0.1", port: etcd.clientPort)]))
        try await client.connect()
        // 300 responses of 4 kB: far past the client's 64 kB HTTP/2 window and etcd's watch
        // buffer, so the watch falls behind (becomes a "victim"); then one delete of them all.
        let filler = String(repeating: "x", count: 4000)
        for i in 0..<300 { try await client.put(key: "\(Self.prefix)/junk/\(i)", value: filler) }
        try etcd.ctl(["del", "--prefix", "\(Self.prefix)/junk/"])
        let rev = try await client.put(key: "\(Self.prefix)/b", value: pods[1].address)
        client.disconnect()
        #expect(try etcd.ctl(["compact", "\(rev)"]).contains("compacted revision"))
        kill(w.process.processIdentifier, SIGCONT)
        let recovered = w.waitForSnapshot(timeout: 10) { s in
            let info = s.dict("resolver").dict("info")
            return (Int(info.string("ranges")) ?? 0) >= 2 && s.rows("endpoints").filter { $0.string("mark") != "removed" }.count == 2 && info.string("watch").hasPrefix("up")
        }
        #expect(recovered != nil, "no re-range after compaction: \(w.snapshots.last?.dict("resolver") ?? [:])")
        #expect(w.wait() == 0)
    }

    /// etcd stopped for 5 s: the client keeps the last set (and its connections) and says the
    /// watch is down; restarted, the watch resumes and the registrations are there.
    @Test func etcdRestartResumes() throws {
        let etcd = try EtcdServer()
        let servers = try registered(3, etcd, ttl: "10s")
        defer { servers.forEach { $0.stop() } }
        #expect(etcd.waitForKeys(Self.prefix, timeout: 5) { $0.count == 3 } != nil)
        let w = try watch(etcd, duration: "14s")
        _ = try #require(w.waitForSnapshot { $0.rows("endpoints").count == 3 })
        etcd.stop()
        let down = w.waitForSnapshot { $0.dict("resolver").dict("info").string("watch").hasPrefix("down since") }
        let d = try #require(down, "the watch never showed as down")
        #expect(d.rows("endpoints").filter { $0.string("mark") != "removed" }.count == 3, "the last set was not kept")
        #expect(d.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3)
        sleep(5)
        try etcd.start()
        let back = w.waitForSnapshot(timeout: 20) { s in
            s.dict("resolver").dict("info").string("watch").hasPrefix("up") && s.double("t") > d.double("t")
                && s.rows("endpoints").filter { $0.string("mark") != "removed" }.count == 3 && s.dict("resolver")["error"] == nil
        }
        #expect(back != nil, "the watch did not resume: \(w.snapshots.last?.dict("resolver") ?? [:])")
        #expect(etcd.waitForKeys(Self.prefix, timeout: 10) { $0.count == 3 } != nil, "registrations: \(etcd.keys(Self.prefix))")
        #expect(w.wait() == 0)
        #expect(try #require(w.summary).int("failed") == 0)
    }

    /// etcd with auth enabled: the password from a file logs in (and is not in the recording);
    /// a wrong one says so and names the flags.
    @Test func authenticatedEtcd() throws {
        let etcd = try EtcdServer()
        let pod = try Backend(name: "auth-0")
        defer { pod.stop() }
        try etcd.ctl(["user", "add", "root:s3cret-pw", "--interactive=false"])
        try etcd.ctl(["auth", "enable"])
        etcd.user = "root:s3cret-pw"
        try etcd.ctl(["put", "\(Self.prefix)/a", pod.address])
        let pw = etcd.dir + "/pw"
        try "s3cret-pw\n".write(toFile: pw, atomically: true, encoding: .utf8)
        let rec = etcd.dir + "/auth.jsonl"
        let w = try watch(etcd, ["--etcd-user", "root", "--etcd-password-file", pw, "--record", rec], duration: "3s")
        #expect(w.wait() == 0, "\(w.err.all)")
        let last = try #require(w.snapshots.last)
        #expect(last.endpoint(pod.address) != nil && last.dict("resolver").dict("info").string("user") == "root", "\(last.dict("resolver"))")
        let summary = try #require(w.summary)
        #expect(summary.int("failed") == 0, "errors \(summary["errors"] ?? [:]); resolver errors seen: \(w.snapshots.compactMap { $0.dict("resolver")["error"] as? String })")
        #expect(!(try String(contentsOfFile: rec, encoding: .utf8)).contains("s3cret-pw"))
        let bad = try WatchRun(["etcd:///\(Self.prefix)", "--etcd", etcd.url, "--etcd-user", "root", "--batch", "--output", "json",
                                "--interval", "500ms", "--duration", "2s"], env: ["GRPCTOP_ETCD_PASSWORD": "wrong"])
        _ = bad.wait()
        let error = bad.snapshots.last?.dict("resolver").string("error") ?? ""
        #expect(error.contains("authentication failed") && error.contains("check --etcd-user"), "\(error)")
    }

    /// etcd that only takes TLS clients with a certificate: the CA, the client certificate and
    /// its key from the flags — for watch and for serve --register; without a client
    /// certificate it says why.
    @Test func etcdOverTLSWithClientCertificates() throws {
        let ca = try TestCA()
        let etcd = try EtcdServer(tls: ca)
        let pod = try Backend(name: "tls-0")
        let tlsFlags = ["--etcd-cacert", ca.caCert, "--etcd-cert", ca.clientCert, "--etcd-key", ca.clientKey]
        let registered = try Backend(name: "tls-reg", extra: ["--register", "etcd:///\(Self.prefix)", "--etcd", etcd.url] + tlsFlags)
        defer { [pod, registered].forEach { $0.stop() } }
        try etcd.ctl(["put", "\(Self.prefix)/a", pod.address])
        #expect(etcd.waitForKeys(Self.prefix, timeout: 10) { $0.contains("\(Self.prefix)/\(registered.address)") } != nil, "\(registered.err.all)")
        let w = try watch(etcd, tlsFlags, duration: "3s")
        #expect(w.wait() == 0, "\(w.err.all)")
        let last = try #require(w.snapshots.last)
        #expect(last.endpoint(pod.address) != nil && last.endpoint(registered.address) != nil, "\(last.dict("resolver"))")
        #expect(last.dict("resolver").dict("info").string("etcd").hasPrefix("https://"))
        let refused = try watch(etcd, ["--etcd-cacert", ca.caCert], duration: "2s")
        _ = refused.wait()
        let error = refused.snapshots.last?.dict("resolver").string("error") ?? ""
        #expect(error.contains(etcd.url) && refused.snapshots.last?.rows("endpoints").isEmpty == true, "\(error)")
    }

    /// A registration whose lease expired while the server could not keep it alive (stopped
    /// longer than the TTL) is made again with a new lease when the server carries on.
    @Test func expiredLeaseRegistersAgain() throws {
        let etcd = try EtcdServer()
        let servers = try registered(1, etcd, ttl: "2s")
        defer { servers.forEach { $0.stop() } }
        let key = "\(Self.prefix)/\(servers[0].address)"
        #expect(etcd.waitForKeys(Self.prefix, timeout: 5) { $0 == [key] } != nil)
        kill(servers[0].process.processIdentifier, SIGSTOP)
        #expect(etcd.waitForKeys(Self.prefix, timeout: 6) { $0.isEmpty } != nil, "the key outlived its lease")
        kill(servers[0].process.processIdentifier, SIGCONT)
        #expect(etcd.waitForKeys(Self.prefix, timeout: 8) { $0 == [key] } != nil, "not registered again: \(servers[0].err.all)")
        #expect(servers[0].err.all.filter { $0.contains("registered \(key)") && !$0.contains("deregistered") }.count == 2, "\(servers[0].err.all)")
    }

    /// Bad input: one line each, exit 2.
    @Test func badEtcdOptions() throws {
        for (args, expected) in [
            (["etcd:///x", "--etcd", "ftp://h:1", "--batch"], "--etcd 'ftp://h:1': use http://host:port"),
            (["etcd:///x", "--etcd-password", "p", "--batch"], "an etcd password needs --etcd-user"),
            (["etcd://127.0.0.1:1/x", "--etcd", "http://127.0.0.1:2", "--batch"], "drop --etcd"),
            (["etcd:///x", "--etcd-cacert", "/nonexistent.pem", "--batch"], "--etcd-cacert /nonexistent.pem: no such file"),
        ] {
            let w = try WatchRun(args)
            #expect(w.wait() == 2, "\(args)")
            #expect(w.err.all.count == 1 && w.err.all.first?.contains(expected) == true, "\(args): \(w.err.all)")
        }
        let s = try WatchRun(["--register", "etcd:///x", "--register-format", "zk"], subcommand: "serve")
        #expect(s.wait() == 2 && s.err.all.first?.contains("use etcd, gozero, kratos or plain") == true, "\(s.err.all)")
        for (args, expected) in [(["--etcd-cacert", "/nonexistent.pem"], "go with --register etcd://"),
                                 (["--register", "etcd:///x", "--etcd-cert", "/etc/hostname"], "--etcd-cert and --etcd-key go together")] {
            let r = try WatchRun(args, subcommand: "serve")
            #expect(r.wait() == 2 && r.err.all.count == 1 && r.err.all.first?.contains(expected) == true, "\(args): \(r.err.all)")
        }
    }
}
