import Foundation
import Terminal
import TopologyCore
import TopologyRecording
import TopologyView

/// `grpctop replay FILE` on a terminal: the live dashboard over a replay clock instead of an
/// engine. Every view key works on the replayed model; the replay keys move the clock.
public enum ReplayLoop {
    public static func run(_ source: ReplaySource, speed: Double, from: Millis, colors: Bool) throws -> Model {
        var player = ReplayPlayer(source, speed: speed)
        if from > 0 { player.seek(to: from) }
        let screen = DashboardScreen(colors: colors)
        defer { screen.end() }
        var last = DispatchTime.now()
        func timeline() -> Timeline {
            Timeline(position: player.position, duration: player.duration, speed: player.speed, paused: player.paused, markers: player.markers)
        }
        loop: while true {
            if TerminalRestorer.quitRequested != 0 { break }
            if let key = screen.readKey(timeoutMs: 20) {
                screen.state.timeline = timeline()
                for c in screen.handle(key, model: player.model) {
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
                    case .setPolicy, .setHealthCheck, .setTraffic, .reconnect, .resolveNow, .nextScenario, .marker, .watchChannel: break
                    }
                }
            }
            let now = DispatchTime.now()
            let wasAt = player.position
            player.tick(wallMs: Double(now.uptimeNanoseconds - last.uptimeNanoseconds) / 1e6)
            last = now
            // Playing: up to 10 frames a second.
            if player.position != wasAt && screen.sinceLastFrameNanos >= 100_000_000 { screen.dirty = true }
            guard screen.due else { continue }
            screen.state.timeline = timeline()
            screen.draw(player.model)
        }
        screen.end()
        return player.model
    }
}
