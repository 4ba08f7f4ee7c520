import TopologyCore

/// Rebuilds the model from a recording: the same `Model.apply` over the same events, with the
/// effects dropped (nothing connects during a replay).
public struct Replayer: Sendable {
    public let recording: Recording
    public private(set) var model = Model()
    /// Index of the next line to apply.
    public private(set) var position = 0

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

    /// Starts over (seeking backwards).
    public mutating func rewind() {
        model = Model()
        position = 0
    }
}
