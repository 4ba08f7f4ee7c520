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

/// The replay dashboard's clock over a `ReplaySource`: position, speed, pause, seeking. No wall
/// clock inside: the loop tells it how much real time passed.
///
/// A seek starts from the latest restart point at or before the target — a keyframe from the
/// file, or (for a recording read whole) a copy of the model, a value type, taken every
/// `checkpointEveryMs` of session time the first time play passes there — and applies the lines
/// after it, so it costs at most one interval of events (plus 10 s) and lands on exactly the
/// model playing through would give (a keyframe is that model written down, but for the last
/// 10 s of latency samples, which the ticks after it bring back: it is a restart point only
/// from its `from` on; a test holds them to it).
public struct ReplayPlayer: Sendable {
    public let source: ReplaySource
    public private(set) var model = Model()
    /// Session time shown, ms.
    public private(set) var position: Millis = 0
    public private(set) var speed: Double = 1
    public private(set) var paused = false
    public let checkpointEveryMs: Millis
    /// The segment being played, its lines, and the next line to apply.
    private var segment = 0
    private var lines: [RecordedLine] = []
    private var next = 0
    /// Session time of the last applied line.
    private var now: Millis = 0
    private var checkpoints: [(at: Millis, segment: Int, next: Int, model: Model)] = []
    public static let speeds: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]
    /// Playing on costs less than decoding a keyframe of a busy session (about as much as
    /// applying 5 s of its ticks), unless the keyframe is further ahead than this.
    static let keyframeWorthMs: Millis = 5_000

    public init(_ source: ReplaySource, speed: Double = 1, checkpointEveryMs: Millis = 10_000) {
        self.source = source
        self.speed = speed
        self.checkpointEveryMs = checkpointEveryMs
        lines = source.segment(0).lines
        step()  // the session start, so the first frame has a header
        position = now
        checkpoints.append((now, segment, next, model))
    }

    public init(_ recording: Recording, speed: Double = 1, checkpointEveryMs: Millis = 10_000) {
        self.init(ReplaySource(recording), speed: speed, checkpointEveryMs: checkpointEveryMs)
    }

    public var duration: Millis { source.duration }
    public var atEnd: Bool { position >= duration }
    /// Marker events' times (for `n` / `N` and the timeline).
    public var markers: [Millis] { source.markers }

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
        let k = source.restartSegment(for: target)
        let cp = checkpoints.last { $0.at <= target } ?? checkpoints[0]
        let available = source.availableSegments
        var restored = false
        if k > 0 && source.segmentStarts[k] >= cp.at && (target < now || source.segmentStarts[k] > now + Self.keyframeWorthMs) {
            // A keyframe behind us, or far enough ahead that reading it beats playing on: start from it.
            if let m = source.keyframeModel(k) {
                model = m
                segment = k
                lines = source.segment(k).lines
                next = 0
                now = source.segmentStarts[k]
                restored = true
            } else if source.availableSegments < available {
                // Damaged: the recording now ends before it; start over from an earlier one
                // (there are fewer segments each time, so this ends).
                return seek(to: t)
            }
        }
        if !restored && (target < now || cp.at > now) {
            model = cp.model
            segment = cp.segment
            lines = source.segment(cp.segment).lines
            next = cp.next
            now = cp.at
        }
        while let at = nextLineAt(), at <= target {
            step()
            if !source.indexed && now >= (checkpoints.last?.at ?? 0) + checkpointEveryMs {
                checkpoints.append((now, segment, next, model))
            }
        }
        position = target
    }

    public mutating func seek(by delta: Millis) { seek(to: position + delta) }

    public mutating func nextMarker() { if let m = markers.first(where: { $0 > position }) { seek(to: m) } }
    public mutating func previousMarker() { if let m = markers.last(where: { $0 < position - 500 }) { seek(to: m) } }

    /// The time of the next line, moving to the next segment when this one is done.
    private mutating func nextLineAt() -> Millis? {
        while next >= lines.count {
            guard segment + 1 < source.availableSegments else { return nil }
            segment += 1
            lines = source.segment(segment).lines
            next = 0
        }
        return lines[next].at
    }

    private mutating func step() {
        guard nextLineAt() != nil else { return }
        let line = lines[next]
        next += 1
        if case .event(let e) = line { _ = model.apply(e) }
        now = line.at
    }
}
