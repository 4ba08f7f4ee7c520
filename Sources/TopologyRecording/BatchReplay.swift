import TopologyCore

/// What `replay --batch` prints, as models: the model at each moment the live `--batch` run
/// printed a snapshot (its marks), or — for a recording without marks — every `intervalMs` of
/// session time, between `from` and `to`; then the model at the end.
///
/// It goes through the recording a segment at a time (the source keeps the last few), so an
/// hour of a busy session replays in bounded memory, and with `from` it starts at the keyframe
/// usable there instead of the beginning — the same models, as playing through gives.
public enum BatchReplay {
    /// `pace` is called before a line with the session time since the previous one (from
    /// `from` on), so a caller can sleep to replay at a speed.
    public static func run(_ source: ReplaySource, from: Millis, to: Millis, intervalMs: Millis,
                           pace: (Millis) -> Void = { _ in }, snapshot: (Model) throws -> Void) rethrows -> Model {
        var model = Model()
        var segment = 0
        let k = source.restartSegment(for: from)
        if k > 0, let m = source.keyframeModel(k) {
            model = m
            segment = k
        }
        let marks = source.hasSnapshotMarks
        var nextSnapshot = from + intervalMs
        var lastAt: Millis = 0
        while segment < source.availableSegments {
            for line in source.segment(segment).lines {
                if line.at > to { return model }
                if !marks {
                    // Snapshots at fixed session times: the model as it stood at each boundary.
                    while line.at > nextSnapshot && nextSnapshot <= to {
                        if nextSnapshot > from { try snapshot(model) }
                        nextSnapshot += intervalMs
                    }
                }
                if line.at > lastAt, line.at >= from { pace(line.at - max(lastAt, from)) }
                lastAt = line.at
                switch line {
                case .event(let e): _ = model.apply(e)
                case .snapshot(let t): if marks, t >= from { try snapshot(model) }
                }
            }
            segment += 1
        }
        return model
    }
}
