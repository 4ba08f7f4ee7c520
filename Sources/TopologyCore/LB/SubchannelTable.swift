/// The channel's subchannels: one table shared by every policy of the LB tree. A policy creates,
/// connects and shuts down subchannels here; the table records them (rows the view shows),
/// collects the effects the engine carries out and the log lines the model keeps.
///
/// Live subchannels are found by endpoint key in O(1), and the number of live subchannels in each
/// state is kept as states change, so nothing scans every subchannel per event.
public struct SubchannelTable: Sendable {
    public internal(set) var records: [SubchannelID: SubchannelRecord] = [:]
    var liveByKey: [EndpointKey: SubchannelID] = [:]
    var nextID: SubchannelID = 1
    var liveCounts: [ConnectivityState: Int] = [:]
    /// Keys of every endpoint the resolver lists now, ready or not (why a subchannel goes:
    /// "endpoint not ready" or "endpoint removed").
    public internal(set) var listed = Set<EndpointKey>()
    /// gRFC A17 is on for the policies (a health-check service and not pick_first): what they
    /// see of a READY subchannel is its health (`SubchannelRecord.lbState`).
    public internal(set) var healthChecking = false

    /// Work of the event being applied: collected here, taken by the model.
    var now: Millis = 0
    var effects: [Effect] = []
    var logLines: [(level: LogEntry.Level, text: String)] = []
    /// A subchannel was created, shut down or changed state: channel state and picker are due.
    var changed = false

    public init() {}

    // MARK: - reading

    /// The live (not SHUTDOWN) subchannel of an endpoint.
    public func live(for key: EndpointKey) -> SubchannelID? { liveByKey[key] }
    /// The state the policies see (the connection's, or its health while health checking is on).
    public func state(of id: SubchannelID) -> ConnectivityState? {
        guard let r = records[id] else { return nil }
        return healthChecking ? r.lbState : r.state
    }
    public func record(_ id: SubchannelID) -> SubchannelRecord? { records[id] }
    public func name(of id: SubchannelID) -> String { records[id]?.endpoint.displayName ?? "#\(id)" }
    /// Live subchannels in the table, by id.
    public var live: [(key: EndpointKey, id: SubchannelID)] {
        liveByKey.map { (key: $0.key, id: $0.value) }.sorted { $0.id < $1.id }
    }
    public var liveCount: Int { liveCounts.values.reduce(0, +) }

    // MARK: - what policies do

    /// A new subchannel for an endpoint, IDLE; connected at once when `connect`.
    @discardableResult
    public mutating func create(_ e: Endpoint, connect: Bool) -> SubchannelID {
        let id = nextID
        nextID += 1
        records[id] = SubchannelRecord(id: id, endpoint: e, created: now)
        counted(from: nil, to: .idle)
        liveByKey[e.key] = id
        changed = true
        logLines.append((.info, "subchannel #\(id) created for \(e.displayName)"))
        effects.append(.createSubchannel(id, e))
        if connect { effects.append(.connect(id)) }
        return id
    }

    public mutating func connect(_ id: SubchannelID) { effects.append(.connect(id)) }

    /// Keeps a live subchannel's endpoint current (its condition, zone, revision…).
    public mutating func refresh(_ id: SubchannelID, endpoint: Endpoint) { records[id]?.endpoint = endpoint }

    public mutating func shutDown(_ id: SubchannelID, why: String) {
        guard var sc = records[id], sc.state != .shutdown else { return }
        counted(from: sc.state, to: .shutdown)
        sc.transition(to: .shutdown, reason: "subchannel shutdown (\(why))", at: now)
        records[id] = sc
        if liveByKey[sc.key] == id { liveByKey[sc.key] = nil }
        changed = true
        logLines.append((.info, "subchannel #\(id) \(sc.endpoint.displayName) → SHUTDOWN: \(why)"))
        effects.append(.shutDown(id))
    }

    // MARK: - what the model does

    /// Records a state change a subchannel reported; false when it changes nothing.
    mutating func transition(_ id: SubchannelID, to: ConnectivityState, reason: String?, backoffMs: Int64?) -> ConnectivityState? {
        guard var sc = records[id], sc.state != .shutdown, to != .shutdown, sc.state != to else { return nil }
        let from = sc.state
        sc.transition(to: to, reason: reason, at: now)
        if to == .transientFailure, let b = backoffMs { sc.backoffUntil = now + b }
        records[id] = sc
        counted(from: from, to: to)
        changed = true
        return from
    }

    /// SHUTDOWN rows older than `olderThan` leave the table; true when any did.
    mutating func dropShutDown(before: Millis) -> Bool {
        var dropped = false
        for (id, sc) in records where sc.state == .shutdown && sc.stateSince < before {
            records[id] = nil
            dropped = true
        }
        return dropped
    }

    private mutating func counted(from: ConnectivityState?, to: ConnectivityState) {
        if let from, from != .shutdown { liveCounts[from, default: 0] -= 1 }
        if to != .shutdown { liveCounts[to, default: 0] += 1 }
    }

    mutating func takeWork() -> (effects: [Effect], log: [(level: LogEntry.Level, text: String)]) {
        defer { effects = []; logLines = [] }
        return (effects, logLines)
    }
}

/// The subchannels one policy owns and how many are in each state, kept as they change: a
/// policy's state and picker never scan the table.
public struct OwnedSubchannels: Sendable, Codable {
    /// Each owned subchannel and the state this policy last heard for it (what its counts are
    /// made of: a parent may show a child another state than the table's, as outlier detection
    /// does for an ejected one).
    public private(set) var states: [SubchannelID: ConnectivityState] = [:]
    public private(set) var ready = Set<SubchannelID>()
    private var counts: [ConnectivityState: Int] = [:]

    public init() {}

    public var ids: Dictionary<SubchannelID, ConnectivityState>.Keys { states.keys }
    public func owns(_ id: SubchannelID) -> Bool { states[id] != nil }
    public func count(_ state: ConnectivityState) -> Int { counts[state] ?? 0 }

    /// Takes a subchannel in, in its current state.
    public mutating func adopt(_ id: SubchannelID, state: ConnectivityState) {
        guard state != .shutdown, states[id] == nil else { return }
        add(id, state)
    }

    public mutating func changed(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState) {
        guard let was = states[id] else { return }
        counts[was, default: 0] -= 1
        ready.remove(id)
        if to == .shutdown { states[id] = nil; return }
        add(id, to)
    }

    /// Shuts a subchannel down in the table and forgets it.
    public mutating func shutDown(_ id: SubchannelID, why: String, table: inout SubchannelTable) {
        if let s = states[id] { changed(id, from: s, to: .shutdown) }
        table.shutDown(id, why: why)
    }

    private mutating func add(_ id: SubchannelID, _ state: ConnectivityState) {
        states[id] = state
        counts[state, default: 0] += 1
        if state == .ready { ready.insert(id) }
    }

    // Keyframes before per-id states held `ids`, `ready` and `counts`: the states of ids that
    // were not READY are rebuilt from the counts (any assignment keeps the counts right).
    private enum Keys: String, CodingKey { case states, ids, ready, counts }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(states, forKey: .states)
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        if let s = try c.decodeIfPresent([SubchannelID: ConnectivityState].self, forKey: .states) {
            for (id, state) in s where state != .shutdown { add(id, state) }
            return
        }
        let ids = try c.decodeIfPresent(Set<SubchannelID>.self, forKey: .ids) ?? []
        let ready = try c.decodeIfPresent(Set<SubchannelID>.self, forKey: .ready) ?? []
        var left = (try c.decodeIfPresent([ConnectivityState: Int].self, forKey: .counts) ?? [:])
            .filter { $0.key != .ready && $0.key != .shutdown && $0.value > 0 }
            .sorted { $0.key.rawValue < $1.key.rawValue }
        for id in ids.sorted() {
            if ready.contains(id) { add(id, .ready); continue }
            var state = ConnectivityState.idle
            if let i = left.firstIndex(where: { $0.value > 0 }) {
                state = left[i].key
                left[i].value -= 1
            }
            add(id, state)
        }
    }
}
