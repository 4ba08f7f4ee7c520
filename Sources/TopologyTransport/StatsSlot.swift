import TopologyCore

/// The statistics collector's counters for one subchannel or one backend over the current tick.
///
/// Recording an outcome is O(1) and allocation-free in the steady state: a few integer adds and
/// an append of the latency to an array whose capacity is kept between ticks. At each tick
/// (`take`) latencies are quantised to the histogram's 2-significant-digit buckets and
/// run-length encoded into the tick's `LatencySample`.
public final class StatsSlot: @unchecked Sendable {
    public private(set) var started = 0
    public private(set) var succeeded = 0
    public private(set) var failed = 0
    private var codes: [Int: Int] = [:]
    public private(set) var messagesSent = 0
    public private(set) var messagesReceived = 0
    private var latencies: [UInt32] = []

    public init() { latencies.reserveCapacity(64) }

    public var isDirty: Bool { started != 0 || succeeded != 0 || failed != 0 || messagesReceived != 0 }

    @inline(__always)
    public func recordStarted() {
        started &+= 1
        messagesSent &+= 1
    }

    /// Records a finished RPC: grpc-status `code`, latency in microseconds.
    @inline(__always)
    public func recordFinished(code: Int, micros: UInt64, messages: Int) {
        if code == 0 {
            succeeded &+= 1
        } else {
            failed &+= 1
            codes[code, default: 0] &+= 1
        }
        messagesReceived &+= messages
        latencies.append(UInt32(truncatingIfNeeded: min(micros, UInt64(UInt32.max))))
    }

    /// Returns the delta since the last call and starts a new one.
    public func take() -> RPCDelta {
        var d = RPCDelta()
        d.started = started
        d.succeeded = succeeded
        d.failed = failed
        d.codes = codes
        d.messagesSent = messagesSent
        d.messagesReceived = messagesReceived
        d.latency = Self.quantise(&latencies)
        started = 0
        succeeded = 0
        failed = 0
        if !codes.isEmpty { codes.removeAll(keepingCapacity: true) }
        messagesSent = 0
        messagesReceived = 0
        return d
    }

    /// The same bucketing `LatencyHistogram` uses, so a tick's sample adds into it exactly.
    static let reference = LatencyHistogram()

    static func quantise(_ values: inout [UInt32]) -> LatencySample {
        var sample = LatencySample()
        guard !values.isEmpty else { return sample }
        let h = reference
        for i in values.indices {
            values[i] = UInt32(truncatingIfNeeded: h.bucketFloor(UInt64(values[i])))
        }
        values.sort()
        var current = values[0]
        var count: UInt32 = 0
        for v in values {
            if v == current {
                count += 1
            } else {
                sample.values.append(UInt64(current))
                sample.counts.append(count)
                current = v
                count = 1
            }
        }
        sample.values.append(UInt64(current))
        sample.counts.append(count)
        values.removeAll(keepingCapacity: true)
        return sample
    }
}
