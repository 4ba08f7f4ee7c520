import Foundation
import NIOCore
import NIOPosix
import Terminal
import TopologyCore
import TopologySources
import TopologyTransport
import TopologyView

/// What the dashboard reads and commands: our engine (a driven channel) or an observed session
/// (`grpctop attach`).
public protocol LiveModelSource: AnyObject {
    /// A copy of the model now.
    func currentModel() throws -> Model
    func submit(_ event: Event)
}

extension Engine: LiveModelSource {
    public func currentModel() throws -> Model { try withModel { $0 }.wait() }
}

extension ObservedSession: LiveModelSource {
    public func currentModel() throws -> Model { withModel { $0 } }
}

/// What a driver (the demo) adds to the loop: the engine may change (one per scenario), `n`
/// moves on.
public protocol DashboardDriver: AnyObject {
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
public enum DashboardLoop {
    public static func run(engine: any LiveModelSource, colors: Bool, recording: (() -> String?)? = nil) throws -> (Model, String?) {
        try run(engine: { engine }, colors: colors, demo: nil, recording: recording)
    }

    /// Runs until `q`, Ctrl-C or a quit signal; returns the model at the end. `engine` is read
    /// before every frame: the demo swaps it between scenarios.
    public static func run(engine current: () -> any LiveModelSource, colors: Bool, demo: DashboardDriver?, recording: (() -> String?)? = nil) throws -> (Model, String?) {
        var engine = current()
        let screen = DashboardScreen(colors: colors)
        defer { screen.end() }
        var frozen: Model?
        var model = try engine.currentModel()

        loop: while true {
            if TerminalRestorer.quitRequested != 0 { break }
            demo?.poll()
            let latest = current()
            if latest !== engine {
                // A new scenario: a new model whose ids and row versions start over.
                engine = latest
                screen.rows = nil
                frozen = nil
                screen.state.details = nil
                model = try engine.currentModel()
                screen.dirty = true
            }
            if let key = screen.readKey(timeoutMs: 50) {
                let wasPaused = screen.state.paused
                let commands = screen.handle(key, model: model)
                if screen.state.paused && !wasPaused { frozen = model }
                if !screen.state.paused { frozen = nil }
                for c in commands {
                    switch c {
                    case .quit: break loop
                    case .setPolicy(let p): engine.submit(.policyChanged(p))
                    case .setHealthCheck(let s): engine.submit(.healthCheckChanged(s))
                    case .setTraffic(let t): engine.submit(.trafficChanged(t))
                    case .reconnect(let id): engine.submit(.reconnectRequested(id))
                    case .nextScenario: demo?.next()
                    case .resolveNow: engine.submit(.resolutionRequested)
                    case .replay: break  // only in grpctop replay
                    case .marker(let label): engine.submit(.marker(label))
                    case .watchChannel(let id): engine.submit(.channelChosen(id))
                    }
                }
            }
            guard screen.due else { continue }
            model = try engine.currentModel()
            screen.state.recording = recording?()
            screen.draw(frozen ?? model)
        }
        let note = screen.end()
        return (try engine.currentModel(), note)
    }
}

/// The terminal side shared by the live dashboard and the replay: keys through the view state,
/// a redraw after a key or every 250 ms, only the changed cells sent.
final class DashboardScreen {
    private let term: CursesTerminal
    private let glyphs: Glyphs
    var state = ViewState()
    var rows: PaneRows?
    var dirty = true
    private var lastRender = DispatchTime(uptimeNanoseconds: 0)

    init(colors: Bool) {
        do {
            term = try CursesTerminal(colors: colors)
        } catch {
            FileHandle.standardError.write(Data("grpctop: \(error)\n".utf8))
            exit(1)
        }
        glyphs = term.isUTF8 ? .unicode : .ascii
        state.colors = colors
    }

    /// A key within `timeoutMs`, if any (a resize re-lays out everything).
    func readKey(timeoutMs: Int32) -> Key? {
        guard let key = term.readKey(timeoutMs: timeoutMs) else { return nil }
        if key == .resize { term.invalidate() }
        dirty = true
        return key
    }

    /// The view's answer to a key: view-only changes are made, commands are returned.
    func handle(_ key: Key, model: Model) -> [ViewCommand] {
        state.handle(key, rows: rows ?? PaneRows(model: model, state: state), model: model)
    }

    /// A frame is due: after a key, or 250 ms after the last one.
    var due: Bool { dirty || DispatchTime.now().uptimeNanoseconds - lastRender.uptimeNanoseconds >= 250_000_000 }

    var sinceLastFrameNanos: UInt64 { DispatchTime.now().uptimeNanoseconds - lastRender.uptimeNanoseconds }

    func draw(_ model: Model) {
        let (w, h) = term.size
        // Some terminals (kubectl exec) report 0×0 until the first resize: wait for it.
        guard w > 0 && h > 0 else { return }
        let frame = Dashboard.render(model: model, state: state, width: w, height: h, glyphs: glyphs, previousRows: rows)
        state.pageSize = frame.pageSizes
        rows = frame.rows
        term.draw(frame.grid, colors: state.colors)
        lastRender = .now()
        dirty = false
    }

    /// Gives the terminal back (idempotent); returns what to say about terminfo, if anything.
    @discardableResult
    func end() -> String? {
        let note = term.terminfoNote
        term.end()
        return note
    }
}
