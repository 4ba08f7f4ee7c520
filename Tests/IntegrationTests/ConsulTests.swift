import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TopologyCore

/// The Consul agent stand-in (scripts/consul_standin.py, run by the test venv's Python so its
/// gRPC checks can call grpc.health.v1), started and stopped by PID.
final class ConsulAgent: @unchecked Sendable {
    static var available: Bool { FileManager.default.isExecutableFile(atPath: Paths.python) }
    private(set) var process = Process()
    let out = LineCollector()
    let err = LineCollector()
    private(set) var port = 0
    let aclFile: String?
    var address: String { "127.0.0.1:\(port)" }

    /// `acl`: token secret → rights (`service_read`, `service_write`: name prefixes; `node_read`).
    init(port: Int = 0, indexStart: Int = 10, acl: [String: [String: Any]]? = nil) throws {
        if let acl {
            let path = tempDir() + "/acl.json"
            try JSONSerialization.data(withJSONObject: ["tokens": acl]).write(to: URL(fileURLWithPath: path))
            aclFile = path
        } else {
            aclFile = nil
        }
        try start(port: port, indexStart: indexStart)
    }

    /// (Re)starts on `port` (0: a free one) with a fresh state whose index starts at `indexStart`.
    func start(port: Int, indexStart: Int) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Paths.python)
        process.arguments = [Paths.root.appendingPathComponent("scripts/consul_standin.py").path, "--port", "\(port)",
                             "--index-start", "\(indexStart)"] + (aclFile.map { ["--acl", $0] } ?? [])
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        out.attach(o)
        err.attach(e)
        try process.run()
        guard let line = out.waitFor(timeout: 20, { $0.hasPrefix("listening ") }) else {
            stop()
            throw FleetError("the Consul stand-in did not start: \(err.all.joined(separator: " | "))")
        }
        self.port = Int(line.split(separator: ":").last ?? "") ?? 0
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// One HTTP request with curl-less Foundation networking (PUT with an optional JSON body).
    @discardableResult
    func request(_ method: String, _ path: String, body: String? = nil, token: String? = nil) -> (status: Int, body: String, headers: [String: String]) {
        var r = URLRequest(url: URL(string: "http://\(address)\(path)")!)
        r.httpMethod = method
        r.timeoutInterval = 15
        if let body { r.httpBody = Data(body.utf8) }
        if let token { r.setValue(token, forHTTPHeaderField: "X-Consul-Token") }
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result = (0, "", [String: String]())
        URLSession.shared.dataTask(with: r) { data, response, _ in
            let h = response as? HTTPURLResponse
            var headers: [String: String] = [:]
            for (k, v) in h?.allHeaderFields ?? [:] { headers["\(k)".lowercased()] = "\(v)" }
            result = (h?.statusCode ?? 0, String(decoding: data ?? Data(), as: UTF8.self), headers)
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 20)
        return result
    }

    /// The service's health entries (the stand-in's own answer, as any client reads it).
    func health(_ service: String) -> [[String: Any]] {
        let r = request("GET", "/v1/health/service/\(service)")
        return (try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [[String: Any]]) ?? []
    }

    /// Polls until `predicate` holds for the service's entries; the seconds it took, or nil.
    func waitFor(_ service: String, timeout: Double, _ predicate: ([[String: Any]]) -> Bool) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if predicate(health(service)) { return Date().timeIntervalSince(start) }
            usleep(50_000)
        }
        return nil
    }

    deinit { stop() }
}

extension [String: Any] {
    /// A health entry's service ID and its worst check status.
    var consulID: String { dict("Service").string("ID") }
    var consulStatus: String {
        let s = (self["Checks"] as? [[String: Any]] ?? []).map { $0.string("Status") }
        return s.contains("critical") ? "critical" : s.contains("warning") ? "warning" : "passing"
    }
}

/// `consul://` targets and `serve --register consul://` against the Consul stand-in, which
/// `ConsulStandInTests` checks with Debian's python3-consul.
@Suite(.serialized, .enabled(if: ConsulAgent.available, "the test venv is missing (scripts/test creates it)"))
struct ConsulTests {
    func registered(_ n: Int, _ agent: ConsulAgent, ttl: String = "10s", check: String = "ttl", prefix: String = "web") throws -> [Backend] {
        try (0..<n).map {
            try Backend(name: "\(prefix)-\($0)", extra: ["--register", "consul://\(agent.address)/web?tag=v1", "--lease-ttl", ttl, "--consul-check", check])
        }
    }

    func watch(_ agent: ConsulAgent, query: String = "?tag=v1", _ extra: [String] = [], duration: String = "6s", env: [String: String] = [:]) throws -> WatchRun {
        try WatchRun(["consul://\(agent.address)/web\(query)", "--batch", "--output", "json", "--interval", "250ms",
                      "--duration", duration, "--rps", "200"] + extra, env: env)
    }

    func ready(_ s: [String: Any]) -> Int { s.rows("subchannels").filter { $0.string("state") == "READY" }.count }

    /// Three servers register themselves; the client finds them with their checks, node,
    /// datacenter and tags, and spreads its RPCs evenly.
    @Test func threeRegisteredServersRoundRobin() throws {
        let agent = try ConsulAgent()
        let servers = try registered(3, agent)
        defer { servers.forEach { $0.stop() } }
        #expect(agent.waitFor("web", timeout: 5) { $0.count == 3 && $0.allSatisfy { $0.consulStatus == "passing" } } != nil, "\(agent.health("web"))")
        let w = try watch(agent, duration: "5s")
        #expect(w.wait() == 0, "\(w.err.all)")
        let last = try #require(w.snapshots.last)
        #expect(last.rows("endpoints").count == 3)
        for s in servers {
            let e = try #require(last.endpoint(s.address), "\(s.address) in \(last.rows("endpoints"))")
            let meta = e["metadata"] as? [String: String] ?? [:]
            #expect(e.string("name") == s.name && e.string("condition") == "ready")
            #expect(meta["checks"] == "2 passing" && meta["datacenter"] == "dc1" && meta["tags"] == "v1", "\(meta)")
        }
        let info = last.dict("resolver").dict("info")
        #expect(info.string("watch").hasPrefix("up, blocking") && info.string("auth") == "no token", "\(info)")
        let summary = try #require(w.summary)
        #expect(summary.double("fairness") >= 0.95, "\(summary)")
        #expect(summary.int("failed") == 0 && summary.int("total") > 500)
        // Blocking queries: a handful of requests, not a poll per snapshot.
        #expect(Int(info.string("queries")) ?? 99 <= 4, "\(info)")
    }

    /// SIGUSR1 turns a server NOT_SERVING: its TTL check fails (output in details), the instance
    /// is not ready and gets no traffic; SIGUSR2 brings it back. The same with Consul's own gRPC
    /// check (`--consul-check grpc`).
    @Test(arguments: ["ttl", "grpc"]) func criticalCheckTakesTheInstanceOut(check: String) throws {
        let agent = try ConsulAgent()
        let servers = try registered(3, agent, ttl: "3s", check: check)
        defer { servers.forEach { $0.stop() } }
        #expect(agent.waitFor("web", timeout: 8) { $0.count == 3 && $0.allSatisfy { $0.consulStatus == "passing" } } != nil, "\(agent.health("web"))")
        let w = try watch(agent, duration: "9s")
        _ = try #require(w.waitForSnapshot { ready($0) == 3 }, "\(w.err.all)")
        let sick = servers[0]
        sick.signal(SIGUSR1)
        let out = try #require(w.waitForSnapshot(timeout: 5) { $0.endpoint(sick.address)?.string("condition") == "not-ready" },
                               "never not-ready: \(agent.health("web").map { ($0.consulID, $0.consulStatus) })")
        let meta = out.endpoint(sick.address)?["metadata"] as? [String: String] ?? [:]
        #expect(meta["health"] == "critical" && (meta["failing"] ?? "").contains(check == "ttl" ? "NOT_SERVING" : "failed with status NOT_SERVING"), "\(meta)")
        // No traffic to it while it is out: once what was in flight has finished (half a second),
        // its count stands still.
        func served() -> Int { w.snapshots.last?.rows("backends").first { $0.string("name") == sick.name }?.int("total") ?? 0 }
        usleep(600_000)
        let before = served()
        usleep(1_500_000)
        #expect(served() - before <= 1, "\(sick.name) got \(served() - before) RPCs while critical")
        sick.signal(SIGUSR2)
        #expect(w.waitForSnapshot(timeout: 6) { $0.endpoint(sick.address)?.string("condition") == "ready" } != nil, "never ready again")
        #expect(w.wait() == 0)
        let summary = try #require(w.summary)
        #expect(summary.int("failed") == 0, "\(summary)")
    }

    /// SIGKILL: nobody deregisters; the TTL check expires (3 s) and the instance turns critical
    /// ("TTL expired"); meanwhile the others carry the traffic.
    @Test func sigkillTTLExpires() throws {
        let agent = try ConsulAgent()
        let servers = try registered(3, agent, ttl: "3s")
        defer { servers.forEach { $0.stop() } }
        #expect(agent.waitFor("web", timeout: 5) { $0.count == 3 && $0.allSatisfy { $0.consulStatus == "passing" } } != nil)
        let w = try watch(agent, duration: "9s")
        let dead = servers[0]
        _ = w.waitForSnapshot { ready($0) == 3 }
        dead.signal(SIGKILL)
        let took = agent.waitFor("web", timeout: 8) { $0.first { $0.consulID == dead.name }?.consulStatus == "critical" }
        #expect((took ?? 99) <= 4.5, "critical \(took.map { String(format: "%.2f s", $0) } ?? "never") after SIGKILL (TTL 3 s)")
        let expired = w.waitForSnapshot(timeout: 3) { s in
            let e = s.endpoint(dead.address)
            return e?.string("condition") == "not-ready" && ((e?["metadata"] as? [String: String])?["failing"] ?? "").contains("TTL expired")
        }
        #expect(expired != nil, "the expired instance was not shown not-ready with 'TTL expired'")
        #expect(w.wait() == 0)
        let last = try #require(w.snapshots.last)
        let others = last.rows("backends").filter { $0.string("name") != dead.name && $0.string("name").hasPrefix("web-") }
        #expect(others.count == 2 && others.allSatisfy { $0.double("rps") > 0 }, "\(last.rows("backends"))")
    }

    /// SIGTERM: the server deregisters first, then drains: the client drops it, no RPC fails.
    @Test func sigtermDeregistersWithoutFailures() throws {
        let agent = try ConsulAgent()
        let servers = try registered(3, agent)
        defer { servers.forEach { $0.stop() } }
        #expect(agent.waitFor("web", timeout: 5) { $0.count == 3 } != nil)
        let w = try watch(agent, duration: "6s")
        let gone = servers[0]
        _ = w.waitForSnapshot { ready($0) == 3 }
        gone.signal(SIGTERM)
        let took = agent.waitFor("web", timeout: 3) { !$0.contains { $0.consulID == gone.name } }
        #expect((took ?? 99) < 1.0, "deregistered \(took.map { String(format: "%.2f s", $0) } ?? "never") after SIGTERM")
        #expect(w.waitForSnapshot { $0.subchannel(gone.address)?.string("state") == "SHUTDOWN" } != nil, "the subchannel was not shut down")
        #expect(w.wait() == 0)
        #expect(try #require(w.summary).int("failed") == 0)
        #expect(gone.err.all.contains { $0.contains("deregistered \(gone.name) from Consul") }, "\(gone.err.all)")
    }

    /// The agent goes away: the last instances are kept ("watch down since …") and traffic goes
    /// on; it comes back as a new agent whose index starts lower (a restored cluster): the
    /// servers register again, the resolver resets its index and follows.
    @Test func agentDownAndBackWithALowerIndex() throws {
        let agent = try ConsulAgent(indexStart: 500)
        let servers = try registered(2, agent, ttl: "2s")
        defer { servers.forEach { $0.stop() } }
        #expect(agent.waitFor("web", timeout: 5) { $0.count == 2 } != nil)
        let w = try watch(agent, query: "?tag=v1&wait=2s", duration: "16s")
        _ = try #require(w.waitForSnapshot { ready($0) == 2 })
        let port = agent.port
        agent.stop()
        let down = try #require(w.waitForSnapshot(timeout: 6) { $0.dict("resolver").dict("info").string("watch").hasPrefix("down since") },
                                "never down: \(w.err.all.suffix(3))")
        #expect(down.rows("endpoints").count == 2 && ready(down) == 2, "the last instances were not kept")
        let why = down.dict("resolver").string("error")
        #expect(why.contains("connection refused") || why.contains("closed the connection"), "\(why)")
        try agent.start(port: port, indexStart: 20)
        // The servers find their check gone (404) and register again; the resolver sees the index
        // go backwards and starts over.
        let back = w.waitForSnapshot(timeout: 12) { s in
            let info = s.dict("resolver").dict("info")
            return info.string("watch").hasPrefix("up") && info.string("index resets") == "1" && s.rows("endpoints").count == 2
        }
        #expect(back != nil, "never back: \(w.snapshots.last?.dict("resolver") ?? [:])")
        #expect(servers.allSatisfy { s in s.err.all.contains { $0.contains("registering again") } }, "\(servers.map { $0.err.all })")
        #expect(w.wait() == 0)
        #expect(try #require(w.summary).int("failed") == 0)
    }

    /// ACLs: an unknown token is refused (403 "ACL not found") and said so; a token that may not
    /// read the service sees Consul's filtered answer and is told which permission is missing; a
    /// good token works. No token is ever printed or recorded.
    @Test func aclDeniedAndTheTokenNeverShown() throws {
        let agent = try ConsulAgent(acl: [
            "writer-secret-1": ["AccessorID": "acc-writer", "service_write": ["web"], "node_read": true],
            "reader-secret-2": ["AccessorID": "acc-reader", "service_read": ["web"], "node_read": true],
            "blind-secret-3": ["AccessorID": "acc-blind", "service_read": ["other"], "node_read": true],
        ])
        let pod = try Backend(name: "web-acl", extra: ["--register", "consul://\(agent.address)/web"])
        defer { pod.stop() }
        // Registering without a token: 403, retried, and what to grant.
        #expect(pod.err.waitFor(timeout: 5) { $0.contains("needs service:write") } != nil, "\(pod.err.all)")
        let writerFile = tempDir() + "/writer.token"
        try "writer-secret-1\n".write(toFile: writerFile, atomically: true, encoding: .utf8)
        let good = try Backend(name: "web-ok", extra: ["--register", "consul://\(agent.address)/web", "--consul-token-file", writerFile])
        defer { good.stop() }
        #expect(agent.waitFor("web", timeout: 5) { _ in agent.request("GET", "/v1/health/service/web", token: "reader-secret-2").body.contains("web-ok") } != nil)

        let unknown = try watch(agent, query: "", duration: "2s", env: ["CONSUL_HTTP_TOKEN": "nope-secret-9"])
        #expect(unknown.wait() == 0)
        let u = try #require(unknown.snapshots.last).dict("resolver").string("error")
        #expect(u.contains("forbidden (403): ACL not found") && u.contains("$CONSUL_HTTP_TOKEN"), "\(u)")

        let blind = try watch(agent, query: "", duration: "2s", env: ["CONSUL_HTTP_TOKEN": "blind-secret-3"])
        #expect(blind.wait() == 0)
        let b = try #require(blind.snapshots.last).dict("resolver").dict("info").string("watch")
        #expect(b.contains("filtered them out by ACL") && b.contains("service:read on \"web\""), "\(b)")

        let readerFile = tempDir() + "/reader.token"
        try "reader-secret-2".write(toFile: readerFile, atomically: true, encoding: .utf8)
        let rec = tempDir() + "/consul.jsonl"
        let ok = try watch(agent, query: "", ["--consul-token-file", readerFile, "--record", rec], duration: "3s")
        #expect(ok.wait() == 0, "\(ok.err.all)")
        let last = try #require(ok.snapshots.last)
        #expect(last.endpoint(good.address)?.string("condition") == "ready", "\(last.rows("endpoints"))")
        #expect(last.dict("resolver").dict("info").string("auth") == "--consul-token-file \(readerFile)")
        // The secrets appear nowhere the user can see or keep.
        let recorded = (try? String(contentsOfFile: rec, encoding: .utf8)) ?? ""
        #expect(!recorded.isEmpty)
        for (name, text) in [("recording", recorded), ("output", (ok.out.all + ok.err.all + unknown.out.all + unknown.err.all + blind.out.all).joined()),
                             ("serve", (good.err.all + good.out.all + pod.err.all).joined())] {
            for secret in ["reader-secret-2", "writer-secret-1", "nope-secret-9", "blind-secret-3"] {
                #expect(!text.contains(secret), "\(secret) in the \(name)")
            }
        }
    }

    /// An unknown service: "no instances registered", and the watch picks them up when they come.
    @Test func unknownServiceThenRegistered() throws {
        let agent = try ConsulAgent()
        let w = try watch(agent, duration: "6s")
        let empty = try #require(w.waitForSnapshot { $0.dict("resolver").dict("info").string("watch").contains("no instances of 'web' with tag 'v1' registered") },
                                 "\(w.snapshots.last?.dict("resolver") ?? [:])")
        #expect(empty.rows("endpoints").isEmpty)
        let pod = try Backend(name: "web-late", extra: ["--register", "consul://\(agent.address)/web?tag=v1"])
        defer { pod.stop() }
        #expect(w.waitForSnapshot(timeout: 5) { ready($0) == 1 } != nil)
        #expect(w.wait() == 0)
    }

    /// An "agent" that is not Consul — an HTML page, a gRPC port — is one line in the resolver's
    /// error, retried with backoff, never a crash or a hang.
    @Test func agentThatIsNotConsul() throws {
        let html = try HTMLServer()
        defer { html.stop() }
        let grpc = try Backend(name: "not-consul")
        defer { grpc.stop() }
        for (agent, expected) in [("127.0.0.1:\(html.port)", "not Consul's"), (grpc.address, "consul: http://\(grpc.address)")] {
            let w = try WatchRun(["consul://\(agent)/web", "--batch", "--output", "json", "--interval", "250ms", "--duration", "2s"])
            #expect(w.wait(timeout: 20) == 0, "\(agent): \(w.err.all)")
            let resolver = try #require(w.snapshots.last, "\(agent)").dict("resolver")
            let error = resolver.string("error")
            #expect(error.contains(expected) && error.contains("retry in") && !error.contains("\n"), "\(agent): \(error)")
            #expect(resolver.dict("info").string("watch").hasPrefix("down since"), "\(agent): \(resolver)")
        }
    }

    /// Bad targets and flags: one line each, exit 2, nothing else started.
    @Test func badTargetsAndFlags() throws {
        for (args, expected) in [
            (["consul:web"], "consul:///service"),
            (["consul:///web?token=abc"], "$CONSUL_HTTP_TOKEN"),
            (["consul:///web?wait=1h"], "out of range"),
            (["consul:///web?bogus=1"], "unknown parameter 'bogus'"),
            (["consul:///web", "--consul-token-file", "/nonexistent/token"], "--consul-token-file /nonexistent/token: no such file"),
        ] {
            let r = try WatchRun(args + ["--batch", "--iterations", "1"])
            #expect(r.wait(timeout: 10) == 2, "\(args)")
            let err = r.err.all.joined(separator: "\n")
            #expect(err.contains(expected) && r.err.all.filter { !$0.isEmpty }.count == 1, "\(args): \(err)")
        }
        for (args, expected) in [
            (["--register", "consul://127.0.0.1:1/web", "--consul-check", "http"], "--consul-check 'http': use ttl or grpc"),
            (["--register", "consul://127.0.0.1:1/web?passing=true"], "only ?tag=T"),
            (["--consul-check", "grpc"], "go with --register consul://"),
            (["--register", "consul://127.0.0.1:1/web", "--lease-ttl", "1500ms"], "whole seconds"),
            (["--register", "consul://127.0.0.1:1/web", "--consul-token-file", "/nonexistent/token"], "--consul-token-file /nonexistent/token: no such file"),
        ] {
            let r = try WatchRun(args, subcommand: "serve")
            #expect(r.wait(timeout: 10) == 2, "\(args)")
            #expect(r.err.all.joined().contains(expected), "\(args): \(r.err.all)")
        }
        let bench = try WatchRun(["--consul", "127.0.0.1:99999"], subcommand: "bench")
        #expect(bench.wait(timeout: 10) == 2)
        #expect(bench.err.all.filter { !$0.isEmpty } == ["grpctop: --consul '127.0.0.1:99999': port 99999 in target '127.0.0.1:99999' is out of range (1-65535)"], "\(bench.err.all)")
    }
}

/// The stand-in is checked against a client written for real Consul: Debian's python3-consul
/// registers, queries, blocks and is refused on it as on a real agent.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/consul/__init__.py") && ConsulAgent.available,
                "python3-consul is not installed (scripts/test installs it)"))
struct ConsulStandInTests {
    @Test func pythonConsulAgreesWithTheStandIn() throws {
        let agent = try ConsulAgent(acl: ["tok-w": ["AccessorID": "acc-w", "service_write": ["web"], "node_read": true]])
        let script = tempDir() + "/check.py"
        try """
        import json, sys, threading, time
        import consul
        from consul.base import CB
        c = consul.Consul(host="127.0.0.1", port=\(agent.port), token="tok-w")
        out = {}
        out["register"] = c.agent.service.register("web", service_id="web-1", address="127.0.0.1", port=5001, tags=["v1"], check=consul.Check.ttl("10s"))
        idx, nodes = c.health.service("web")
        out["first"] = [n["Service"]["ID"] for n in nodes]
        out["new_check"] = [ch["Status"] for n in nodes for ch in n["Checks"] if ch["CheckID"] == "service:web-1"]
        # python-consul 0.7.1 sends GET to the TTL endpoints, which Consul >= 1.0 answers 405.
        out["ttl_pass_get"] = c.agent.check.ttl_pass("service:web-1")
        out["ttl_pass_put"] = c.http.put(CB.bool(), "/v1/agent/check/pass/service:web-1", params={"token": "tok-w"})
        idx2, nodes = c.health.service("web", passing=True)
        out["passing"] = len(nodes)
        def later():
            time.sleep(0.5)
            c.http.put(CB.bool(), "/v1/agent/check/warn/service:web-1", params={"note": "slow", "token": "tok-w"})
        threading.Thread(target=later).start()
        t = time.time()
        idx3, nodes = c.health.service("web", index=idx2, wait="5s")
        out["blocked"] = round(time.time() - t, 1)
        out["index_grew"] = int(idx3) > int(idx2)
        out["warning_output"] = [ch["Output"] for ch in nodes[0]["Checks"] if ch["CheckID"] == "service:web-1"]
        t = time.time()
        idx4, _ = c.health.service("web", index=idx3, wait="1s")
        out["timed_out"] = round(time.time() - t, 1)
        out["same_index"] = idx4 == idx3
        out["tag_filter"] = len(c.health.service("web", tag="v2")[1])
        out["catalog"] = c.catalog.services()[1]
        try:
            consul.Consul(host="127.0.0.1", port=\(agent.port), token="bad").health.service("web")
            out["bad_token"] = "accepted"
        except consul.ACLPermissionDenied as e:
            out["bad_token"] = str(e)
        try:
            consul.Consul(host="127.0.0.1", port=\(agent.port)).agent.service.register("web", service_id="web-2", port=1)
            out["anonymous_register"] = "accepted"
        except consul.ACLPermissionDenied as e:
            out["anonymous_register"] = str(e)
        print(json.dumps(out))
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let run = try WatchRun([script], subcommand: nil, binary: "/usr/bin/python3")
        #expect(run.wait(timeout: 30) == 0, "\(run.err.all)")
        let line = try #require(run.out.all.last { $0.hasPrefix("{") }, "\(run.out.all) \(run.err.all)")
        let r = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(r["register"] as? Bool == true)
        #expect(r["first"] as? [String] == ["web-1"])
        #expect(r["new_check"] as? [String] == ["critical"], "new checks start critical")
        #expect(r["ttl_pass_get"] as? Bool == false && r["ttl_pass_put"] as? Bool == true)
        #expect(r["passing"] as? Int == 1)
        #expect((r["blocked"] as? Double ?? 0) >= 0.4 && (r["blocked"] as? Double ?? 9) < 2 && r["index_grew"] as? Bool == true, "\(r)")
        #expect(r["warning_output"] as? [String] == ["slow"])
        #expect((r["timed_out"] as? Double ?? 0) >= 1.0 && r["same_index"] as? Bool == true, "\(r)")
        #expect(r["tag_filter"] as? Int == 0)
        #expect((r["catalog"] as? [String: [String]])?["web"] == ["v1"])
        #expect(r["bad_token"] as? String == "ACL not found")
        #expect((r["anonymous_register"] as? String ?? "").contains("lacks permission 'service:write' on \"web\""), "\(r)")
    }
}
