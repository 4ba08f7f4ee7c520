import Histogram

/// RPC outcomes over one collector tick, for one subchannel or one backend.
public struct RPCDelta: Sendable, Codable, Equatable {
    public var started: Int = 0
    public var succeeded: Int = 0
    public var failed: Int = 0
    /// Failures by grpc-status code.
    public var codes: [Int: Int] = [:]
    public var messagesSent: Int = 0
    public var messagesReceived: Int = 0
    /// Completed-RPC latencies in microseconds, as sparse (value, count) pairs.
    public var latency: LatencySample = LatencySample()

    public init() {}

    public var completed: Int { succeeded + failed }
    public var isEmpty: Bool { started == 0 && completed == 0 && messagesSent == 0 && messagesReceived == 0 }

    public mutating func add(_ o: RPCDelta) {
        addCounts(o)
        latency.values += o.latency.values
        latency.counts += o.latency.counts
    }

    /// Adds everything but the latency samples. Saturating: counters read from a file are
    /// range-checked (`problem`), but a session of many ticks must not trap either.
    public mutating func addCounts(_ o: RPCDelta) {
        started = started.addingSaturated(o.started)
        succeeded = succeeded.addingSaturated(o.succeeded)
        failed = failed.addingSaturated(o.failed)
        for (c, n) in o.codes { codes[c] = (codes[c] ?? 0).addingSaturated(n) }
        messagesSent = messagesSent.addingSaturated(o.messagesSent)
        messagesReceived = messagesReceived.addingSaturated(o.messagesReceived)
    }

    /// The most any counter of one tick may hold (a trillion: no client completes that many
    /// RPCs in 250 ms, and a session of such ticks stays far from Int's limit).
    public static let maxCount = 1 << 40

    /// What is wrong with a delta read from outside (a recording), or nil: every counter and
    /// per-code count in 0…`maxCount`, status codes in -1…255 (-1: UNFINISHED).
    public var problem: String? {
        let range = 0...Self.maxCount
        for (name, v) in [("started", started), ("succeeded", succeeded), ("failed", failed), ("messages sent", messagesSent), ("messages received", messagesReceived)]
        where !range.contains(v) {
            return "\(name) is \(v) (a counter is 0 to \(Self.maxCount))"
        }
        for (c, n) in codes {
            if !(-1...255).contains(c) { return "status code \(c) is not one (0-255)" }
            if !range.contains(n) { return "the count of status \(c) is \(n) (a counter is 0 to \(Self.maxCount))" }
        }
        return nil
    }
}

extension Int {
    /// `self + other`, held at Int.min/Int.max instead of trapping.
    @inlinable func addingSaturated(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}

/// Sparse latency observations: parallel arrays of microsecond values and counts.
public struct LatencySample: Sendable, Codable, Equatable {
    public var values: [UInt64] = []
    public var counts: [UInt32] = []
    public init() {}
    public init(_ histogram: Histogram<UInt32>) {
        for v in histogram.recordedValues() where v.count > 0 {
            values.append(histogram.lowestEquivalentForValue(v.value))
            counts.append(v.count)
        }
    }
    public var isEmpty: Bool { values.isEmpty }
}

/// Per-subchannel part of a tick: gauges as they are now, and the delta since the last tick.
public struct SubchannelTick: Sendable, Codable, Equatable {
    public var id: SubchannelID
    public var activeStreams: Int
    public var queued: Int
    public var delta: RPCDelta
    public init(id: SubchannelID, activeStreams: Int, queued: Int, delta: RPCDelta) {
        self.id = id
        self.activeStreams = activeStreams
        self.queued = queued
        self.delta = delta
    }
}

public struct BackendTick: Sendable, Codable, Equatable {
    public var name: String
    public var delta: RPCDelta
    public init(name: String, delta: RPCDelta) {
        self.name = name
        self.delta = delta
    }
}

/// The collector's periodic report. Only subchannels and backends with something to say appear.
public struct StatsTick: Sendable, Codable, Equatable {
    public var subchannels: [SubchannelTick]
    public var backends: [BackendTick]
    /// RPCs that never reached a subchannel (no READY subchannel, deadline while waiting for a pick).
    public var unassigned: RPCDelta
    /// RPCs waiting for a pick at the channel level.
    public var channelQueued: Int

    public init(subchannels: [SubchannelTick] = [], backends: [BackendTick] = [], unassigned: RPCDelta = RPCDelta(), channelQueued: Int = 0) {
        self.subchannels = subchannels
        self.backends = backends
        self.unassigned = unassigned
        self.channelQueued = channelQueued
    }
}

/// A latency histogram in microseconds (HdrHistogram, 2 significant digits, 1 µs … 1 h).
///
/// The counts (a few thousand buckets) are allocated on the first record: a subchannel or
/// backend that never completes an RPC costs nothing, so a 500-record DNS answer creates its 500
/// subchannels in ~1 ms instead of ~10 ms.
public struct LatencyHistogram: Sendable, Codable {
    @usableFromInline static let empty = Histogram<UInt32>(
        lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .two)
    @usableFromInline var stored: Histogram<UInt32>?

    public init() {}

    @usableFromInline var histogram: Histogram<UInt32> { stored ?? Self.empty }

    /// Records one latency. O(1) (the first one allocates the counts).
    @inlinable
    public mutating func record(micros: UInt64) {
        if stored == nil { stored = Self.empty }
        _ = stored!.record(max(1, min(micros, 3_600_000_000)))
    }

    public mutating func add(_ sample: LatencySample) {
        guard !sample.values.isEmpty else { return }
        if stored == nil { stored = Self.empty }
        // zip: a sample read from a damaged recording may have fewer counts than values.
        for (value, count) in zip(sample.values, sample.counts) {
            _ = stored!.record(max(1, min(value, 3_600_000_000)), count: count)
        }
    }

    public var count: UInt64 { histogram.totalCount }

    /// The value HdrHistogram reports for a bucket (its highest equivalent value).
    public func bucketTop(_ micros: UInt64) -> UInt64 {
        histogram.highestEquivalentForValue(max(1, min(micros, 3_600_000_000)))
    }

    /// The lowest value of the bucket `micros` falls in (what the histogram would store).
    public func bucketFloor(_ micros: UInt64) -> UInt64 {
        histogram.lowestEquivalentForValue(max(1, min(micros, 3_600_000_000)))
    }

    /// The value at a percentile (0…100), in microseconds; nil when empty.
    public func percentile(_ p: Double) -> UInt64? {
        histogram.totalCount == 0 ? nil : histogram.valueAtPercentile(p)
    }

    public var sample: LatencySample { LatencySample(histogram) }

    /// In a keyframe: the sparse (value, count) pairs, which rebuild the same buckets.
    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(LatencySample.self)
        add(s)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(keyframeSample)
    }

    /// The (value, count) pairs that rebuild the same buckets: the lowest bucket's value is the
    /// exact minimum and the highest's the exact maximum (a bucket holding both is split), so
    /// the rebuilt histogram reports the same extremes.
    var keyframeSample: LatencySample {
        var s = sample
        if let last = s.values.indices.last {
            let h = histogram
            s.values[0] = h.min
            if last > 0 {
                s.values[last] = h.maxRecorded
            } else if h.maxRecorded != h.min, s.counts[0] > 1 {
                s.counts[0] -= 1
                s.values.append(h.maxRecorded)
                s.counts.append(1)
            }
        }
        return s
    }

    public mutating func reset() { stored = nil }

    /// (upper bound µs, count) buckets on a log₂ scale, for the details view.
    public func log2Buckets() -> [(upTo: UInt64, count: UInt64)] {
        guard histogram.totalCount > 0 else { return [] }
        var out: [(UInt64, UInt64)] = []
        var bound: UInt64 = 128
        var acc: UInt64 = 0
        for v in histogram.recordedValues() where v.count > 0 {
            while v.value > bound {
                out.append((bound, acc))
                acc = 0
                bound *= 2
            }
            acc += UInt64(v.count)
        }
        out.append((bound, acc))
        while let first = out.first, first.1 == 0 { out.removeFirst() }
        return out
    }
}

/// Traffic of one subchannel or backend as the model keeps it: totals, a ring of the last 60 s of
/// ticks (rates and sparkline), the whole-session latency histogram and the last 10 s of samples.
public struct TrafficSeries: Sendable, Codable {
    public static let ringTicks = 240  // 60 s at 250 ms
    /// Ticks of latency samples kept for the recent percentiles (10 s at 250 ms).
    public static let recentTicks = 40
    public var total = RPCDelta.Totals()
    /// Completed RPCs per tick, newest last; failed RPCs per tick in `failedRing`.
    public private(set) var completedRing: [UInt32] = []
    public private(set) var failedRing: [UInt32] = []
    public private(set) var latency = LatencyHistogram()
    private var recent: [LatencySample] = []
    public var lastActivity: Millis?

    public init() {}

    /// Adds one tick's delta (possibly empty: time passes for the rates too).
    /// Completed RPCs over the last 4, 40 and 240 ticks, kept as ticks arrive (1 s, 10 s and
    /// 60 s at the 250 ms tick), so rates and fairness cost O(1) per backend.
    private var window4 = 0, window40 = 0, window240 = 0

    public mutating func apply(_ d: RPCDelta?, at: Millis) {
        let d = d ?? RPCDelta()
        total.add(d)
        let c = UInt32(clamping: d.completed)
        completedRing.append(c)
        failedRing.append(UInt32(clamping: d.failed))
        let n = completedRing.count
        window4 += Int(c)
        window40 += Int(c)
        window240 += Int(c)
        if n > 4 { window4 -= Int(completedRing[n - 5]) }
        if n > 40 { window40 -= Int(completedRing[n - 41]) }
        if n > 240 { window240 -= Int(completedRing[n - 241]) }
        // Trim in chunks so the ring is not shifted on every tick.
        if completedRing.count > Self.ringTicks * 2 {
            completedRing.removeFirst(completedRing.count - Self.ringTicks)
            failedRing.removeFirst(failedRing.count - Self.ringTicks)
        }
        if !d.latency.isEmpty { latency.add(d.latency) }
        recent.append(d.latency)
        if recent.count > Self.recentTicks { recent.removeFirst(recent.count - Self.recentTicks) }
        if d.completed > 0 || d.started > 0 { lastActivity = at }
    }

    /// Adds latencies to the session histogram only (not to the last 10 s).
    public mutating func addSessionLatency(_ sample: LatencySample) {
        if !sample.isEmpty { latency.add(sample) }
    }

    /// Completed RPCs per second over the last `seconds` (1, 10 or 60).
    public func rate(seconds: Int, tickMs: Int) -> Double {
        let ticks = max(1, seconds * 1000 / max(1, tickMs))
        let n = min(ticks, completedRing.count)
        guard n > 0 else { return 0 }
        return Double(sum(lastTicks: ticks)) / (Double(n) * Double(tickMs) / 1000)
    }

    private func sum(lastTicks ticks: Int) -> Int {
        switch ticks {
        case 4: return window4
        case 40: return window40
        case 240: return window240
        default: return completedRing.suffix(min(ticks, Self.ringTicks)).reduce(0) { $0 + Int($1) }
        }
    }

    public func errorRate(seconds: Int, tickMs: Int) -> Double {
        let ticks = max(1, seconds * 1000 / max(1, tickMs))
        let n = min(ticks, failedRing.count)
        guard n > 0 else { return 0 }
        let sum = failedRing.suffix(n).reduce(0) { $0 + Int($1) }
        return Double(sum) / (Double(n) * Double(tickMs) / 1000)
    }

    /// Completed RPCs in the last `seconds`.
    public func completed(lastSeconds seconds: Int, tickMs: Int) -> Int {
        sum(lastTicks: max(1, seconds * 1000 / max(1, tickMs)))
    }

    /// RPCs per second for each of the last 60 seconds, oldest first (sparklines).
    public func perSecond(tickMs: Int) -> [Double] {
        let per = max(1, 1000 / max(1, tickMs))
        var out: [Double] = []
        var i = completedRing.count
        while i > max(0, completedRing.count - Self.ringTicks) && out.count < 60 {
            let lo = max(0, i - per)
            out.append(Double(completedRing[lo..<i].reduce(0) { $0 + Int($1) }) * Double(per) / Double(i - lo))
            i = lo
        }
        return out.reversed()
    }

    /// The busiest second of the last minute (RPCs per second), without allocating.
    public func peakPerSecond(tickMs: Int) -> Double {
        let per = max(1, 1000 / max(1, tickMs))
        var peak = 0
        var i = completedRing.count
        let floor = max(0, completedRing.count - Self.ringTicks)
        while i > floor {
            let lo = max(0, i - per)
            var sum = 0
            for j in lo..<i { sum += Int(completedRing[j]) }
            peak = max(peak, sum * per / (i - lo))
            i = lo
        }
        return Double(peak)
    }

    // In a keyframe a series is one string of comma-separated integers: a keyframe holds a few
    // hundred series, and JSONDecoder reads one string token far faster than hundreds of numbers
    // in nested containers (a keyframe of 100 busy endpoints: ~50 → 11 ms); the digits are
    // then read by a byte scan. The layout (first number: its version, 1):
    //
    //   1, started, succeeded, failed, sent, received, #codes, (code, n)…, has-last-activity (0/1),
    //   [last activity ms], window 1 s, window 10 s, window 60 s, #ring, completed ring…,
    //   has-failures (0/1), [failure ring…], #latency pairs, (Δvalue, count)…
    //
    // It keeps the last `ringTicks` of the rings (all any reader looks at: rates, sums and
    // sparklines index from the end) and leaves out an all-zero failure ring, and the last
    // `recentTicks` latency samples: they were ¾ of a keyframe, and the stats lines before it
    // hold them. A series read back gets one sample per stats tick like any other, so after
    // `recentTicks` ticks it holds the same samples as the live one (a recording's index says
    // from when on a keyframe may be used). Format 2 keyframes (a keyed object, with the
    // samples) are still read.
    private enum Keys: String, CodingKey { case total, c, f, latency, recent, at, w }

    public init(from decoder: Decoder) throws {
        if let compact = try? decoder.singleValueContainer().decode(String.self) {
            guard let s = TrafficSeries(compact: compact) else {
                throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: decoder.codingPath, debugDescription: "a damaged traffic series"))
            }
            self = s
            return
        }
        let k = try decoder.container(keyedBy: Keys.self)
        total = try k.decode(RPCDelta.Totals.self, forKey: .total)
        completedRing = try k.decode([UInt32].self, forKey: .c)
        failedRing = try k.decodeIfPresent([UInt32].self, forKey: .f) ?? Array(repeating: 0, count: completedRing.count)
        guard failedRing.count == completedRing.count else {
            throw DecodingError.dataCorruptedError(forKey: .f, in: k, debugDescription: "the failure ring's length differs from the completion ring's")
        }
        latency = try k.decode(LatencyHistogram.self, forKey: .latency)
        recent = try k.decodeIfPresent([LatencySample].self, forKey: .recent) ?? []
        lastActivity = try k.decodeIfPresent(Millis.self, forKey: .at)
        let w = try k.decode([Int].self, forKey: .w)
        guard w.count == 3 else { throw DecodingError.dataCorruptedError(forKey: .w, in: k, debugDescription: "expected 3 window sums") }
        (window4, window40, window240) = (w[0], w[1], w[2])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(compact)
    }

    /// The keyframe string (see above).
    public var compact: String {
        var out = "1"
        out.reserveCapacity(2048)
        func put(_ v: Int) {
            out.append(",")
            out.append(String(v))
        }
        for v in [total.started, total.succeeded, total.failed, total.messagesSent, total.messagesReceived] { put(v) }
        put(total.codes.count)
        for (code, n) in total.codes.sorted(by: { $0.key < $1.key }) {
            put(code)
            put(n)
        }
        if let at = lastActivity {
            put(1)
            put(Int(at))
        } else {
            put(0)
        }
        for v in [window4, window40, window240] { put(v) }
        let ring = completedRing.suffix(Self.ringTicks)
        put(ring.count)
        for v in ring { put(Int(v)) }
        let failed = failedRing.suffix(Self.ringTicks)
        if failed.contains(where: { $0 != 0 }) {
            put(1)
            for v in failed { put(Int(v)) }
        } else {
            put(0)
        }
        let sample = latency.keyframeSample
        put(sample.values.count)
        var previous: UInt64 = 0
        for (v, n) in zip(sample.values, sample.counts) {
            put(Int(truncatingIfNeeded: v &- previous))
            put(Int(n))
            previous = v
        }
        return out
    }

    /// Reads the keyframe string; nil when it is damaged.
    public init?(compact: String) {
        var text = compact
        let parsed: TrafficSeries? = text.withUTF8 { bytes -> TrafficSeries? in
            var i = 0
            func next() -> Int? {
                guard i < bytes.count else { return nil }
                if i > 0 {
                    guard bytes[i] == UInt8(ascii: ",") else { return nil }
                    i += 1
                }
                let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
                if negative { i += 1 }
                let start = i
                var v = 0
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                    v = v &* 10 &+ Int(bytes[i] - 0x30)
                    i += 1
                }
                guard i > start, i - start <= 18 else { return nil }
                return negative ? -v : v
            }
            func count(_ limit: Int) -> Int? {
                guard let n = next(), n >= 0, n <= limit else { return nil }
                return n
            }
            func u32() -> UInt32? {
                guard let v = next(), v >= 0, v <= Int(UInt32.max) else { return nil }
                return UInt32(v)
            }
            guard next() == 1 else { return nil }
            var s = TrafficSeries()
            guard let a = next(), let b = next(), let c = next(), let d = next(), let e = next() else { return nil }
            (s.total.started, s.total.succeeded, s.total.failed, s.total.messagesSent, s.total.messagesReceived) = (a, b, c, d, e)
            guard let codes = count(1024) else { return nil }
            for _ in 0..<codes {
                guard let code = next(), let n = next() else { return nil }
                s.total.codes[code] = n
            }
            guard let hasAt = count(1) else { return nil }
            if hasAt == 1 {
                guard let at = next() else { return nil }
                s.lastActivity = Millis(at)
            }
            guard let w4 = next(), let w40 = next(), let w240 = next() else { return nil }
            (s.window4, s.window40, s.window240) = (w4, w40, w240)
            guard let ringCount = count(Self.ringTicks * 2) else { return nil }
            s.completedRing.reserveCapacity(ringCount)
            for _ in 0..<ringCount {
                guard let v = u32() else { return nil }
                s.completedRing.append(v)
            }
            guard let hasFailed = count(1) else { return nil }
            if hasFailed == 1 {
                s.failedRing.reserveCapacity(ringCount)
                for _ in 0..<ringCount {
                    guard let v = u32() else { return nil }
                    s.failedRing.append(v)
                }
            } else {
                s.failedRing = Array(repeating: 0, count: ringCount)
            }
            guard let pairs = count(1 << 20) else { return nil }
            var sample = LatencySample()
            sample.values.reserveCapacity(pairs)
            sample.counts.reserveCapacity(pairs)
            var value: UInt64 = 0
            for _ in 0..<pairs {
                guard let step = next(), step >= 0, let n = u32() else { return nil }
                let (sum, overflow) = value.addingReportingOverflow(UInt64(step))
                guard !overflow else { return nil }
                value = sum
                sample.values.append(value)
                sample.counts.append(n)
            }
            guard i == bytes.count else { return nil }
            s.latency.add(sample)
            return s
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Latency percentile over the last 10 s, microseconds: the samples are already in the
    /// histogram's buckets, so merging their (value, count) pairs gives the same answer as a
    /// histogram would, without allocating one per row and frame.
    public func recentPercentile(_ p: Double) -> UInt64? {
        var pairs: [(UInt64, UInt64)] = []
        var total: UInt64 = 0
        for s in recent where !s.isEmpty {
            for (value, count) in zip(s.values, s.counts) {
                pairs.append((value, UInt64(count)))
                total += UInt64(count)
            }
        }
        guard total > 0 else { return nil }
        pairs.sort { $0.0 < $1.0 }
        let lowest = pairs.first!.0, highest = pairs.last!.0
        // HdrHistogram's valueAtPercentile, step for step: 0 → min, 100 → max, otherwise the
        // top of the first bucket whose cumulative count reaches p % (p one ulp down, at least
        // 1), clamped to [min, max].
        if p <= 0 { return lowest }
        if p >= 100 { return highest }
        let target = max(1, UInt64((p.nextDown * Double(total) / 100).rounded(.up)))
        var seen: UInt64 = 0
        for (v, c) in pairs {
            seen += c
            if seen >= target { return max(min(latency.bucketTop(v), highest), lowest) }
        }
        return highest
    }
}

extension RPCDelta {
    /// Running totals (no latency arrays).
    public struct Totals: Sendable, Codable, Equatable {
        public var started = 0
        public var succeeded = 0
        public var failed = 0
        public var codes: [Int: Int] = [:]
        public var messagesSent = 0
        public var messagesReceived = 0
        public init() {}
        public var completed: Int { succeeded + failed }
        public mutating func add(_ d: RPCDelta) {
            started += d.started
            succeeded += d.succeeded
            failed += d.failed
            for (c, n) in d.codes { codes[c, default: 0] += n }
            messagesSent += d.messagesSent
            messagesReceived += d.messagesReceived
        }
    }
}

/// Jain's fairness index: (Σx)² / (n·Σx²); 1 when all equal, 1/n when one takes all.
public enum Fairness {
    public static func jain(_ xs: [Double]) -> Double? {
        guard !xs.isEmpty else { return nil }
        let sum = xs.reduce(0, +)
        let sq = xs.reduce(0) { $0 + $1 * $1 }
        guard sq > 0 else { return nil }
        return sum * sum / (Double(xs.count) * sq)
    }

    /// A word for the index: "balanced", "skewed", or "one pod takes all".
    public static func word(index: Double?, shares: [Double]) -> String {
        guard let index else { return "no traffic" }
        if shares.count > 1, let top = shares.max(), top >= 0.99 { return "one pod takes all" }
        return index >= 0.9 ? "balanced" : "skewed"
    }
}

/// gRPC status code names (grpc/grpc doc/statuscodes.md).
public enum GRPCStatusName {
    public static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]
    /// Not a gRPC status: an RPC still in flight or queued when the run ended, cancelled by
    /// grpctop. Counted as a failure (a rollout gate must not pass on RPCs that never completed).
    public static let unfinished = -1
    public static func name(_ code: Int) -> String {
        if code == unfinished { return "UNFINISHED" }
        return names.indices.contains(code) ? names[code] : "CODE_\(code)"
    }
    public static func code(_ name: String) -> Int? {
        if let n = Int(name), n >= 0 { return n }
        if name.uppercased() == "UNFINISHED" { return unfinished }
        return names.firstIndex(of: name.uppercased())
    }
}
