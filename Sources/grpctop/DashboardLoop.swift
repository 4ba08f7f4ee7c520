import Foundation
import NIOCore
import NIOPosix
import Terminal
import TopologyCore
import TopologyTransport
import TopologyView

/// What the demo adds to the loop: the engine may change (one per scenario), `n` moves on.
protocol DemoDriver: AnyObject {
    func poll()
    func next()
}

/// The live dashboard: keys and the 4 Hz redraw on the main thread, the engine on its loop.
///
/// ```
///  keys ──► ViewState.handle ──► view-only changes (focus, scroll, sort, filter, details…)
///                         └────► engine commands (policy, traffic) ──► engine.submit(event)
///  every 250 ms or after a key: model copy ◄── engine.withModel ; Dashboard.render ──► draw diff
/// ```
enum DashboardLoop {
    static func run(engine: Engine, colors: Bool, recording: (() -> String?)? = nil) throws -> (Model, String?) {
        try run(engine: { engine }, colors: colors, demo: nil, recording: recording)
    }

    /// Runs until `q`, Ctrl-C or a quit signal; returns the model at the end. `engine` is read
    /// before every frame: the demo swaps it between scenarios.
    static func run(engine current: () -> Engine, colors: Bool, demo: DemoDriver?, recording: (() -> String?)? = nil) throws -> (Model, String?) {
        var engine = current()
        let term: CursesTerminal
        do {
            term = try CursesTerminal(colors: colors)
        } catch {
            fail("\(error)")
        }
        defer { term.end() }
        let glyphs: Glyphs = term.isUTF8 ? .unicode : .ascii
        var state = ViewState()
        state.colors = colors
        var frozen: Model?
        var rows: PaneRows?
        var lastRender = DispatchTime(uptimeNanoseconds: 0)
        var dirty = true
        var model = try engine.withModel { $0 }.wait()

        loop: while true {
            if TerminalRestorer.quitRequested != 0 { break }
            demo?.poll()
            let latest = current()
            if latest !== engine {
                // A new scenario: a new model whose ids and row versions start over.
                engine = latest
                rows = nil
                frozen = nil
                state.details = nil
                model = try engine.withModel { $0 }.wait()
                dirty = true
            }
            if let key = term.readKey(timeoutMs: 50) {
                if key == .resize { term.invalidate() }
                let wasPaused = state.paused
                let commands = state.handle(key, rows: rows ?? PaneRows(model: model, state: state), model: model)
                if state.paused && !wasPaused { frozen = model }
                if !state.paused { frozen = nil }
                for c in commands {
                    switch c {
                    case .quit: break loop
                    case .setPolicy(let p): engine.submit(.policyChanged(p))
                    case .setTraffic(let t): engine.submit(.trafficChanged(t))
                    case .reconnect(let id): engine.submit(.reconnectRequested(id))
                    case .nextScenario: demo?.next()
                    case .resolveNow: engine.submit(.resolutionRequested)
                    case .replay: break  // only in grpctop replay
                    case .marker(let label): engine.submit(.marker(label))
                    }
                }
                dirty = true
            }
            let now = DispatchTime.now()
            guard dirty || now.uptimeNanoseconds - lastRender.uptimeNanoseconds >= 250_000_000 else { continue }
            let (w, h) = term.size
            // Some terminals (kubectl exec) report 0×0 until the first resize: wait for it.
            guard w > 0 && h > 0 else { continue }
            model = try engine.withModel { $0 }.wait()
            state.recording = recording?()
            let frame = Dashboard.render(model: frozen ?? model, state: state, width: w, height: h, glyphs: glyphs, previousRows: rows)
            state.pageSize = frame.pageSizes
            rows = frame.rows
            term.draw(frame.grid, colors: state.colors)
            lastRender = now
            dirty = false
        }
        let note = term.terminfoNote
        term.end()
        return (try engine.withModel { $0 }.wait(), note)
    }
}
