import Testing
import TopologyCore
@testable import TopologyView

/// The batch output's text tables (`--output table`).
@Suite struct TextTablesTests {
    func model(ok: Int, failed: Int, unfinished: Int) -> Model {
        var m = Model()
        _ = m.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(target: "t", resolver: "static", policy: .roundRobin, rpc: "x",
                                                                      identityHeader: nil, traffic: .rate(1), startedAt: 0, host: "h", version: "v"))))
        var tick = StatsTick()
        var d = RPCDelta()
        d.started = ok + failed
        d.succeeded = ok
        d.failed = failed
        if failed - unfinished > 0 { d.codes[14] = failed - unfinished }
        if unfinished > 0 { d.codes[GRPCStatusName.unfinished] = unfinished }
        tick.unassigned = d
        _ = m.apply(TimedEvent(at: 250, .stats(tick)))
        return m
    }

    /// RPCs the run cancelled at its end are named in the summary line, apart from real failures.
    @Test func summaryNamesUnfinishedRPCs() {
        let table = Summary(model(ok: 0, failed: 5, unfinished: 5)).table()
        #expect(table.hasPrefix("summary: "))
        #expect(table.contains("5 RPCs, 0 ok, 5 failed (UNFINISHED 5)"))
        #expect(table.contains("(no subchannel)  5"))
    }

    @Test func columnsAlignAndTrailingSpaceIsTrimmed() {
        #expect(formatTable([["A", "BB", ""], ["CCC", "D", "x"]]) == "A    BB\nCCC  D   x\n")
    }
}
