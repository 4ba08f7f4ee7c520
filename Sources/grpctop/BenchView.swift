import Foundation
import TopologyCore
import TopologyView

/// `grpctop bench --view`: the dashboard's costs without a terminal — rendering a frame into the
/// grid, the diff of an unchanged frame, key → frame with thousands of endpoints, and the CPU an
/// idle dashboard spends on its 4 redraws a second.
enum ViewBenchmark {
    struct Report: Codable {
        var render200x60With1000EndpointsMs: Double
        var render200x60With1000EndpointsAfterTopologyChangeMs: Double
        var unchangedFrameChangedCells: Int
        var keyToFrame5000EndpointsMs: Double
        var filterToFrame5000EndpointsMs: Double
        var idleRedrawCorePercent: Double
    }

    static func median(_ body: () -> Void, runs: Int) -> Double {
        var times: [Double] = []
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        return times.sorted()[times.count / 2]
    }

    static func run() -> Report {
        let thousand = ScriptedModel.manyEndpoints(1000)
        let state = ViewState()
        var frame = Dashboard.render(model: thousand, state: state, width: 200, height: 60)
        // A redraw as the dashboard does it: the rows of the last frame are reused when the
        // topology did not change (`coldRender` rebuilds them, as after a topology change).
        let render = median({ frame = Dashboard.render(model: thousand, state: state, width: 200, height: 60, previousRows: frame.rows) }, runs: 101)
        let cold = median({ _ = Dashboard.render(model: thousand, state: state, width: 200, height: 60) }, runs: 51)
        let again = Dashboard.render(model: thousand, state: state, width: 200, height: 60)
        let unchanged = again.grid.changes(from: frame.grid).reduce(0) { $0 + $1.count }

        let big = ScriptedModel.manyEndpoints(5000)
        var s = ViewState()
        s.focus = .endpoints
        var rows = PaneRows(model: big, state: s)
        let key = median({
            _ = s.handle(.down, rows: rows, model: big)
            let f = Dashboard.render(model: big, state: s, width: 200, height: 60, previousRows: rows)
            rows = f.rows
        }, runs: 31)
        let filter = median({
            var fs = ViewState()
            fs.filter = "p4999"
            _ = Dashboard.render(model: big, state: fs, width: 200, height: 60)
        }, runs: 31)

        // An idle dashboard: a session with a few endpoints and no traffic, redrawn 4 times a
        // second (render + diff; an unchanged frame sends nothing to the terminal).
        let idle = ScriptedModel.healthyRoundRobin()
        var prev = Dashboard.render(model: idle, state: ViewState(), width: 120, height: 40).grid
        let perFrame = median({
            let f = Dashboard.render(model: idle, state: ViewState(), width: 120, height: 40)
            _ = f.grid.changes(from: prev)
            prev = f.grid
        }, runs: 101)
        return Report(
            render200x60With1000EndpointsMs: render, render200x60With1000EndpointsAfterTopologyChangeMs: cold, unchangedFrameChangedCells: unchanged,
            keyToFrame5000EndpointsMs: key, filterToFrame5000EndpointsMs: filter,
            idleRedrawCorePercent: perFrame * 4 / 1000 * 100)
    }

    static func table(_ r: Report) -> String {
        formatTable([
            ["dashboard", "measured", "target"],
            ["render a 200×60 frame, 1,000 endpoints", String(format: "%.2f ms", r.render200x60With1000EndpointsMs), "≤ 1 ms"],
            ["  … the first frame after a topology change", String(format: "%.2f ms", r.render200x60With1000EndpointsAfterTopologyChangeMs), ""],
            ["cells sent for an unchanged frame", "\(r.unchangedFrameChangedCells)", "0"],
            ["key → frame, 5,000 endpoints (scroll)", String(format: "%.1f ms", r.keyToFrame5000EndpointsMs), "< 50 ms"],
            ["filter → frame, 5,000 endpoints", String(format: "%.1f ms", r.filterToFrame5000EndpointsMs), "< 50 ms"],
            ["idle redraws (4/s), share of one core", String(format: "%.3f %%", r.idleRedrawCorePercent), "≤ 0.5 %"],
        ])
    }
}
