/// The whole state grpctop shows, built only from events.
///
/// ```
///   resolvers ─┐
///   subchannels├─► TimedEvent ─► Model.apply ─► [Effect] ─► engine (create/connect/shut down
///   stats tick ├┘                    │                       subchannels, new picker, …)
///   user       ┘                     ▼
///                             view / batch / recorder
/// ```
/// `apply` is pure: no clock (time comes stamped on the event), no I/O, no randomness. The
/// load-balancing policies' subchannel management lives here (which subchannels exist, which to
/// connect, which to shut down), so a replay of the same events rebuilds the same model, with the
/// same subchannel ids, while its effects are simply dropped.
public struct Model: Sendable, Codable {
    public private(set) var session: SessionInfo?
    public private(set) var now: Millis = 0
    public private(set) var policy: LBPolicy = .roundRobin
    public private(set) var traffic: TrafficSetting = .rate(20)
    public private(set) var resolver = ResolverState()
    /// Endpoint rows, including ones removed in the last `removedRowMs` (shown struck out).
    public private(set) var endpoints: [EndpointKey: EndpointRow] = [:]
    public private(set) var subchannels: [SubchannelID: SubchannelRecord] = [:]
    public private(set) var backends: [String: BackendRecord] = [:]
    /// Every RPC, whatever happened to it. Its latency is the session histogram only: no 10 s
    /// percentiles (`recentPercentile` is nil).
    public private(set) var channel = TrafficSeries()
    /// RPCs that never reached a subchannel.
    public private(set) var unassigned = TrafficSeries()
    public private(set) var channelState: ConnectivityState = .idle
    public private(set) var channelQueued = 0
    public private(set) var log = EventLog()
    public private(set) var markers: [Marker] = []
    /// Number of GOAWAYs received.
    public private(set) var goAways = 0
    /// Reconnections (a READY subchannel that lost its connection) by the reason the connection
    /// ended (`GOAWAY NO_ERROR`, `connection reset`…).
    public private(set) var reconnectReasons: [String: Int] = [:]
    public var reconnects: Int { reconnectReasons.values.reduce(0, +) }

    private var nextID: SubchannelID = 1
    /// The live (not SHUTDOWN) subchannel of each endpoint key: O(1) lookups with thousands of endpoints.
    private var liveByKey: [EndpointKey: SubchannelID] = [:]
    private var pickFirst = PickFirstState()
    private var lastPicker: PickerSpec?

    public static let recentMs: Millis = 10_000
    public static let removedRowMs: Millis = 10_000
    public static let shutdownRowMs: Millis = 10_000

    public init() {}

    public var tickMs: Int { session?.tickMs ?? 250 }

    // MARK: - apply

    /// Applies one event and returns what the engine must do about it.
    public mutating func apply(_ timed: TimedEvent) -> [Effect] {
        now = max(now, timed.at)
        var effects: [Effect] = []
        switch timed.event {
        case .sessionStarted(let info):
            session = info
            policy = info.policy
            traffic = info.traffic
            topologyChanged = true
            log.append(now, .info, "watching \(info.target) with \(info.policy.rawValue), \(info.rpc), \(info.traffic)")
        case .resolverUpdated(let result):
            // An unchanged answer (a DNS poll, a re-list) only refreshes the resolver's status:
            // no subchannel churn, no new rows.
            if applyResolverResult(result) {
                effects += reconcile()
                topologyChanged = true
            }
        case .resolverFailed(let failure):
            if resolver.error == nil || resolver.error?.message != failure.message {
                log.append(now, .error, "resolver: \(failure.message)\(resolver.endpoints.isEmpty ? "" : " (keeping \(resolver.endpoints.count) endpoints)")")
            }
            resolver.error = ResolverState.Failure(message: failure.message, since: resolver.error?.since ?? now, last: now)
            resolver.failures += 1
            resolver.info.merge(failure.info) { $1 }
            // No endpoints ever: the channel is TRANSIENT_FAILURE and RPCs fail fast (gRPC).
            if resolver.updates == 0 { topologyChanged = true }
        case .resolverStatus(let info):
            resolver.info.merge(info) { $1 }
        case .subchannel(let id, let event):
            effects += applySubchannel(id, event)
        case .stats(let tick):
            applyStats(tick)
        case .policyChanged(let p):
            guard p != policy else { break }
            log.append(now, .info, "LB policy \(policy.rawValue) → \(p.rawValue)")
            policy = p
            pickFirst = PickFirstState()
            effects += reconcile()
            topologyChanged = true
        case .trafficChanged(let t):
            guard t != traffic else { break }
            log.append(now, .info, "traffic \(traffic) → \(t)")
            traffic = t
            effects.append(.setTraffic(t))
        case .marker(let label):
            markers.append(Marker(at: now, label: label))
            log.append(now, .marker, label.isEmpty ? "marker" : "marker: \(label)")
        case .reconnectRequested(let id):
            guard let sc = subchannels[id], sc.state == .ready else {
                log.append(now, .info, "subchannel #\(id): no connection to renew (not READY)")
                break
            }
            log.append(now, .info, "subchannel #\(id) \(sc.endpoint.displayName): new connection requested")
            effects.append(.reconnect(id))
        case .resolutionRequested:
            log.append(now, .info, "re-resolution requested by the user")
            effects.append(.requestResolution(.user))
        case .notice(let n):
            let level: LogEntry.Level = switch n.level {
            case .info: .info
            case .warning: .warning
            case .error: .error
            case .caption: .caption
            }
            log.append(now, level, n.text)
        }
        // Channel state and picker only change with the topology (not with stats ticks): with
        // thousands of subchannels this keeps `apply` O(1) for most events.
        if topologyChanged {
            topologyChanged = false
            rowsVersion += 1
            updateChannelState()
            effects += pickerEffect()
        }
        if case .stats = timed.event {
            fairnessCache = computeLiveFairness()
            var total = 0
            var peak = 0.0
            for b in backends.values {
                total += b.traffic.completed(lastSeconds: 10, tickMs: tickMs)
                peak = max(peak, b.traffic.peakPerSecond(tickMs: tickMs))
            }
            backendsCompleted10s = total
            backendsPeakPerSecond = peak
            revisionSharesCache = computeRevisionShares()
        }
        return effects
    }

    /// Changes whenever the set or order of rows may have changed (endpoints, subchannels,
    /// backends): a view may reuse its sorted rows while it stays the same.
    public private(set) var rowsVersion = 0
    private var fairnessCache = FairnessValue(index: nil, word: "no traffic")
    private var revisionSharesCache: [RevisionShare] = []
    private var revisionMap: RevisionMap?
    /// RPCs all backends completed in the last 10 s (shares), and the busiest second any backend
    /// had in the last minute (sparkline scale): computed once per stats tick.
    public private(set) var backendsCompleted10s = 0
    public private(set) var backendsPeakPerSecond = 0.0

    private var topologyChanged = true
    /// READY subchannels and the number of live subchannels in each state, kept as states
    /// change, so the picker and the channel state never scan every subchannel.
    private var readyIDs = Set<SubchannelID>()
    private var liveCounts: [ConnectivityState: Int] = [:]

    private mutating func counted(_ id: SubchannelID, from: ConnectivityState?, to: ConnectivityState) {
        if let from, from != .shutdown { liveCounts[from, default: 0] -= 1 }
        if to != .shutdown { liveCounts[to, default: 0] += 1 }
        if to == .ready { readyIDs.insert(id) } else { readyIDs.remove(id) }
    }

    // MARK: - resolver

    /// Applies an answer; false when it changed nothing but the resolver's status.
    private mutating func applyResolverResult(_ result: ResolverResult) -> Bool {
        let wasEmpty = resolver.updates == 0
        if let err = resolver.error {
            log.append(now, .info, "resolver recovered after \(formatDuration(now - err.since))")
        }
        resolver.error = nil
        resolver.updates += 1
        resolver.lastUpdate = now
        resolver.info.merge(result.info) { $1 }

        // Deduplicate by key (first wins), keep the resolver's order.
        var seen = Set<EndpointKey>()
        var list: [Endpoint] = []
        for e in result.endpoints where !e.addresses.isEmpty && seen.insert(e.key).inserted {
            list.append(e)
        }
        if !wasEmpty && list == resolver.endpoints && (result.backends == nil || result.backends == resolver.backends) {
            return false
        }
        resolver.endpoints = list
        if let names = result.backends {
            resolver.backends = names
            for name in names where backends[name] == nil {
                backends[name] = BackendRecord(name: name, firstSeen: now)
                rowsVersion += 1
            }
        }

        for (i, e) in list.enumerated() {
            let key = e.key
            if var row = endpoints[key], row.removedAt == nil {
                if row.endpoint.condition != e.condition {
                    log.append(now, .info, "endpoint \(e.displayName) \(row.endpoint.condition.rawValue) → \(e.condition.rawValue)")
                    row.conditionSince = now
                }
                row.endpoint = e
                row.order = i
                endpoints[key] = row
            } else {
                endpoints[key] = EndpointRow(endpoint: e, firstSeen: now, conditionSince: now, removedAt: nil, order: i, initial: wasEmpty)
                if !wasEmpty {
                    log.append(now, .info, "endpoint added: \(e.displayName) \(e.addresses.map(\.description).joined(separator: " "))\(e.condition == .ready ? "" : " (\(e.condition.rawValue))")")
                }
            }
        }
        for (key, row) in endpoints where row.removedAt == nil && !seen.contains(key) {
            endpoints[key]?.removedAt = now
            log.append(now, .info, "endpoint removed: \(row.endpoint.displayName)")
        }
        if list.isEmpty {
            log.append(now, .warning, "resolver returned no endpoints")
        } else if wasEmpty {
            log.append(now, .info, "resolver returned \(list.count) endpoint\(list.count == 1 ? "" : "s")")
        }
        return true
    }

    /// The endpoints that may get traffic: ready ones, in resolver order.
    private var usableEndpoints: [Endpoint] { resolver.endpoints.filter(\.ready) }

    private func liveSubchannel(for key: EndpointKey) -> SubchannelID? { liveByKey[key] }

    /// Live subchannels as (endpoint key, id), by id — without copying the records.
    private var liveSubchannels: [(key: EndpointKey, id: SubchannelID)] {
        liveByKey.map { (key: $0.key, id: $0.value) }.sorted { $0.id < $1.id }
    }

    /// Why a live subchannel's endpoint is no longer wanted (rows were just updated).
    private func unwantedReason(_ key: EndpointKey) -> String {
        endpoints[key].map { $0.removedAt == nil } == true ? "endpoint not ready" : "endpoint removed"
    }

    // MARK: - LB policies: subchannel management

    private mutating func reconcile() -> [Effect] {
        switch policy {
        case .roundRobin, .leastRequest:
            return reconcileEach()
        case .pickFirst:
            return reconcilePickFirst()
        }
    }

    /// round_robin and least_request: one subchannel per usable endpoint, each kept connected.
    private mutating func reconcileEach() -> [Effect] {
        var effects: [Effect] = []
        let usable = usableEndpoints
        let wanted = Set(usable.map(\.key))
        for sc in liveSubchannels where !wanted.contains(sc.key) {
            effects += shutDown(sc.id, why: unwantedReason(sc.key))
        }
        subchannels.reserveCapacity(subchannels.count + usable.count)
        for e in usable {
            if let id = liveSubchannel(for: e.key) {
                subchannels[id]?.endpoint = e
                if subchannels[id]?.state == .idle { effects.append(.connect(id)) }
            } else {
                effects += create(e, connect: true)
            }
        }
        return effects
    }

    /// pick_first (gRFC A61/A62): keep the selected subchannel while its endpoint is still in the
    /// list; otherwise try the endpoints in order, one at a time, and keep the first that is READY.
    private mutating func reconcilePickFirst() -> [Effect] {
        var effects: [Effect] = []
        let usable = usableEndpoints
        pickFirst.list = usable.map(\.key)
        let wanted = Set(pickFirst.list)
        for e in usable { if let id = liveSubchannel(for: e.key) { subchannels[id]?.endpoint = e } }

        if pickFirst.selected == nil {
            // Adopt a READY subchannel (after a policy switch), in list order.
            let candidates = pickFirst.list.compactMap { liveSubchannel(for: $0) }
            pickFirst.selected = candidates.first { subchannels[$0]?.state == .ready }
        }
        if let sel = pickFirst.selected, let sc = subchannels[sel], sc.state == .ready, wanted.contains(sc.key) {
            for other in liveSubchannels where other.id != sel {
                effects += shutDown(other.id, why: "pick_first keeps \(sc.endpoint.displayName)")
            }
            return effects
        }
        pickFirst.selected = nil
        for sc in liveSubchannels where !wanted.contains(sc.key) {
            effects += shutDown(sc.id, why: unwantedReason(sc.key))
        }
        effects += startPickFirstPass()
        return effects
    }

    private mutating func startPickFirstPass() -> [Effect] {
        pickFirst.passFailed = false
        pickFirst.index = 0
        return pickFirstAttempt()
    }

    /// Connects the endpoint at `pickFirst.index`, skipping ones in backoff.
    private mutating func pickFirstAttempt() -> [Effect] {
        var effects: [Effect] = []
        while pickFirst.index < pickFirst.list.count {
            let key = pickFirst.list[pickFirst.index]
            let id: SubchannelID
            if let existing = liveSubchannel(for: key) {
                id = existing
            } else {
                guard let e = resolver.endpoints.first(where: { $0.key == key }) else { pickFirst.index += 1; continue }
                effects += create(e, connect: false)
                id = nextID - 1
            }
            switch subchannels[id]?.state {
            case .idle?:
                effects.append(.connect(id))
                return effects
            case .connecting?, .ready?:
                return effects
            case .transientFailure?, .shutdown?, nil:
                pickFirst.index += 1
            }
        }
        if !pickFirst.list.isEmpty { pickFirst.passFailed = true }
        return effects
    }

    private mutating func create(_ e: Endpoint, connect: Bool) -> [Effect] {
        let id = nextID
        nextID += 1
        subchannels[id] = SubchannelRecord(id: id, endpoint: e, created: now)
        counted(id, from: nil, to: .idle)
        liveByKey[e.key] = id
        topologyChanged = true
        log.append(now, .info, "subchannel #\(id) created for \(e.displayName)")
        return connect ? [.createSubchannel(id, e), .connect(id)] : [.createSubchannel(id, e)]
    }

    private mutating func shutDown(_ id: SubchannelID, why: String) -> [Effect] {
        guard var sc = subchannels[id], sc.state != .shutdown else { return [] }
        counted(id, from: sc.state, to: .shutdown)
        sc.transition(to: .shutdown, reason: "subchannel shutdown (\(why))", at: now)
        subchannels[id] = sc
        if liveByKey[sc.key] == id { liveByKey[sc.key] = nil }
        topologyChanged = true
        log.append(now, .info, "subchannel #\(id) \(sc.endpoint.displayName) → SHUTDOWN: \(why)")
        if pickFirst.selected == id { pickFirst.selected = nil }
        return [.shutDown(id)]
    }

    // MARK: - subchannel events

    private mutating func applySubchannel(_ id: SubchannelID, _ event: SubchannelEvent) -> [Effect] {
        guard var sc = subchannels[id] else { return [] }
        var effects: [Effect] = []
        switch event {
        case .stateChanged(let to, let reason, let backoffMs):
            guard sc.state != .shutdown, to != .shutdown else { return [] }
            let from = sc.state
            guard from != to else { return [] }
            sc.transition(to: to, reason: reason, at: now)
            counted(id, from: from, to: to)
            topologyChanged = true
            if to == .transientFailure, let b = backoffMs { sc.backoffUntil = now + b }
            if from == .ready { reconnectReasons[reason ?? "unknown", default: 0] += 1 }
            subchannels[id] = sc
            let why = reason.map { ": \($0)" } ?? ""
            let level: LogEntry.Level = to == .transientFailure ? .warning : .info
            let backoffText = backoffMs.map { " (retry in \(formatDuration($0)))" } ?? ""
            log.append(now, level, "subchannel #\(id) \(sc.endpoint.displayName) \(from.rawValue) → \(to.rawValue)\(why)\(backoffText)")
            effects += lbReact(id: id, from: from, to: to)
        case .connected(let local, let remote, let connectMs):
            sc.local = local
            sc.remote = remote
            sc.connectMs = connectMs
            sc.connections += 1
            subchannels[id] = sc
        case .settingsReceived(let max):
            sc.maxConcurrentStreams = max
            sc.settingsSeen = true
            subchannels[id] = sc
        case .goAwayReceived(let code, let last, let debug):
            sc.lastGoAway = GoAwayInfo(at: now, code: code, lastStreamID: last, debug: debug)
            sc.goAways += 1
            goAways += 1
            subchannels[id] = sc
            log.append(now, .warning, "subchannel #\(id) \(sc.endpoint.displayName) got GOAWAY \(code) last-stream \(last)\(debug.isEmpty ? "" : " \"\(debug)\"")")
        case .pingRTT(let micros):
            sc.rttMicros = micros
            subchannels[id] = sc
        }
        return effects
    }

    /// How the policy reacts to a subchannel state change.
    private mutating func lbReact(id: SubchannelID, from: ConnectivityState, to: ConnectivityState) -> [Effect] {
        var effects: [Effect] = []
        if from == .ready {
            effects.append(.requestResolution(.disconnected(id)))
        }
        switch policy {
        case .roundRobin, .leastRequest:
            if to == .idle, let key = subchannels[id]?.key, endpoints[key]?.removedAt == nil, endpoints[key]?.endpoint.ready == true {
                effects.append(.connect(id))
            }
        case .pickFirst:
            switch to {
            case .ready:
                if pickFirst.selected == nil || subchannels[pickFirst.selected!]?.state != .ready {
                    pickFirst.selected = id
                    pickFirst.passFailed = false
                    for other in liveSubchannels where other.id != id {
                        effects += shutDown(other.id, why: "pick_first chose \(subchannels[id]?.endpoint.displayName ?? "#\(id)")")
                    }
                }
            case .transientFailure:
                if pickFirst.index < pickFirst.list.count, liveSubchannel(for: pickFirst.list[pickFirst.index]) == id {
                    pickFirst.index += 1
                    effects += pickFirstAttempt()
                }
            case .idle:
                if pickFirst.selected == id {
                    // The connection we used is gone: start over from the top of the list (traffic
                    // is continuous, so the policy leaves IDLE at once).
                    pickFirst.selected = nil
                    effects += startPickFirstPass()
                } else if pickFirst.passFailed {
                    // After a failed pass each subchannel retries on its own when its backoff ends.
                    effects.append(.connect(id))
                }
            case .connecting, .shutdown:
                break
            }
        }
        return effects
    }

    private mutating func updateChannelState() {
        let ready = liveCounts[.ready] ?? 0
        let connecting = liveCounts[.connecting] ?? 0
        let idle = liveCounts[.idle] ?? 0
        let live = ready + connecting + idle + (liveCounts[.transientFailure] ?? 0)
        let previous = channelState
        var next: ConnectivityState
        switch policy {
        case .roundRobin, .leastRequest:
            if ready > 0 {
                next = .ready
            } else if previous == .transientFailure && live > 0 {
                next = .transientFailure  // sticky TRANSIENT_FAILURE until something is READY
            } else if connecting > 0 {
                next = .connecting
            } else if idle > 0 {
                next = .idle
            } else {
                next = resolver.updates > 0 ? .transientFailure : .idle
            }
        case .pickFirst:
            if let s = pickFirst.selected, subchannels[s]?.state == .ready {
                next = .ready
            } else if pickFirst.passFailed || (resolver.updates > 0 && live == 0) {
                next = .transientFailure
            } else if connecting > 0 {
                next = .connecting
            } else {
                next = resolver.updates > 0 && live > 0 ? .connecting : .idle
            }
        }
        if resolver.updates > 0 && !resolver.endpoints.contains(where: \.ready) { next = .transientFailure }
        if resolver.updates == 0 && resolver.error != nil { next = .transientFailure }
        if next != previous {
            channelState = next
            log.append(now, next == .transientFailure ? .warning : .info, "channel \(previous.rawValue) → \(next.rawValue)")
        }
    }

    private mutating func pickerEffect() -> [Effect] {
        let ready: [SubchannelID]
        switch policy {
        case .pickFirst:
            if let s = pickFirst.selected, subchannels[s]?.state == .ready { ready = [s] } else { ready = [] }
        case .roundRobin, .leastRequest:
            ready = readyIDs.sorted()
        }
        let spec = PickerSpec(policy: policy, ready: ready, channelState: channelState)
        guard spec != lastPicker else { return [] }
        lastPicker = spec
        return [.updatePicker(spec)]
    }

    // MARK: - statistics

    private mutating func applyStats(_ tick: StatsTick) {
        var total = RPCDelta()
        var bySub: [SubchannelID: Int] = [:]
        bySub.reserveCapacity(tick.subchannels.count)
        for (i, s) in tick.subchannels.enumerated() { bySub[s.id] = i }
        // Through the dictionaries' indices: one hash per row, not one per field.
        var i = subchannels.startIndex
        while i != subchannels.endIndex {
            if let j = bySub[subchannels.keys[i]] {
                let s = tick.subchannels[j]
                subchannels.values[i].activeStreams = s.activeStreams
                subchannels.values[i].queued = s.queued
                subchannels.values[i].traffic.apply(s.delta, at: now)
                total.addCounts(s.delta)
                channel.addSessionLatency(s.delta.latency)
            } else {
                subchannels.values[i].traffic.apply(nil, at: now)
            }
            subchannels.formIndex(after: &i)
        }
        var byName: [String: RPCDelta] = [:]
        byName.reserveCapacity(tick.backends.count)
        for b in tick.backends {
            if byName[b.name] == nil { byName[b.name] = b.delta } else { byName[b.name]!.add(b.delta) }
        }
        for (name, _) in byName where backends[name] == nil {
            backends[name] = BackendRecord(name: name, firstSeen: now)
            rowsVersion += 1
        }
        var k = backends.startIndex
        while k != backends.endIndex {
            backends.values[k].traffic.apply(byName[backends.keys[k]], at: now)
            backends.formIndex(after: &k)
        }
        total.addCounts(tick.unassigned)
        channel.addSessionLatency(tick.unassigned.latency)
        unassigned.apply(tick.unassigned, at: now)
        // The channel's latencies went straight into its session histogram: it keeps no 10 s
        // samples (nothing shows them; merging every subchannel's samples cost a sort per tick).
        channel.apply(total, at: now)
        channelQueued = tick.channelQueued
        collectGarbage()
    }

    private mutating func collectGarbage() {
        for (key, row) in endpoints {
            if let r = row.removedAt, now - r > Self.removedRowMs { endpoints[key] = nil; rowsVersion += 1 }
        }
        for (id, sc) in subchannels where sc.state == .shutdown && now - sc.stateSince > Self.shutdownRowMs {
            subchannels[id] = nil
            rowsVersion += 1
        }
    }

    // MARK: - derived views

    /// Jain's fairness over the last 10 s and a word for it, computed once per stats tick. It is
    /// judged over the backends that should get traffic: the ready endpoints (when backends are
    /// endpoints), the pods the resolver says stand behind them, and every backend that served in
    /// the last 60 s.
    public func liveFairness() -> (index: Double?, word: String) { (fairnessCache.index, fairnessCache.word) }

    /// During a rollout: each revision's share of the RPCs completed in the last 10 s (oldest
    /// first by first sighting), when backends of two or more revisions served them. Computed
    /// once per stats tick (it parses pod names), not per frame.
    public func revisionShares() -> [(revision: String, share: Double)] { revisionSharesCache.map { ($0.revision, $0.share) } }

    private mutating func computeRevisionShares() -> [RevisionShare] {
        guard backendsCompleted10s > 0 else { return [] }
        if revisionMap?.version != rowsVersion {
            // The revisions change with the rows only: parsed once per rows version, not per tick.
            var revisionOfPod: [String: String] = [:]
            var map = RevisionMap(version: rowsVersion)
            for row in endpoints.values {
                guard let rev = row.endpoint.revision else { continue }
                revisionOfPod[row.endpoint.displayName] = rev
                map.firstSeen[rev] = min(map.firstSeen[rev] ?? row.firstSeen, row.firstSeen)
            }
            for name in backends.keys {
                if let rev = revisionOfPod[name] ?? Endpoint.revision(ofPod: name) { map.ofBackend[name] = rev }
            }
            revisionMap = map
        }
        let map = revisionMap!
        var counts: [String: Int] = [:]
        for (name, rev) in map.ofBackend {
            guard let b = backends[name] else { continue }
            let n = b.traffic.completed(lastSeconds: 10, tickMs: tickMs)
            if n > 0 { counts[rev, default: 0] += n }
        }
        guard counts.count >= 2 else { return [] }
        return counts.keys.sorted { (map.firstSeen[$0] ?? .max, $0) < (map.firstSeen[$1] ?? .max, $1) }
            .map { RevisionShare(revision: $0, share: Double(counts[$0]!) / Double(backendsCompleted10s)) }
    }

    private func computeLiveFairness() -> FairnessValue {
        var xs: [Double] = []
        var counted = Set<String>()
        for (name, b) in backends where b.traffic.completed(lastSeconds: 60, tickMs: tickMs) > 0 {
            counted.insert(name)
            xs.append(Double(b.traffic.completed(lastSeconds: 10, tickMs: tickMs)))
        }
        if session?.identityHeader == nil {
            for e in resolver.endpoints where e.ready && counted.insert(e.displayName).inserted {
                xs.append(0)  // no RPC in the last 60 s, so none in the last 10 s either
            }
        }
        for name in resolver.backends where counted.insert(name).inserted { xs.append(0) }
        let sum = xs.reduce(0, +)
        let idx = Fairness.jain(xs)
        return FairnessValue(index: idx, word: Fairness.word(index: idx, shares: sum > 0 ? xs.map { $0 / sum } : []))
    }

    /// Fairness over the whole session's totals.
    public func sessionFairness() -> (index: Double?, word: String) {
        var names = Set(backends.filter { $0.value.traffic.total.completed > 0 }.map(\.key))
        if session?.identityHeader == nil {
            for e in resolver.endpoints where e.ready { names.insert(e.displayName) }
        }
        names.formUnion(resolver.backends)
        let xs = names.sorted().map { Double(backends[$0]?.traffic.total.completed ?? 0) }
        let sum = xs.reduce(0, +)
        let idx = Fairness.jain(xs)
        return (idx, Fairness.word(index: idx, shares: sum > 0 ? xs.map { $0 / sum } : []))
    }

    /// The latest caption (a demo step's "what is happening, what to look at").
    public var caption: String? { log.entries.last { $0.level == .caption }?.text }

    /// A `grpctop demo` session (demo-only keys apply).
    public var isDemo: Bool { session?.resolver == "demo" }

    /// Subchannels not SHUTDOWN.
    public var liveSubchannelCount: Int { liveCounts.values.reduce(0, +) }

    /// Endpoint rows in resolver order, removed ones last.
    public var endpointRows: [EndpointRow] {
        endpoints.values.sorted { a, b in
            if (a.removedAt == nil) != (b.removedAt == nil) { return a.removedAt == nil }
            return a.order != b.order ? a.order < b.order : a.endpoint.key < b.endpoint.key
        }
    }

    public var subchannelRows: [SubchannelRecord] { subchannels.values.sorted { $0.id < $1.id } }

    /// The live subchannel serving an endpoint, if any.
    public func subchannel(for key: EndpointKey) -> SubchannelRecord? {
        liveSubchannel(for: key).flatMap { subchannels[$0] }
    }
}

// MARK: - model parts

public struct ResolverState: Sendable, Codable {
    public struct Failure: Sendable, Equatable, Codable {
        public var message: String
        public var since: Millis
        public var last: Millis
    }
    public var endpoints: [Endpoint] = []
    public var lastUpdate: Millis?
    public var updates = 0
    public var failures = 0
    public var error: Failure?
    public var info: [String: String] = [:]
    /// Pods behind the endpoints, when the resolver knows them (`ResolverResult.backends`).
    public var backends: [String] = []
}

public struct EndpointRow: Sendable, Codable {
    public var endpoint: Endpoint
    public var firstSeen: Millis
    public var conditionSince: Millis
    public var removedAt: Millis?
    public var order: Int
    /// Part of the first answer (not marked as "added").
    public var initial: Bool

    public func isNew(now: Millis) -> Bool { !initial && removedAt == nil && now - firstSeen < Model.recentMs }
}

public struct StateTransition: Sendable, Equatable, Codable {
    public var at: Millis
    public var from: ConnectivityState
    public var to: ConnectivityState
    public var reason: String?
}

public struct GoAwayInfo: Sendable, Equatable, Codable {
    public var at: Millis
    public var code: String
    public var lastStreamID: Int
    public var debug: String
}

public struct SubchannelRecord: Sendable, Codable {
    public let id: SubchannelID
    public let key: EndpointKey
    public var endpoint: Endpoint
    public let created: Millis
    public private(set) var state: ConnectivityState = .idle
    public private(set) var stateSince: Millis
    public private(set) var transitions: [StateTransition] = []
    public var backoffUntil: Millis?
    public var lastDisconnectReason: String?
    public var connectMs: Int64?
    public var local: String?
    public var remote: String?
    public var connections = 0
    public var maxConcurrentStreams: Int?
    public var settingsSeen = false
    public var activeStreams = 0
    public var queued = 0
    public var traffic = TrafficSeries()
    public var lastGoAway: GoAwayInfo?
    public var goAways = 0
    public var rttMicros: Int64?

    init(id: SubchannelID, endpoint: Endpoint, created: Millis) {
        self.id = id
        self.key = endpoint.key
        self.endpoint = endpoint
        self.created = created
        self.stateSince = created
    }

    mutating func transition(to: ConnectivityState, reason: String?, at: Millis) {
        transitions.append(StateTransition(at: at, from: state, to: to, reason: reason))
        if transitions.count > 64 { transitions.removeFirst(transitions.count - 64) }
        if state == .ready || (to == .transientFailure), let reason { lastDisconnectReason = reason }
        if to != .transientFailure { backoffUntil = nil }
        state = to
        stateSince = at
    }

    /// The stream limit in force: the peer's MAX_CONCURRENT_STREAMS, or NIO's cap of 100 when
    /// the peer sent none.
    public var effectiveStreamLimit: Int { maxConcurrentStreams ?? 100 }
}

public struct BackendRecord: Sendable, Codable {
    public let name: String
    public let firstSeen: Millis
    public var traffic = TrafficSeries()
    init(name: String, firstSeen: Millis) {
        self.name = name
        self.firstSeen = firstSeen
    }
}

public struct Marker: Sendable, Equatable, Codable {
    public var at: Millis
    public var label: String
}

public struct LogEntry: Sendable, Equatable, Codable {
    public enum Level: String, Sendable, Codable { case info, warning, error, marker, caption }
    public var at: Millis
    public var level: Level
    public var text: String
}

/// The event log: the last `capacity` entries, oldest first.
public struct EventLog: Sendable, Codable {
    public static let capacity = 1000
    public private(set) var entries: [LogEntry] = []
    public private(set) var total = 0
    mutating func append(_ at: Millis, _ level: LogEntry.Level, _ text: String) {
        entries.append(LogEntry(at: at, level: level, text: text))
        total += 1
        if entries.count > Self.capacity + 100 { entries.removeFirst(entries.count - Self.capacity) }
    }
}

struct PickFirstState: Sendable, Codable {
    var list: [EndpointKey] = []
    var index = 0
    var selected: SubchannelID?
    var passFailed = false
}

struct FairnessValue: Sendable, Codable {
    var index: Double?
    var word: String
}

struct RevisionShare: Sendable, Codable {
    var revision: String
    var share: Double
}

/// The revision of each backend and when each revision was first seen, for one `rowsVersion`.
/// Derived from the rows, so a keyframe does not hold it: read back, it is rebuilt on the next tick.
struct RevisionMap: Sendable, Codable {
    var version: Int
    var ofBackend: [String: String] = [:]
    var firstSeen: [String: Int64] = [:]
    init(version: Int) { self.version = version }
    init(from decoder: Decoder) throws { self.init(version: -1) }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encodeNil()
    }
}

/// "850ms", "3.2s", "1m05s", "2h03m".
public func formatDuration(_ ms: Millis) -> String {
    let ms = max(0, ms)
    if ms < 1000 { return "\(ms)ms" }
    if ms < 10_000 { return "\(ms / 1000).\((ms % 1000) / 100)s" }
    let s = ms / 1000
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m\(pad2(s % 60))s" }
    return "\(s / 3600)h\(pad2((s % 3600) / 60))m"
}

func pad2(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
