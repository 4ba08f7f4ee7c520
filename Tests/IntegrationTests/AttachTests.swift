import ChannelzAPI
import Foundation
import Testing

/// `grpctop attach`: a Python grpcio client application's channel, read through its channelz.
@Suite(.serialized) struct AttachTests {
    func fleet(_ n: Int) throws -> [Backend] { try (0..<n).map { try Backend(name: "pod-\($0)") } }

    /// round_robin over three pods: three READY subchannels with their pods' addresses, a third
    /// of the calls each, fairness balanced — grpctop sending nothing; then one pod SIGKILLed
    /// leaves READY within two polls, its trace events in the log.
    @Test func roundRobinApplicationSeenLive() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 150)
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "9s"], subcommand: "attach")
        let ready = try #require(run.waitForSnapshot { s in
            s.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 && s.rows("backends").filter { $0.double("rps") > 0 }.count == 3
        }, "never 3 READY subchannels with traffic: \(run.err.all)")
        #expect(ready.string("policy") == "observed")
        #expect(Set(ready.rows("subchannels").map { $0.string("endpoint") }) == Set(f.map(\.address)))
        let killedAt = ready.double("t")
        let victim = f[1]
        victim.signal(SIGKILL)
        let after = run.waitForSnapshot(timeout: 6) { s in
            s.rows("subchannels").contains { $0.string("endpoint") == victim.address && $0.string("state") != "READY" }
        }
        let seenAt = try #require(after, "the killed pod's subchannel stayed READY").double("t")
        #expect(seenAt - killedAt <= 1.6, "left READY \(seenAt - killedAt) s after the kill (polls every 0.5 s)")
        #expect(run.wait() == 0, "\(run.err.all)")
        let summary = try #require(run.summary)
        #expect(summary.string("policy") == "observed")
        #expect(summary.int("ok") > 300)
        let rows = summary.rows("backends")
        #expect(rows.count == 3)
        for r in rows where r.string("name") != victim.address {
            #expect(r.double("share") > 0.25, "\(r)")
        }
    }

    /// pick_first: one subchannel carries everything. (Fairness is judged over the endpoints the
    /// observed channel shows: grpcio's pick_first keeps a subchannel for the one it picked only,
    /// so channelz alone cannot tell that two other pods got nothing — that is `--names`' job.)
    @Test func pickFirstApplicationOnePodTakesAll() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), lb: "pick_first", rps: 100)
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "4s"], subcommand: "attach")
        #expect(run.wait() == 0, "\(run.err.all)")
        let summary = try #require(run.summary)
        let serving = summary.rows("backends").filter { $0.int("total") > 0 }
        #expect(serving.count == 1, "\(summary.rows("backends"))")
        #expect(serving.first?.double("share") == 1.0)
    }

    /// `--names`: a second target names the addresses by pod and lists every pod the channel
    /// should reach — so pick_first's two idle pods count in fairness ("one pod takes all").
    @Test func namesGiveEveryPodAndTheirNames() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let dir = tempDir()
        let file = dir + "/pods.txt"
        try writeEndpoints(file, f.enumerated().map { i, b in "\(b.address) pod=web-7d9f8c6b5-x\(i) zone=zone-\(i % 2)" })
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), lb: "pick_first", rps: 100)
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--names", "file:" + file, "--batch", "--output", "json",
                                "--interval", "500ms", "--duration", "4s"], subcommand: "attach")
        #expect(run.wait() == 0, "\(run.err.all)")
        let summary = try #require(run.summary)
        #expect(summary.string("fairnessWord") == "one pod takes all")
        let rows = summary.rows("backends")
        #expect(Set(rows.map { $0.string("name") }) == Set((0..<3).map { "web-7d9f8c6b5-x\($0)" }))
        #expect(rows.filter { $0.int("total") > 0 }.count == 1)
        let last = try #require(run.snapshots.last)
        #expect(last.rows("subchannels").allSatisfy { $0.string("endpoint").hasPrefix("web-7d9f8c6b5-x") })
        let bad = try WatchRun(["127.0.0.1:1", "--names", "nope://x", "--batch"], subcommand: "attach")
        #expect(bad.wait() == 2)
        #expect(bad.err.all.first?.hasPrefix("grpctop: --names: ") == true, "\(bad.err.all)")
    }

    /// A process without channelz: one line that says how to turn it on, exit 1. Bad flags: exit 2.
    @Test func withoutChannelzAndBadFlags() throws {
        let b = try Backend(name: "pod-0")
        defer { b.stop() }
        let run = try WatchRun([b.address, "--batch", "--duration", "5s"], subcommand: "attach")
        #expect(run.wait() == 1)
        #expect(run.err.all.contains { $0.hasPrefix("grpctop: \(b.address) has no channelz service (UNIMPLEMENTED)") && $0.contains("add_channelz_servicer") })
        for (args, message) in [(["127.0.0.1"], "has no port"), (["127.0.0.1:1", "--interval", "10ms"], "too short"),
                                (["unix:"], "needs a socket path"), (["127.0.0.1:1", "--cacert", "/nope"], "need --tls"),
                                (["127.0.0.1:1", "--iterations", "0"], "at least 1"), (["127.0.0.1:1", "--channel=-1"], "ids are positive"),
                                (["127.0.0.1:1", "--output", "xml"], "is not known"), (["127.0.0.1:1", "--duration", "1e17"], "too long"),
                                (["127.0.0.1:1", "--tls", "--cacert", "/nope"], "no such file")] {
            let bad = try WatchRun(args + ["--batch"], subcommand: "attach")
            #expect(bad.wait() == 2)
            #expect(bad.err.all.count == 1 && bad.err.all.first?.contains(message) == true, "\(args): \(bad.err.all)")
        }
    }

    /// What attach shows per subchannel equals what the process's channelz says at the same
    /// moment and what the pods served: the traffic stopped, the last snapshot's counts (since
    /// the subchannel was created) are each pod's served count exactly.
    @Test func countsEqualChannelzAndThePods() async throws {
        let f = try fleet(3)
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 120)
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "300ms", "--duration", "30s"], subcommand: "attach")
        defer { run.process.terminate(); app.stop(); f.forEach { $0.stop() } }
        _ = try #require(run.waitForSnapshot { $0.rows("subchannels").filter { $0.dict("lifetime").int("succeeded") > 30 }.count == 3 }, "\(run.err.all)")
        app.signal(SIGUSR1)  // the traffic stops; channelz stays up
        try await Task.sleep(for: .seconds(1.5))
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: app.adminPort))
        defer { cz.close() }
        let (poll, channel) = try await cz.poll(channelID: nil)
        #expect(channel != nil)
        var channelzByAddress: [String: Int] = [:]
        for (id, sc) in poll.subchannels {
            if let a = ChannelzObserver.address(subchannel: sc, socket: poll.sockets[id]) { channelzByAddress[a.description] = Int(sc.data?.callsSucceeded ?? -1) }
        }
        let settled = try #require(run.waitForSnapshot(timeout: 3) { s in
            s.rows("subchannels").allSatisfy { channelzByAddress[$0.string("endpoint")] == $0.dict("lifetime").int("succeeded") }
        }, "attach never showed channelz's counts \(channelzByAddress): \(run.snapshots.last?.rows("subchannels").map { $0.dict("lifetime") } ?? [])")
        let shown = Dictionary(uniqueKeysWithValues: settled.rows("subchannels").map { ($0.string("endpoint"), $0.dict("lifetime").int("succeeded")) })
        run.process.terminate()
        app.stop()
        for b in f {
            let served = Backend.total(b.stop())
            #expect(shown[b.address] == served, "\(b.name): served \(served), attach showed \(shown[b.address] ?? -1)")
        }
    }

    /// The process goes away mid-run (its channelz port closes, whatever poll was under way):
    /// the snapshots go on with the last picture (the same subchannels), say the channelz is
    /// down and when it retries; the run ends 0.
    @Test func processGoneMidRunKeepsTheLastPicture() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 50)
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "200ms", "--duration", "4s"], subcommand: "attach")
        _ = try #require(run.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 2 }, "\(run.err.all)")
        app.signal(SIGKILL)
        let down = run.waitForSnapshot(timeout: 5) { $0.dict("resolver").string("error").contains("retry in") }
        let last = try #require(down, "never said down: \(run.snapshots.last?.dict("resolver") ?? [:])")
        #expect(Set(last.rows("subchannels").map { $0.string("endpoint") }) == Set(f.map(\.address)), "the last picture is kept")
        #expect(run.wait() == 0, "\(run.err.all)")
    }

    /// `attach --record`: `replay --batch` prints exactly what the live run printed — channels,
    /// servers and their client connections, subchannel sockets and all.
    @Test func replayEqualsTheAttachedRun() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 60, channels: 2, serve: true)
        defer { app.stop() }
        let path = tempDir() + "/attach.jsonl.gz"
        let live = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "4s",
                                 "--record", path], subcommand: "attach")
        #expect(live.wait() == 0, "\(live.err.all)")
        let last = try #require(live.snapshots.last)
        #expect(last.dict("process").rows("channels").count == 2 && last.dict("process").rows("servers").count == 1)
        #expect(last.rows("subchannels").allSatisfy { $0.dict("socket").int("streamsStarted") > 0 })
        let replay = try WatchRun([path, "--batch", "--output", "json"], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        #expect(replay.out.all == live.out.all)
    }

    /// Nothing listening: the snapshots go on, saying the channelz is down and when it retries.
    @Test func unreachableProcessIsRetried() throws {
        let port = try freeTCPPort()
        let run = try WatchRun(["127.0.0.1:\(port)", "--batch", "--output", "json", "--interval", "300ms", "--duration", "2s"], subcommand: "attach")
        #expect(run.wait() == 0, "\(run.err.all)")
        let last = try #require(run.snapshots.last)
        let error = last.dict("resolver").string("error")
        #expect(error.contains("refused") && error.contains("retry in"), "\(error)")
    }
}

/// The same, against a C++ gRPC client application (Tests/cpp/channelz_client.cc, Debian's
/// libgrpc++ with grpcpp_channelz; scripts/test builds it).
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: Paths.cppChannelzClient),
                             "the C++ channelz client is not built (scripts/build-cpp-channelz-client)"))
struct AttachCppTests {
    @Test func roundRobinCppApplicationSeenLive() async throws {
        let f = try (0..<3).map { try Backend(name: "pod-\($0)") }
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 150, executable: Paths.cppChannelzClient)
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "4s"], subcommand: "attach")
        let ready = try #require(run.waitForSnapshot { s in
            s.rows("subchannels").filter { $0.string("state") == "READY" }.count == 3 && s.rows("backends").filter { $0.double("rps") > 0 }.count == 3
        }, "never 3 READY subchannels with traffic: \(run.err.all)")
        #expect(Set(ready.rows("subchannels").map { $0.string("endpoint") }) == Set(f.map(\.address)))
        #expect(run.wait() == 0, "\(run.err.all)")
        #expect(try #require(run.summary).string("fairnessWord") == "balanced")

        // Once traffic stops, each subchannel's succeeded calls are what its pod served.
        app.signal(SIGUSR1)
        try await Task.sleep(for: .seconds(1.5))
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: app.adminPort))
        defer { cz.close() }
        let (poll, channel) = try await cz.poll(channelID: nil)
        #expect(channel?.data?.target.hasPrefix("ipv4:") == true)
        var byPort: [Int: Int64] = [:]
        for (id, sc) in poll.subchannels {
            if let port = poll.sockets[id]?.remote?.tcpipAddress?.port { byPort[Int(port)] = sc.data?.callsSucceeded }
        }
        for b in f {
            let served = Backend.total(b.stop())
            #expect(Int64(served) == byPort[b.port], "\(b.name): served \(served), channelz \(byPort[b.port] ?? -1)")
        }
    }
}

/// The process as a server: who is connected to it.
@Suite(.serialized) struct AttachServerTests {
    /// Two `grpctop watch` clients of the application's server: each is one client connection in
    /// the snapshot's servers, with the streams it opened; the application's own channels are
    /// listed, the watched one marked.
    @Test func clientConnectionsOfAServer() throws {
        let b = try Backend(name: "pod-0")
        defer { b.stop() }
        let app = try ChannelzApp(target: "ipv4:" + b.address, rps: 20, serve: true)
        defer { app.stop() }
        let clients = try (0..<2).map { _ in
            try WatchRun(["ipv4:127.0.0.1:\(app.adminPort)", "--rpc", "greeter", "--rps", "20", "--batch", "--duration", "8s", "--interval", "4s"])
        }
        defer { clients.forEach { $0.process.terminate() } }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "5s"], subcommand: "attach")
        let seen = try #require(run.waitForSnapshot { s in
            let servers = s.dict("process").rows("servers")
            return servers.contains { $0.rows("sockets").filter { $0.int("streamsStarted") > 20 }.count >= 2 }
        }, "no server with two busy client connections: \(run.snapshots.last?.dict("process") ?? [:])")
        let server = try #require(seen.dict("process").rows("servers").first)
        #expect(server.int("socketCount") >= 3)  // the two watchers and attach itself
        for socket in server.rows("sockets") { #expect(socket.string("remote").hasPrefix("127.0.0.1:")) }
        let channels = seen.dict("process").rows("channels")
        #expect(channels.contains { $0.string("target") == "ipv4:" + b.address })
        #expect(seen.dict("process").int("watched") == channels.first { $0.string("target") == "ipv4:" + b.address }?.int("id"))
        _ = run.wait()
    }

    /// A TLS channel: each subchannel's connection as the process sees it — the peer
    /// certificate's subject and names (grpcio sends it as PEM), flow-control windows, streams and
    /// messages that match the calls.
    @Test func connectionDetailsOfATLSChannel() throws {
        let dir = tempDir()
        try makeCertificates(in: dir)
        let pods = try (0..<2).map { try Backend(name: "pod-\($0)", extra: ["--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key"]) }
        defer { pods.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + pods.map(\.address).joined(separator: ","), rps: 40, tlsCA: dir + "/ca.pem")
        defer { app.stop() }
        let run = try WatchRun(["127.0.0.1:\(app.adminPort)", "--batch", "--output", "json", "--interval", "500ms", "--duration", "6s"], subcommand: "attach")
        let seen = try #require(run.waitForSnapshot { s in
            s.rows("subchannels").filter { $0.dict("socket").int("streamsStarted") > 10 }.count == 2
        }, "no two busy TLS subchannels: \(run.snapshots.last?.rows("subchannels") ?? [])")
        for sub in seen.rows("subchannels") {
            let socket = sub.dict("socket")
            #expect(socket.string("peerSubject") == "CN=localhost, DNS:localhost, IP:127.0.0.1", "\(socket)")
            #expect(socket["tlsCipher"] != nil, "a TLS socket: \(socket)")
            #expect(socket.string("remote") == sub.string("endpoint"))
            // grpcio reports the windows only at times (its transport's flow-control snapshot):
            // when there, they are positive.
            for window in ["localWindow", "remoteWindow"] where socket[window] != nil { #expect(socket.int(window) > 0, "\(socket)") }
            // One call is one stream and one message each way on a subchannel's socket.
            let lifetime = sub.dict("lifetime")
            #expect(abs(socket.int("streamsStarted") - lifetime.int("started")) <= 2, "\(socket) \(lifetime)")
            #expect(abs(socket.int("messagesSent") - socket.int("streamsStarted")) <= 2)
        }
        _ = run.wait()
    }

    /// The Channels pane in a real terminal: the process's channels listed, the watched one
    /// marked; Tab to the pane, down, Enter — the dashboard watches the other channel (its
    /// subchannels, the title, the event); Enter on a server's client connection opens its
    /// details.
    @Test func channelsPaneChoosesTheWatchedChannel() throws {
        let b = try Backend(name: "pod-0")
        defer { b.stop() }
        let app = try ChannelzApp(target: "ipv4:" + b.address, rps: 20, channels: 2, serve: true)
        defer { app.stop() }
        let command = "env -u NO_COLOR TERM=xterm-256color \(Paths.grpctop) attach 127.0.0.1:\(app.adminPort) --interval 500ms; echo EXIT=$?; sleep 60"
        let t = try TmuxSession(width: 140, height: 45, command: command)
        let first = try #require(t.waitFor(timeout: 15) { $0.contains("Channels (2)") && $0.contains("READY") && $0.contains("Servers (1)") },
                                 "no Channels pane:\n\(t.screen())")
        let lines = first.split(separator: "\n").map(String.init)
        let watchedLine = try #require(lines.first { $0.contains("* #") && $0.contains("ipv4:" + b.address) }, "\(first)")
        #expect(first.contains("dns:///extra-0.invalid:1"))
        // Focus: Traffic → Servers → Events → Channels.
        t.keys("Tab")
        t.keys("Tab")
        t.keys("Tab")
        #expect(t.waitFor { $0.contains("Enter watches the selected one") } != nil, "\(t.screen())")
        // Rows are by channel id; grpcio numbers its channels in no fixed order, so the other
        // channel is the first row or the second.
        let watchedRow = lines.firstIndex(of: watchedLine) ?? 0
        let otherRow = lines.firstIndex { $0.contains("dns:///extra-0.invalid:1") } ?? 0
        if otherRow > watchedRow { t.keys("Down") }
        t.keys("Enter")
        let chosen = t.waitFor(timeout: 10) { s in
            s.contains("(chosen)") && s.split(separator: "\n").contains { $0.contains("* #") && $0.contains("extra-0.invalid") }
        }
        #expect(chosen != nil, "the other channel was not watched:\n\(t.screen())")
        #expect(chosen?.contains(watchedLine) == false)
        #expect(chosen?.contains("Subchannels (0)") == true, "\(chosen ?? "")")
        // Servers: Tab ×3 from Channels (Subchannels, Traffic, Servers), down to the first client, Enter.
        t.keys("Tab")
        t.keys("Tab")
        t.keys("Tab")
        t.keys("Down")
        t.keys("Enter")
        let details = t.waitFor { $0.contains("Client connection 127.0.0.1:") && $0.contains("keepalives") }
        #expect(details != nil, "no client connection details:\n\(t.screen())")
        t.keys("q")
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(end.contains("EXIT=0"))
    }
}
