import TopologyCore

/// Rebuilds the model from a recording: the same `Model.apply` over the same events, with the
/// effects dropped (nothing connects during a replay).
public struct Replayer: Sendable {
    public let recording: Recording
    public internal(set) var model = Model()
    /// Index of the next line to apply.
    public internal(set) var position = 0

    public init(_ recording: Recording) {
        self.recording = recording
    }

    public var atEnd: Bool { position >= recording.lines.count }
    /// Session time of the last applied line.
    public var now: Millis { position == 0 ? 0 : recording.lines[position - 1].at }

    /// Applies the next line and returns it.
    @discardableResult
    public mutating func step() -> RecordedLine? {
        guard position < recording.lines.count else { return nil }
        let line = recording.lines[position]
        position += 1
        if case .event(let e) = line { _ = model.apply(e) }
        return line
    }

    /// Applies every line stamped at or before `t`.
    public mutating func advance(to t: Millis) {
        while position < recording.lines.count, recording.lines[position].at <= t { step() }
    }
}

/// The replay dashboard's clock over a `Replayer`: position, speed, pause, seeking. No wall
/// clock inside: the loop tells it how much real time passed.
///
/// Seeking backwards restarts from the nearest checkpoint — a copy of the model (a value type)
/// taken every `checkpointEveryMs` of session time the first time play passes there — so a seek
/// costs at most one checkpoint interval of events, and lands on exactly the model playing
/// through would give.
public struct ReplayPlayer: Sendable {
    public private(set) var replayer: Replayer
    /// Session time shown, ms.
    public private(set) var position: Millis = 0
    public private(set) var speed: Double = 1
    public private(set) var paused = false
    public let checkpointEveryMs: Millis
    private var checkpoints: [(at: Millis, position: Int, model: Model)] = []
    public static let speeds: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]

    public init(_ recording: Recording, speed: Double = 1, checkpointEveryMs: Millis = 10_000) {
        replayer = Replayer(recording)
        markers = recording.lines.compactMap { line in
            if case .event(let e) = line, case .marker = e.event { return e.at }
            return nil
        }
        self.speed = speed
        self.checkpointEveryMs = checkpointEveryMs
        replayer.step()  // the session start, so the first frame has a header
        position = replayer.now
        checkpoints.append((position, replayer.position, replayer.model))
    }

    public var model: Model { replayer.model }
    public var duration: Millis { replayer.recording.duration }
    public var atEnd: Bool { position >= duration }
    /// Marker events' times (for `n` / `N` and the timeline), found once.
    public let markers: [Millis]

    /// Real time passed: moves the position by `wallMs × speed` unless paused; stops at the end.
    public mutating func tick(wallMs: Double) {
        guard !paused, !atEnd else { return }
        seek(to: position + Millis((wallMs * speed).rounded()))
        if atEnd { paused = true }
    }

    public mutating func togglePause() {
        if paused && atEnd { seek(to: 0) }
        paused.toggle()
    }

    public mutating func setPaused(_ p: Bool) { paused = p }

    /// ÷2 or ×2 within 0.25× … 64×.
    public mutating func changeSpeed(faster: Bool) {
        speed = faster ? min(64, speed * 2) : max(0.25, speed / 2)
    }

    /// Moves to session time `t` (clamped to the recording).
    public mutating func seek(to t: Millis) {
        let target = max(0, min(t, duration))
        if target < replayer.now {
            // Back: the latest checkpoint at or before the target, then forward.
            let cp = checkpoints.last { $0.at <= target } ?? checkpoints[0]
            replayer.restore(model: cp.model, position: cp.position)
        }
        while !replayer.atEnd, replayer.recording.lines[replayer.position].at <= target {
            replayer.step()
            let now = replayer.now
            if now >= (checkpoints.last?.at ?? 0) + checkpointEveryMs {
                checkpoints.append((now, replayer.position, replayer.model))
            }
        }
        position = target
    }

    public mutating func seek(by delta: Millis) { seek(to: position + delta) }

    public mutating func nextMarker() { if let m = markers.first(where: { $0 > position }) { seek(to: m) } }
    public mutating func previousMarker() { if let m = markers.last(where: { $0 < position - 500 }) { seek(to: m) } }
}

extension Replayer {
    /// Jumps to a state a checkpoint saved.
    mutating func restore(model: Model, position: Int) {
        self.model = model
        self.position = position
    }
}
