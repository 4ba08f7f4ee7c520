import Foundation
import Testing

/// Transport features end to end: unix sockets, TLS, keepalive, health, policies, any method.
@Suite(.serialized) struct TransportEndToEndTests {
    @Test func unixSocketTarget() throws {
        let path = tempDir() + "/s.sock"
        let b = try Backend(name: "sock", extra: ["--unix", path])
        defer { b.stop() }
        #expect(b.address == "unix:" + path)
        let run = try WatchRun(["unix://" + path, "--batch", "--output", "json", "--rps", "50", "--duration", "1500ms"])
        #expect(run.wait() == 0)
        let s = try #require(run.summary)
        #expect(s.int("failed") == 0)
        #expect(s.int("total") >= 50)
        #expect(s.int("total") == Backend.total(b.stop()))
    }

    /// TLS with ALPN h2 against a server certificate signed by a test CA.
    @Test func tlsWithATestCA() throws {
        let dir = tempDir()
        try makeCertificates(in: dir)
        let b = try Backend(name: "tls", extra: ["--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key"])
        defer { b.stop() }
        let ok = try WatchRun(["ipv4:" + b.address, "--tls", "--cacert", dir + "/ca.pem", "--authority", "localhost",
                               "--batch", "--output", "json", "--rps", "50", "--duration", "1500ms"])
        #expect(ok.wait() == 0)
        #expect(ok.summary?.int("failed") == 0)
        #expect((ok.summary?.int("total") ?? 0) >= 50)
        // Without the CA the handshake fails: shown as the subchannel's reason, not a crash.
        let bad = try WatchRun(["ipv4:" + b.address, "--tls", "--batch", "--output", "json", "--duration", "1500ms", "--interval", "500ms"])
        #expect(bad.wait() == 0)
        let sc = try #require(bad.snapshots.last?.rows("subchannels").first)
        #expect(sc.string("state") == "TRANSIENT_FAILURE")
        #expect(sc.string("lastReason") == "TLS handshake failed: certificate verify failed", "reason: \(sc.string("lastReason"))")
        // And plaintext against the TLS port never sees SETTINGS.
        let plain = try WatchRun(["ipv4:" + b.address, "--batch", "--output", "json", "--duration", "1s", "--timeout", "300ms"])
        #expect(plain.wait() == 0)
        #expect(plain.snapshots.last?.rows("subchannels").first?.string("state") != "READY")
    }

    /// A peer that stops answering (SIGSTOP) is detected by the keepalive timeout.
    @Test func keepaliveDetectsAHungPeer() throws {
        let b = try Backend(name: "hang")
        defer { b.signal(SIGCONT); b.stop(SIGKILL) }
        let run = try WatchRun(["ipv4:" + b.address, "--keepalive", "1s", "--keepalive-timeout", "1s", "--timeout", "1s",
                                "--batch", "--output", "json", "--rps", "20", "--duration", "6s", "--interval", "250ms"])
        let ready = try #require(run.waitForSnapshot { $0.rows("subchannels").first?.string("state") == "READY" && $0.double("t") > 1.2 })
        #expect(ready.rows("subchannels").first?["rttMs"] != nil)
        b.signal(SIGSTOP)
        let gone = run.waitForSnapshot(timeout: 5) { s in
            (s.rows("subchannels").first?["transitions"] as? [String] ?? []).contains("READY->IDLE: keepalive timeout")
        }
        #expect(gone != nil, "no keepalive timeout seen: \(run.snapshots.last?.rows("subchannels") ?? [])")
        run.wait()
    }

    /// The server's health service, checked with a third-party client (Python grpcio):
    /// Check and Watch follow SIGUSR1 (NOT_SERVING) and SIGUSR2 (SERVING).
    @Test func healthServiceFollowsSignals() throws {
        let b = try Backend(name: "health")
        defer { b.stop() }
        let script = """
        import sys, time, threading, grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        lock = threading.Lock()
        def say(*words):
            with lock:
                sys.stdout.write(" ".join(str(w) for w in words) + "\\n")
                sys.stdout.flush()
        ch = grpc.insecure_channel(sys.argv[1])
        stub = health_pb2_grpc.HealthStub(ch)
        seen = []
        def watch():
            for r in stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=6):
                seen.append(r.status)
                say("watch", r.status)
        t = threading.Thread(target=watch, daemon=True); t.start()
        say("check", stub.Check(health_pb2.HealthCheckRequest(service="")).status)
        time.sleep(0.5)
        say("ready")
        sys.stdin.readline()
        say("check", stub.Check(health_pb2.HealthCheckRequest(service="")).status)
        time.sleep(0.5)
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="nope"))
        except grpc.RpcError as e:
            say("unknown", e.code().name)
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.python)
        p.arguments = ["-c", script, b.address]
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardInput = input
        let lines = LineCollector()
        lines.attach(out)
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        #expect(lines.waitFor { $0 == "ready" } != nil)
        b.signal(SIGUSR1)
        usleep(300_000)
        input.fileHandleForWriting.write(Data("go\n".utf8))
        #expect(lines.waitFor { $0.hasPrefix("unknown") } != nil)
        let all = lines.all
        #expect(all.contains("check 1"))      // SERVING
        #expect(all.contains("check 2"))      // NOT_SERVING after SIGUSR1
        #expect(all.contains("watch 1") && all.contains("watch 2"))
        #expect(all.contains("unknown NOT_FOUND"))
    }

    /// least_request sends a slow backend a smaller share than round_robin does. (gRFC A48
    /// samples its two candidates with replacement, so the slow one still gets the picks where
    /// both samples land on it: about 1/9 with three backends.)
    @Test func leastRequestRoutesAroundASlowBackend() throws {
        let slow = try Backend(name: "slow", extra: ["--delay", "60ms"])
        let fast = try (0..<2).map { try Backend(name: "fast\($0)", extra: ["--delay", "2ms"]) }
        defer { slow.stop(); fast.forEach { $0.stop() } }
        let target = "ipv4:" + ([slow] + fast).map(\.address).joined(separator: ",")
        func slowShare(_ policy: String) throws -> Double {
            let run = try WatchRun([target, "--lb", policy, "--concurrency", "30", "--batch", "--output", "json", "--duration", "2s"])
            #expect(run.wait() == 0)
            return try #require(run.summary).rows("backends").first { $0.string("name") == slow.address }?.double("share") ?? -1
        }
        let rr = try slowShare("round_robin")
        let lr = try slowShare("least_request")
        #expect(abs(rr - 1.0 / 3) < 0.05, "round_robin gave the slow backend \(rr)")
        #expect(lr < rr - 0.08, "least_request gave the slow backend \(lr), round_robin \(rr)")
    }

    /// Any unary method with a raw payload; an unknown one is counted as UNIMPLEMENTED.
    @Test func customMethods() throws {
        let b = try Backend(name: "m")
        defer { b.stop() }
        let ok = try WatchRun(["ipv4:" + b.address, "--method", "/helloworld.Greeter/SayHello", "--data-hex", "0a03626f62",
                               "--batch", "--output", "json", "--rps", "50", "--duration", "1s"])
        #expect(ok.wait() == 0)
        #expect(ok.summary?.int("failed") == 0)
        let sc = try #require(ok.snapshots.last?.rows("subchannels").first)
        #expect(sc.int("messagesReceived") == sc.int("ok"))
        let bad = try WatchRun(["ipv4:" + b.address, "--method", "/no.Such/Method", "--batch", "--output", "json", "--rps", "50", "--duration", "1s"])
        #expect(bad.wait() == 0)
        #expect((bad.summary?["errors"] as? [String: Int])?["UNIMPLEMENTED"] ?? 0 > 0)
        #expect(bad.summary?.int("ok") == 0)
    }
}

/// A test CA and a server certificate for localhost / 127.0.0.1, made with openssl.
func makeCertificates(in dir: String) throws {
    let script = """
    set -e
    cd '\(dir)'
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=grpctop-test-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf 2>/dev/null
    """
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", script]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw FleetError("openssl failed (\(p.terminationStatus))") }
}
