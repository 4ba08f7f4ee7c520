import ArgumentParser
import Dashboard
import Foundation
import TopologyCore
import TopologyRecording
import TopologyView

/// `grpctop replay FILE`: a recording played back through the same model. `--batch` prints the
/// snapshots and the summary exactly as the live batch run did (at the moments it printed
/// them), so a recording can be checked in CI.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a recording made with `grpctop watch --record FILE`.",
        discussion: """
        On a terminal: the dashboard over the recording, with a timeline (space pause, ←/→ seek 10 s, \
        Shift ±1 min, [ ] speed, Home/End, n/N markers, g go to a time; every view key works). \
        With --batch (or when stdout is not a terminal): the snapshots at the moments the live \
        --batch run printed them (or every --interval of session time), then the summary. \
        Exit status: 0 ok, 1 the recording stops at a corrupt line (what was before it is replayed), \
        2 not a recording or bad input.
        """)

    @Argument(help: "The recording (FILE or FILE.gz).") var file: String
    @Flag(help: "Print snapshots and the summary instead of the dashboard.") var batch = false
    @Option(help: "Session time between snapshots when the recording has no live snapshot marks.") var interval = "1s"
    @Option(help: "Start at this session time (e.g. 90s, 2m).") var from: String?
    @Option(help: "Stop at this session time.") var to: String?
    @Option(help: "Pace the replay: 1 = as recorded, 2 = twice as fast (default with --batch: as fast as possible).") var speed: Double?
    @Option(help: "Snapshot format: table or json (JSON Lines).") var output = "table"
    @Flag(name: .customLong("no-color"), help: "No colours in the dashboard (also: NO_COLOR set).") var noColor = false
    @Option(name: .customLong("export-cast"), help: "Render the replay to an asciicast v2 file (asciinema play FILE) instead.") var exportCast: String?
    @Option(help: "Terminal size of --export-cast, COLUMNSxROWS.") var size = "120x40"
    @Option(help: "Frames per second of session time in --export-cast.") var fps = 4.0
    @Flag(help: "Print what the recording holds (who made it, the target and command, length, markers) and exit.") var info = false

    func run() throws {
        guard output == "table" || output == "json" else { throw UsageFailure("--output '\(output)' is not known: use table or json") }
        let intervalMs = try parseDuration(interval, flag: "--interval")
        guard intervalMs >= 10 else { throw UsageFailure("--interval \(interval) is too short (at least 10ms)") }
        let fromMs = try from.map { try parseDuration($0, flag: "--from") } ?? 0
        let toMs = try to.map { try parseDuration($0, flag: "--to") } ?? .max
        guard toMs >= fromMs else { throw UsageFailure("--to \(to ?? "") is before --from \(from ?? "0s")") }
        if let s = speed { guard s >= 0.01, s <= 1000, s.isFinite else { throw UsageFailure("--speed \(formatNumber(s)) is out of range (0.01 to 1000)") } }
        if !batch, let s = speed, !ReplayPlayer.speeds.contains(s) {
            throw UsageFailure("--speed \(formatNumber(s)): the dashboard plays at 0.25, 0.5, 1, 2, 4 … 64")
        }
        let interactive = !batch && isatty(STDOUT_FILENO) != 0 && isatty(STDIN_FILENO) != 0
        if info {
            let source: ReplaySource
            do { source = try ReplaySource.open(path: file, version: GRPCTop.version) } catch { throw UsageFailure(error.description) }
            let i = RecordingInfo(source, path: file)
            try printReport(i, json: output == "json", table: i.table())
            if source.stoppedAt != nil { throw ExitCode(1) }
            return
        }
        if exportCast != nil || interactive {
            // Seeking: through the recording's index, one segment at a time.
            let source: ReplaySource
            do { source = try ReplaySource.open(path: file, version: GRPCTop.version) } catch { throw UsageFailure(error.description) }
            try play(source, fromMs: fromMs, toMs: toMs)
            return
        }
        if !batch {
            FileHandle.standardError.write(Data("grpctop: stdout is not a terminal; replaying in --batch mode\n".utf8))
        }
        let source: ReplaySource
        do { source = try ReplaySource.open(path: file, version: GRPCTop.version) } catch { throw UsageFailure(error.description) }
        try printBatch(source, fromMs: fromMs, toMs: toMs, intervalMs: intervalMs)
    }

    /// The dashboard, or `--export-cast`.
    func play(_ source: ReplaySource, fromMs: Millis, toMs: Millis) throws {
        if let cast = exportCast {
            let parts = size.lowercased().split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, (Dashboard.minWidth...1000).contains(parts[0]), (Dashboard.minHeight...500).contains(parts[1]) else {
                throw UsageFailure("--size '\(size)' must be COLUMNSxROWS, at least \(Dashboard.minWidth)x\(Dashboard.minHeight), e.g. 120x40")
            }
            guard fps >= 0.1, fps <= 60 else { throw UsageFailure("--fps \(formatNumber(fps)) is out of range (0.1 to 60)") }
            let r = try CastExport.write(source, to: cast, width: parts[0], height: parts[1], speed: speed ?? 1, fps: fps, from: fromMs, to: toMs)
            FileHandle.standardError.write(Data("grpctop: wrote \(cast): \(r.frames) frames, \(formatDuration(r.durationMs)) at \(formatNumber(speed ?? 1))×, \(parts[0])x\(parts[1])\n".utf8))
            if let stop = source.stoppedAt {
                FileHandle.standardError.write(Data("grpctop: \(stop.description); exported everything before it\n".utf8))
                throw ExitCode(1)
            }
            return
        }
        if let stop = source.stoppedAt {
            FileHandle.standardError.write(Data("grpctop: \(stop.description); replaying everything before it\n".utf8))
        }
        let colors = !noColor && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let model = try ReplayLoop.run(source, speed: speed ?? 1, from: fromMs, colors: colors)
        print(Summary(model).table(), terminator: "")
        if let stop = source.stoppedAt {
            FileHandle.standardError.write(Data("grpctop: \(stop.description); replayed everything before it\n".utf8))
        }
    }

    /// Snapshots and the summary, as the live batch run printed them.
    func printBatch(_ source: ReplaySource, fromMs: Millis, toMs: Millis, intervalMs: Millis) throws {
        let json = output == "json"
        let pace = speed
        let model = try BatchReplay.run(source, from: fromMs, to: toMs, intervalMs: intervalMs, pace: { ms in
            if let pace { usleep(UInt32(min(Double(ms) / pace * 1000, 10_000_000))) }
        }, snapshot: { try printSnapshot($0, json: json) })
        let summary = Summary(model)
        try printReport(summary, json: json, table: summary.table())
        fflush(nil)
        if source.truncated {
            FileHandle.standardError.write(Data("grpctop: \(file): the last line is incomplete (the recorder stopped mid-write); replayed everything before it\n".utf8))
        }
        if let stop = source.stoppedAt {
            FileHandle.standardError.write(Data("grpctop: \(stop.description); replayed everything before it\n".utf8))
            throw ExitCode(1)
        }
    }

    func printSnapshot(_ m: Model, json: Bool) throws {
        let s = Snapshot(m)
        print(json ? try jsonLine(s) : s.table())
    }
}

/// `replay --export-cast`: the dashboard rendered at fixed steps of session time into an
/// asciicast v2 file (a JSON header line, then `[seconds, "o", text]` lines).
enum CastExport {
    static func write(_ source: ReplaySource, to path: String, width: Int, height: Int, speed: Double, fps: Double, from: Millis, to: Millis) throws -> (frames: Int, durationMs: Int64) {
        // open(2), not FileManager.createFile: that writes a temporary file and renames it over
        // the path, which as root replaced /dev/full (or any device, FIFO or link) with a file.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw UsageFailure("--export-cast \(path): cannot create it (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        func put(_ data: Data) throws {
            try data.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw OutputFailure(errno: errno, what: "--export-cast \(path)")
                    }
                    offset += n
                }
            }
        }
        var player = ReplayPlayer(source, speed: 1)
        player.setPaused(true)
        let start = max(from, 0)
        let end = min(to, source.duration)
        let header: [String: Any] = ["version": 2, "width": width, "height": height,
                                     "timestamp": Int(source.header.startedAt + Double(start) / 1000),
                                     "title": "grpctop replay \(source.header.target)",
                                     "env": ["TERM": "xterm-256color", "SHELL": "/bin/sh"]]
        try put(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) + Data("\n".utf8))
        let step = Millis(max(1, (1000 / fps).rounded()))
        var previous: CellGrid?
        var rows: PaneRows?
        var frames = 0
        var t = start
        var state = ViewState()
        while true {
            player.seek(to: t)
            state.timeline = Timeline(position: player.position, duration: player.duration, speed: speed, paused: false, markers: player.markers)
            let frame = Dashboard.render(model: player.model, state: state, width: width, height: height, previousRows: rows)
            rows = frame.rows
            let text = ANSIFrame.update(from: previous, to: frame.grid)
            if !text.isEmpty {
                let seconds = Double(t - start) / 1000 / speed
                let line = try JSONSerialization.data(withJSONObject: [(seconds * 1000).rounded() / 1000, "o", text] as [Any])
                try put(line + Data("\n".utf8))
                frames += 1
            }
            previous = frame.grid
            if t >= end { break }
            t = min(end, t + step)
        }
        return (frames, Int64(Double(end - start) / speed))
    }
}

/// `replay --info`: what a recording holds, without replaying it.
struct RecordingInfo: Encodable {
    struct Mark: Encodable {
        var atMs: Millis
        var label: String
    }
    var file: String
    var bytes: Int64
    var compressed: Bool
    var format: Int
    var grpctop: String
    var host: String
    var startedAt: String
    var target: String
    var command: [String]
    var durationMs: Millis
    /// Whether the file ends with its index (a recorder that was killed leaves none: it is then
    /// rebuilt by reading the file once).
    var indexed: Bool
    var keyframes: Int
    var markers: [Mark]
    /// Set when part of the file cannot be read: replay stops there.
    var damaged: String?

    init(_ source: ReplaySource, path: String) {
        file = path
        bytes = Int64((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0)
        compressed = source.compressed
        format = source.header.version
        grpctop = source.header.grpctop
        host = source.header.host
        let f = ISO8601DateFormatter()
        startedAt = f.string(from: Date(timeIntervalSince1970: source.header.startedAt))
        target = source.header.target
        command = source.header.options
        indexed = source.indexed && !source.indexRebuilt
        keyframes = max(0, source.segmentStarts.count - 1)
        // The labels are in the marker events: read the segments that hold them.
        var found: [Mark] = []
        var wanted = Set(source.markers)
        var i = 0
        while !wanted.isEmpty, i < source.availableSegments {
            let starts = source.segmentStarts
            let end = i + 1 < starts.count ? starts[i + 1] : .max
            if wanted.contains(where: { $0 >= starts[i] && $0 <= end }) {
                for case .event(let e) in source.segment(i).lines {
                    if case .marker(let label) = e.event, wanted.contains(e.at) {
                        found.append(Mark(atMs: e.at, label: label))
                    }
                }
                for m in found { wanted.remove(m.atMs) }
            }
            i += 1
        }
        markers = found
        durationMs = source.duration
        damaged = source.stoppedAt?.description ?? (source.truncated ? "the last line is incomplete (the recorder stopped mid-write)" : nil)
    }

    func table() -> String {
        var out = """
        recording  \(file) — \(formatBytes(bytes))\(compressed ? " gzip" : ""), format \(format), \(indexed ? "indexed (\(keyframes) keyframes)" : "no index (the recorder was killed; rebuilt by reading it: \(keyframes) keyframes)")
        made by    grpctop \(grpctop) on \(host), started \(startedAt)
        target     \(target)
        command    grpctop \(command.map(shellQuoted).joined(separator: " "))
        length     \(formatDuration(durationMs))\(damaged.map { " (replayable up to here: \($0))" } ?? "")
        markers    \(markers.count)

        """
        for m in markers { out += "  \(formatDuration(m.atMs).padding(toLength: 9, withPad: " ", startingAt: 0)) \(m.label.isEmpty ? "(no label)" : m.label)\n" }
        return out
    }
}

/// An argument as a shell would need it written.
func shellQuoted(_ s: String) -> String {
    if !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./:=,@+%".contains($0) }) { return s }
    return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
