import Foundation
import Testing

/// `grpctop demo`: every scenario runs headless and ends with its verdict.
@Suite(.serialized) struct DemoTests {
    @Test(arguments: ["headless", "scale"])
    func scenarioVerdictPasses(scenario: String) throws {
        let run = try WatchRun(["--scenario", scenario, "--batch", "--speed", "2", "--output", "json"], subcommand: "demo")
        let status = run.wait(timeout: 60)
        let verdict = try #require(run.verdict, "\(scenario): no verdict; stderr \(run.err.all)")
        let checks = verdict["checks"] as? [[String: Any]] ?? []
        #expect(verdict["passed"] as? Bool == true, "\(scenario): \(checks)")
        #expect(status == 0)
        #expect(!checks.isEmpty)
        // It printed snapshots while the story played (one a second).
        #expect(run.snapshots.count >= 3)
    }

    @Test func listAndBadScenario() throws {
        let list = try WatchRun(["--list"], subcommand: "demo")
        #expect(list.wait() == 0)
        #expect(list.out.all.contains { $0.hasPrefix("headless") } && list.out.all.contains { $0.hasPrefix("scale") })
        let bad = try WatchRun(["--scenario", "nope", "--batch"], subcommand: "demo")
        #expect(bad.wait() == 2)
        #expect(bad.err.all.count == 1 && bad.err.all[0].contains("--scenario 'nope' is not known"))
    }

    /// The live demo in a real terminal: the caption line and the panes.
    @Test func liveDemoShowsCaptionAndPanes() throws {
        let t = try TmuxSession(width: 120, height: 36, command: "env -u NO_COLOR TERM=xterm-256color \(Paths.grpctop) demo --scenario headless --speed 2; echo EXIT=$?; sleep 30")
        let screen = t.waitFor(timeout: 15) { $0.contains("headless Service: the resolver returns all 3 pods") && $0.contains("Traffic per pod (3)") }
        #expect(screen != nil, "\(t.screen())")
        t.keys("q")
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(end.contains("verdict: headless"))
    }
}
