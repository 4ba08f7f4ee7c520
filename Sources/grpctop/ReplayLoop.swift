import Foundation
import Terminal
import TopologyCore
import TopologyRecording
import TopologyView

/// `grpctop replay FILE` on a terminal: the live dashboard over a replay clock instead of an
/// engine. Every view key works on the replayed model; the replay keys move the clock.
enum ReplayLoop {
    static func run(_ recording: Recording, speed: Double, from: Millis, colors: Bool) throws -> Model {
        var player = ReplayPlayer(recording, speed: speed)
        if from > 0 { player.seek(to: from) }
        let term: CursesTerminal
        do { term = try CursesTerminal(colors: colors) } catch { fail("\(error)") }
        defer { term.end() }
        let glyphs: Glyphs = term.isUTF8 ? .unicode : .ascii
        var state = ViewState()
        state.colors = colors
        var rows: PaneRows?
        var last = DispatchTime.now()
        var lastRender = DispatchTime(uptimeNanoseconds: 0)
        var dirty = true
        func timeline() -> Timeline {
            Timeline(position: player.position, duration: player.duration, speed: player.speed, paused: player.paused, markers: player.markers)
        }
        loop: while true {
            if TerminalRestorer.quitRequested != 0 { break }
            if let key = term.readKey(timeoutMs: 20) {
                if key == .resize { term.invalidate() }
                state.timeline = timeline()
                for c in state.handle(key, rows: rows ?? PaneRows(model: player.model, state: state), model: player.model) {
                    switch c {
                    case .quit: break loop
                    case .replay(let r):
                        switch r {
                        case .togglePause: player.togglePause()
                        case .seek(let d): player.seek(by: d)
                        case .goTo(let t): player.seek(to: t)
                        case .faster: player.changeSpeed(faster: true)
                        case .slower: player.changeSpeed(faster: false)
                        case .start: player.seek(to: 0)
                        case .end: player.seek(to: player.duration)
                        case .nextMarker: player.nextMarker()
                        case .previousMarker: player.previousMarker()
                        }
                    case .setPolicy, .setTraffic, .reconnect, .resolveNow, .nextScenario, .marker: break
                    }
                }
                dirty = true
            }
            let now = DispatchTime.now()
            let wasAt = player.position
            player.tick(wallMs: Double(now.uptimeNanoseconds - last.uptimeNanoseconds) / 1e6)
            last = now
            if player.position != wasAt && now.uptimeNanoseconds - lastRender.uptimeNanoseconds >= 100_000_000 { dirty = true }
            guard dirty || now.uptimeNanoseconds - lastRender.uptimeNanoseconds >= 250_000_000 else { continue }
            let (w, h) = term.size
            guard w > 0 && h > 0 else { continue }
            state.timeline = timeline()
            let frame = Dashboard.render(model: player.model, state: state, width: w, height: h, glyphs: glyphs, previousRows: rows)
            state.pageSize = frame.pageSizes
            rows = frame.rows
            term.draw(frame.grid, colors: state.colors)
            lastRender = now
            dirty = false
        }
        term.end()
        return player.model
    }
}
