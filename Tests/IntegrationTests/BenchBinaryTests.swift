import Foundation
import Testing

/// The stand-in API server lives in `grpctop-bench`, not in the `grpctop` users run.
@Suite struct BenchBinaryTests {
    @Test func kubernetesBenchmarkRunsInTheBenchBinary() throws {
        let run = try WatchRun(["--kubernetes", "--runs", "1", "--output", "json"], subcommand: nil, binary: Paths.grpctopBench)
        #expect(run.wait(timeout: 120) == 0, "\(run.err.all)")
        let json = try #require(run.out.all.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(json["endpoints"] as? Int == 5000)
        #expect(json["slices"] as? Int == 50)
        #expect((json["watchEvents"] as? Int ?? 0) >= 20)
    }

    @Test func badArgumentsAndTheOldFlagSayWhereToGo() throws {
        let bad = try WatchRun(["--kubernetes", "--runs", "0"], subcommand: nil, binary: Paths.grpctopBench)
        #expect(bad.wait() == 2)
        #expect(bad.err.all.first == "grpctop-bench: --runs '0' is out of range (1 to 100)")
        let old = try WatchRun(["--kubernetes"], subcommand: "bench")
        #expect(old.wait() == 2)
        #expect(old.err.all.first?.hasPrefix("grpctop: --kubernetes runs in grpctop-bench --kubernetes") == true)
    }

    /// The binary users run contains no test double.
    @Test func grpctopLinksNoStandIn() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Paths.grpctop))
        #expect(data.range(of: Data("KubeStandIn".utf8)) == nil)
        let bench = try Data(contentsOf: URL(fileURLWithPath: Paths.grpctopBench))
        #expect(bench.range(of: Data("KubeStandIn".utf8)) != nil)
    }
}
