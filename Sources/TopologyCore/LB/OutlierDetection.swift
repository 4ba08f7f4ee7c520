/// gRFC A50's settings for `outlier_detection`, with its defaults. Times in milliseconds;
/// percentages 0–100; `stdevFactor` in thousandths (1900 = 1.9), as the proto carries them.
public struct OutlierDetectionConfig: Sendable, Codable, Equatable {
    public var intervalMs: Millis = 10_000
    public var baseEjectionTimeMs: Millis = 30_000
    /// Defaults to 300 s, or the base ejection time when that is larger.
    public var maxEjectionTimeMs: Millis = 300_000
    public var maxEjectionPercent = 10

    public struct SuccessRate: Sendable, Codable, Equatable {
        public var stdevFactor = 1900
        public var enforcementPercentage = 100
        public var minimumHosts = 5
        public var requestVolume = 100
        public init() {}
    }

    public struct FailurePercentage: Sendable, Codable, Equatable {
        public var threshold = 85
        public var enforcementPercentage = 100
        public var minimumHosts = 5
        public var requestVolume = 50
        public init() {}
    }

    /// Either unset: that algorithm does not run; both unset: nothing is counted or ejected.
    public var successRate: SuccessRate?
    public var failurePercentage: FailurePercentage?

    public init() {}

    /// Why a configuration cannot be used (A50's validation), or nil.
    public var problem: String? {
        if intervalMs <= 0 { return "interval must be more than 0" }
        if baseEjectionTimeMs < 0 || maxEjectionTimeMs < 0 { return "ejection times must not be negative" }
        if !(0...100).contains(maxEjectionPercent) { return "max ejection percent \(maxEjectionPercent) is out of range (0-100)" }
        if let s = successRate {
            if !(0...100).contains(s.enforcementPercentage) { return "success-rate enforcement \(s.enforcementPercentage) is out of range (0-100)" }
            if s.stdevFactor < 0 || s.minimumHosts < 0 || s.requestVolume < 0 { return "success-rate settings must not be negative" }
        }
        if let f = failurePercentage {
            if !(0...100).contains(f.threshold) { return "failure-percentage threshold \(f.threshold) is out of range (0-100)" }
            if !(0...100).contains(f.enforcementPercentage) { return "failure-percentage enforcement \(f.enforcementPercentage) is out of range (0-100)" }
            if f.minimumHosts < 0 || f.requestVolume < 0 { return "failure-percentage settings must not be negative" }
        }
        return nil
    }
}

/// gRFC A50's `outlier_detection` policy: a parent of one child policy (round_robin, …). Every
/// `interval` it looks at each address's calls since the last sweep (successes and failures, from
/// the subchannel's counters — A50's two-bucket call counter), runs the success-rate and the
/// failure-percentage algorithms, and ejects outliers: the child then sees their subchannels in
/// TRANSIENT_FAILURE and picks around them, while the connections stay up. An ejected address
/// comes back after `base ejection time × multiplier` (at most max(base, max ejection time)); each
/// ejection raises its multiplier, each sweep it spends un-ejected lowers it. At most
/// `max ejection percent` of the addresses are ejected (but one may always be, unless it is 0;
/// A50 writes "greater than", which would let 2 of 10 out under 10 %: here the maximum is a
/// maximum).
///
/// Pure, as every policy: the time is the table's, the enforcement draw is a seeded generator
/// kept in the policy (a replay decides the same).
public struct OutlierDetection: LoadBalancingPolicy {
    public static let name = "outlier_detection_experimental"
    public var config = OutlierDetectionConfig()
    public var child: AnyPolicy = AnyPolicy(RoundRobin())

    /// What A50 keeps per address, and what the view shows of it.
    public struct AddressState: Sendable, Codable, Equatable {
        /// When the current ejection began; nil while not ejected.
        public var ejectedAt: Millis?
        public var multiplier = 0
        /// The rule and numbers behind the current (or last) ejection.
        public var why: String?
        /// The last complete interval's calls.
        public var lastSucceeded = 0
        public var lastFailed = 0
        /// The subchannel counters at the last sweep (the interval's start).
        var baselineID: SubchannelID?
        var baselineSucceeded = 0
        var baselineFailed = 0
        public var ejections = 0
        /// When the ejection ends (nil while not ejected).
        public var ejectedUntil: Millis?
    }

    public private(set) var addresses: [EndpointKey: AddressState] = [:]
    /// When the current interval began (nil until the first tick).
    public private(set) var intervalStart: Millis?
    /// Subchannels shown to the child as TRANSIENT_FAILURE, with their real state.
    private var hidden: [SubchannelID: ConnectivityState] = [:]
    private var random: UInt64 = 0x5EED_0D

    public init() {}
    public init(config: OutlierDetectionConfig, child: AnyPolicy) {
        self.config = config
        self.child = child
    }

    var counting: Bool { config.successRate != nil || config.failurePercentage != nil }

    // MARK: - the policy

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {
        let keys = Set(endpoints.map(\.key))
        for k in addresses.keys where !keys.contains(k) { addresses[k] = nil }
        for k in keys where addresses[k] == nil { addresses[k] = AddressState() }
        child.update(endpoints: endpoints, table: &table)
        // A subchannel made (or adopted) for an address that is ejected is hidden at once.
        for (key, a) in addresses where a.ejectedAt != nil {
            if let id = table.live(for: key), hidden[id] == nil, child.owns(id) { hide(id, table: &table) }
        }
    }

    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        if hidden[id] != nil {
            // Ejected: the child keeps seeing TRANSIENT_FAILURE; the real state is kept for later.
            if to == .shutdown {
                hidden[id] = nil
                child.subchannelChanged(id, from: .transientFailure, to: .shutdown, table: &table)
            } else {
                hidden[id] = to
            }
            return
        }
        child.subchannelChanged(id, from: from, to: to, table: &table)
    }

    public func owns(_ id: SubchannelID) -> Bool { child.owns(id) }

    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for id in hidden.keys.sorted() { unhide(id, table: &table) }
        child.shutDownAll(why: why, table: &table)
    }

    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState { child.state(previous: previous, table: table) }
    public func pickNode(table: SubchannelTable) -> any PickNode { child.pickNode(table: table) }

    public mutating func tick(table: inout SubchannelTable) {
        child.tick(table: &table)
        guard counting else {
            intervalStart = nil
            return
        }
        let now = table.now
        guard let start = intervalStart else {
            intervalStart = now
            for key in addresses.keys { _ = rebase(key, table: table) }
            return
        }
        guard now - start >= config.intervalMs else { return }
        intervalStart = now
        sweep(now: now, table: &table)
    }

    // MARK: - A50's timer

    /// The counters since the last sweep become the interval's; a new interval starts.
    private mutating func rebase(_ key: EndpointKey, table: SubchannelTable) -> (ok: Int, failed: Int) {
        guard var a = addresses[key] else { return (0, 0) }
        var ok = 0, failed = 0
        if let id = table.live(for: key), let t = table.record(id)?.traffic.total {
            if a.baselineID == id {
                ok = max(0, t.succeeded - a.baselineSucceeded)
                failed = max(0, t.failed - a.baselineFailed)
            } else {
                // A new subchannel for the address: its counters started at 0.
                ok = t.succeeded
                failed = t.failed
            }
            a.baselineID = id
            a.baselineSucceeded = t.succeeded
            a.baselineFailed = t.failed
        } else {
            a.baselineID = nil
        }
        a.lastSucceeded = ok
        a.lastFailed = failed
        addresses[key] = a
        return (ok, failed)
    }

    mutating func sweep(now: Millis, table: inout SubchannelTable) {
        let keys = addresses.keys.sorted()
        var counts: [EndpointKey: (ok: Int, failed: Int)] = [:]
        for k in keys { counts[k] = rebase(k, table: table) }
        if let s = config.successRate { successRate(s, keys: keys, counts: counts, now: now, table: &table) }
        if let f = config.failurePercentage { failurePercentage(f, keys: keys, counts: counts, now: now, table: &table) }
        for k in keys {
            guard var a = addresses[k] else { continue }
            if let at = a.ejectedAt {
                if now >= at + ejectionTime(multiplier: a.multiplier) { uneject(k, table: &table); continue }
            } else if a.multiplier > 0 {
                a.multiplier -= 1
                addresses[k] = a
            }
        }
    }

    func ejectionTime(multiplier: Int) -> Millis {
        min(config.baseEjectionTimeMs * Millis(multiplier), max(config.baseEjectionTimeMs, config.maxEjectionTimeMs))
    }

    private var ejectedPercent: Double {
        addresses.isEmpty ? 0 : Double(addresses.values.filter { $0.ejectedAt != nil }.count) * 100 / Double(addresses.count)
    }

    private mutating func successRate(_ s: OutlierDetectionConfig.SuccessRate, keys: [EndpointKey], counts: [EndpointKey: (ok: Int, failed: Int)],
                                      now: Millis, table: inout SubchannelTable) {
        let volume = keys.filter { k in (counts[k].map { $0.ok + $0.failed } ?? 0) >= s.requestVolume }
        guard volume.count >= s.minimumHosts, !volume.isEmpty else { return }
        let rates = volume.map { k -> Double in let c = counts[k]!; return Double(c.ok) / Double(c.ok + c.failed) }
        let mean = rates.reduce(0, +) / Double(rates.count)
        let variance = rates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rates.count)
        let stdev = variance.squareRoot()
        let threshold = mean - stdev * Double(s.stdevFactor) / 1000
        for (k, rate) in zip(volume, rates) {
            if ejectedPercent >= Double(config.maxEjectionPercent) { return }
            guard addresses[k]?.ejectedAt == nil, rate < threshold else { continue }
            guard draw() < s.enforcementPercentage else { continue }
            eject(k, why: "success rate \(pct(rate)) < threshold \(pct(threshold)) (mean \(pct(mean)), stdev \(pct(stdev)))", now: now, table: &table)
        }
    }

    private mutating func failurePercentage(_ f: OutlierDetectionConfig.FailurePercentage, keys: [EndpointKey], counts: [EndpointKey: (ok: Int, failed: Int)],
                                            now: Millis, table: inout SubchannelTable) {
        guard keys.count >= f.minimumHosts else { return }
        for k in keys {
            if ejectedPercent >= Double(config.maxEjectionPercent) { return }
            let c = counts[k] ?? (0, 0)
            let total = c.ok + c.failed
            guard addresses[k]?.ejectedAt == nil, total >= f.requestVolume, total > 0 else { continue }
            let failure = Double(c.failed) * 100 / Double(total)
            guard failure > Double(f.threshold) else { continue }
            guard draw() < f.enforcementPercentage else { continue }
            eject(k, why: "failures \(Int(failure.rounded()))% > threshold \(f.threshold)% (\(c.failed) of \(total))", now: now, table: &table)
        }
    }

    private func pct(_ x: Double) -> String { "\(Int((x * 100).rounded()))%" }

    /// A random integer in [0, 100).
    private mutating func draw() -> Int {
        var g = SeededGenerator(seed: random)
        let v = Int(g.next() % 100)
        random = g.next()
        return v
    }

    // MARK: - ejection

    private mutating func eject(_ key: EndpointKey, why: String, now: Millis, table: inout SubchannelTable) {
        guard var a = addresses[key] else { return }
        a.ejectedAt = now
        a.multiplier += 1
        a.ejections += 1
        a.why = why
        a.ejectedUntil = now + ejectionTime(multiplier: a.multiplier)
        addresses[key] = a
        let name = table.live(for: key).map { table.name(of: $0) } ?? key.description
        table.logLines.append((.warning, "outlier detection: \(name) ejected for \(formatDuration(a.ejectedUntil! - now)) (×\(a.multiplier)): \(why)"))
        if let id = table.live(for: key), child.owns(id) { hide(id, table: &table) }
        table.changed = true
    }

    private mutating func uneject(_ key: EndpointKey, table: inout SubchannelTable) {
        guard var a = addresses[key], let at = a.ejectedAt else { return }
        a.ejectedAt = nil
        a.ejectedUntil = nil
        addresses[key] = a
        let name = table.live(for: key).map { table.name(of: $0) } ?? key.description
        table.logLines.append((.info, "outlier detection: \(name) back after \(formatDuration(table.now - at)) (multiplier \(a.multiplier))"))
        if let id = table.live(for: key), hidden[id] != nil { unhide(id, table: &table) }
        table.changed = true
    }

    private mutating func hide(_ id: SubchannelID, table: inout SubchannelTable) {
        let real = table.state(of: id) ?? .idle
        hidden[id] = real
        if real != .transientFailure { child.subchannelChanged(id, from: real, to: .transientFailure, table: &table) }
    }

    private mutating func unhide(_ id: SubchannelID, table: inout SubchannelTable) {
        guard let real = hidden.removeValue(forKey: id) else { return }
        if real != .transientFailure { child.subchannelChanged(id, from: .transientFailure, to: real, table: &table) }
    }

    /// Whether the address's subchannel is ejected (shown to the child as TRANSIENT_FAILURE).
    public func isEjected(_ id: SubchannelID) -> Bool { hidden[id] != nil }

    // MARK: - the view

    public func describe(table: SubchannelTable) -> PolicyDescription {
        let ejected = addresses.values.filter { $0.ejectedAt != nil }.count
        var d = PolicyDescription(name: Self.name, state: state(previous: .idle, table: table),
                                  note: "\(ejected) of \(addresses.count) ejected (at most \(config.maxEjectionPercent)%), sweep every \(formatDuration(config.intervalMs))")
        d.children = [child.describe(table: table)]
        return d
    }
}
