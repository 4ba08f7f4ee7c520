/// The model's subchannel part: what subchannels report, and the LB policy tree that reacts to
/// it (`LB/`). Backend attribution does not happen here: the engine credits each RPC to the
/// subchannel and backend it ran on (`Engine.finish`), and the stats ticks carry the counts.
extension Model {
    /// The endpoints a driven policy balances over: the ready ones, in resolver order.
    var usableEndpoints: [Endpoint] { resolver.endpoints.filter(\.ready) }

    /// Hands the policy tree the current endpoint list.
    mutating func updatePolicy() {
        table.listed = Set(resolver.endpoints.map(\.key))
        lb.update(endpoints: usableEndpoints, table: &table)
    }

    /// A new root policy: it adopts the live subchannels of its endpoints; the rest go.
    mutating func switchPolicy(to next: AnyPolicy) {
        lb = next
        if resolver.updates > 0 { updatePolicy() }
        for sc in table.live where !lb.owns(sc.id) {
            table.shutDown(sc.id, why: endpointGoneReason(sc.key, table: table))
        }
        topologyChanged = true
    }

    /// The user's policy, inside outlier detection when the session asks for it (A50).
    func wrapped(_ policy: AnyPolicy) -> AnyPolicy {
        guard let od = session?.outlierDetection else { return policy }
        return AnyPolicy(OutlierDetection(config: od, child: policy))
    }

    /// gRFC A17: health checks run when the session names a service, except under pick_first.
    func healthCheckingApplies(to policy: LBPolicy) -> Bool {
        session?.healthCheckService != nil && session?.observed != true && policy != .pickFirst
    }

    /// Turns health checking on or off for the policies (a switch to or from pick_first): READY
    /// subchannels start or stop their Watch streams.
    mutating func setHealthChecking(_ on: Bool) {
        guard on != table.healthChecking else { return }
        let ready = table.live.map(\.id).filter { table.records[$0]?.state == .ready }
        let before = Dictionary(uniqueKeysWithValues: ready.map { ($0, table.state(of: $0) ?? .ready) })
        table.healthChecking = on
        for id in ready {
            if on {
                table.records[id]?.health = SubchannelHealth(status: .checking, since: now)
                table.effects.append(.startHealthCheck(id))
            } else {
                table.records[id]?.health = nil
                table.effects.append(.stopHealthCheck(id))
            }
            let after = table.state(of: id) ?? .ready
            if after != before[id] { lb.subchannelChanged(id, from: before[id]!, to: after, table: &table) }
        }
        table.changed = true
    }

    /// Outlier detection's word on a subchannel (A50), when it runs.
    public func outlierState(_ id: SubchannelID) -> (ejected: Bool, state: OutlierDetection.AddressState)? {
        guard let od = lb.policy as? OutlierDetection, let sc = subchannels[id], let a = od.addresses[sc.key] else { return nil }
        return (od.isEjected(id) || (a.ejectedAt != nil && table.live(for: sc.key) == id), a)
    }

    /// The outlier detection policy at the root, when the session runs one.
    public var outlierDetection: OutlierDetection? { lb.policy as? OutlierDetection }

    mutating func applySubchannel(_ id: SubchannelID, _ event: SubchannelEvent) {
        guard var sc = subchannels[id] else { return }
        switch event {
        case .stateChanged(let to, let reason, let backoffMs):
            let seenBefore = table.state(of: id) ?? sc.state
            guard let from = table.transition(id, to: to, reason: reason, backoffMs: backoffMs) else { return }
            if table.healthChecking && to == .ready {
                table.records[id]?.health = SubchannelHealth(status: .checking, since: now)
                table.effects.append(.startHealthCheck(id))
            } else if from == .ready {
                table.records[id]?.health = nil
            }
            sc = subchannels[id]!
            if from == .ready { reconnectReasons[reason ?? "unknown", default: 0] += 1 }
            let why = reason.map { ": \($0)" } ?? ""
            let level: LogEntry.Level = to == .transientFailure ? .warning : .info
            let backoffText = backoffMs.map { " (retry in \(formatDuration($0)))" } ?? ""
            log.append(now, level, "subchannel #\(id) \(sc.endpoint.displayName) \(from.rawValue) → \(to.rawValue)\(why)\(backoffText)")
            if from == .ready && !isObserved {
                table.effects.append(.requestResolution(.disconnected(id)))
            }
            let seen = table.state(of: id) ?? to
            if seen != seenBefore { lb.subchannelChanged(id, from: seenBefore, to: seen, table: &table) }
        case .health(let report):
            applyHealth(id, report)
        case .connected(let local, let remote, let connectMs):
            sc.local = local
            sc.remote = remote
            sc.connectMs = connectMs
            sc.connections += 1
            table.records[id] = sc
        case .settingsReceived(let max):
            sc.maxConcurrentStreams = max
            sc.settingsSeen = true
            table.records[id] = sc
        case .goAwayReceived(let code, let last, let debug):
            sc.lastGoAway = GoAwayInfo(at: now, code: code, lastStreamID: last, debug: debug)
            sc.goAways += 1
            goAways += 1
            table.records[id] = sc
            log.append(now, .warning, "subchannel #\(id) \(sc.endpoint.displayName) got GOAWAY \(code) last-stream \(last)\(debug.isEmpty ? "" : " \"\(debug)\"")")
        case .pingRTT(let micros):
            sc.rttMicros = micros
            table.records[id] = sc
        }
    }

    /// A health-check stream's report (A17): the subchannel's health, and what the policies see.
    mutating func applyHealth(_ id: SubchannelID, _ report: HealthReport) {
        guard let sc = subchannels[id], sc.state == .ready, sc.health != nil || table.healthChecking else { return }
        let before = table.state(of: id) ?? sc.state
        var h = sc.health ?? SubchannelHealth(status: .checking, since: now)
        let old = h.status
        let name = "subchannel #\(id) \(sc.endpoint.displayName)"
        switch report {
        case .watching:
            h.status = .checking
            h.retryAt = nil
        case .answered(let word):
            h.status = SubchannelHealth.Status(rawValue: word) ?? .unknown
            h.detail = nil
            h.retryAt = nil
            h.answers += 1
        case .unimplemented(let message):
            h.status = .unimplemented
            h.detail = message
            log.append(now, .error, "\(name): the server has no health service (UNIMPLEMENTED: \(message)); health checking disabled, the subchannel counts as healthy")
        case .failed(let why, let retryMs):
            h.status = .failed
            h.detail = why
            h.retryAt = retryMs.map { now + $0 }
        }
        if h.status != old { h.since = now }
        table.records[id]?.health = h
        if h.status != old {
            switch h.status {
            case .serving: log.append(now, .info, "\(name) health: SERVING")
            case .notServing, .unknown, .serviceUnknown:
                log.append(now, .warning, "\(name) health: \(h.status.rawValue): no RPCs while the connection stays up")
            case .failed:
                log.append(now, .warning, "\(name) health check failed: \(h.detail ?? "?")\(h.retryAt.map { " (retry in \(formatDuration($0 - now)))" } ?? " (retrying now)")")
            case .checking, .unimplemented: break
            }
        }
        let after = table.state(of: id) ?? sc.state
        if after != before {
            table.changed = true
            lb.subchannelChanged(id, from: before, to: after, table: &table)
        }
    }

    /// An observed source's report (channelz, a proxy's admin API): states through the
    /// `Observed` policy, then its counts as one stats tick (a subchannel's calls are its
    /// backend's: the endpoint names both).
    mutating func applyObserved(_ report: ObservedChannel) {
        if !isObserved { switchPolicy(to: AnyPolicy(Observed())) }
        guard var observed = lb.policy as? Observed else { return }
        observed.apply(report, table: &table)
        lb = AnyPolicy(observed)
        var tick = StatsTick()
        for sub in report.subchannels {
            guard let id = table.live(for: sub.endpoint.key) else { continue }
            let delta = sub.calls ?? RPCDelta()
            tick.subchannels.append(SubchannelTick(id: id, activeStreams: sub.activeStreams ?? 0, queued: 0, delta: delta))
            if sub.calls != nil { tick.backends.append(BackendTick(name: sub.endpoint.displayName, delta: delta)) }
        }
        tick.unassigned = report.unassigned ?? RPCDelta()
        applyStats(tick)
    }

    mutating func updateChannelState() {
        let previous = channelState
        var next = lb.state(previous: previous, table: table)
        if !isObserved {
            if resolver.updates > 0 && !resolver.endpoints.contains(where: \.ready) { next = .transientFailure }
            if resolver.updates == 0 && resolver.error != nil { next = .transientFailure }
        }
        if next != previous {
            channelState = next
            log.append(now, next == .transientFailure ? .warning : .info, "channel \(previous.rawValue) → \(next.rawValue)")
        }
    }

    mutating func pickerEffect() -> [Effect] {
        let spec = PickerSpec(node: lb.pickNode(table: table), channelState: channelState)
        guard spec != lastPicker else { return [] }
        lastPicker = spec
        return [.updatePicker(spec)]
    }
}

/// What the dashboard, tables and snapshots say about a subchannel's health (A17) and outlier
/// detection (A50): one wording for all of them.
extension Model {
    /// The STATE cell: the connection's state, and beside READY what keeps it from picks —
    /// `READY · unhealthy`, `READY · checking`, `READY · check err`, `READY · ejected`.
    public func stateLabel(_ s: SubchannelRecord) -> String {
        guard s.state == .ready else { return s.state.rawValue }
        if let word = s.health?.word, table.healthChecking { return "READY · \(word)" }
        if let od = outlierState(s.id), od.ejected { return "READY · ejected" }
        return "READY"
    }

    /// Whether the subchannel is connected but kept from picks (unhealthy, checking, ejected).
    public func isHeldBack(_ s: SubchannelRecord) -> Bool { stateLabel(s) != s.state.rawValue }

    /// The health line: `NOT_SERVING for 4s`, `SERVING`, `no health service (UNIMPLEMENTED)`…
    public func healthText(_ s: SubchannelRecord) -> String? {
        guard let h = s.health, s.state == .ready else { return nil }
        let age = formatDuration(now - h.since)
        switch h.status {
        case .checking: return "waiting for the first answer (\(age))"
        case .serving: return "SERVING for \(age)"
        case .notServing, .unknown, .serviceUnknown: return "\(h.status.rawValue) for \(age): no RPCs, connection kept"
        case .unimplemented: return "no health service (UNIMPLEMENTED): counted healthy"
        case .failed:
            return "check failed: \(h.detail ?? "?")\(h.retryAt.map { ", retry in \(formatDuration(max(0, $0 - now)))" } ?? "")"
        }
    }

    /// The ejection line: `ejected ×2, back in 8s: failures 52% > threshold 30% (26 of 50)`, or
    /// the last interval's counts while not ejected.
    public func outlierText(_ s: SubchannelRecord) -> String? {
        guard let (ejected, a) = outlierState(s.id) else { return nil }
        if ejected, let until = a.ejectedUntil {
            return "ejected ×\(a.multiplier), back in \(formatDuration(max(0, until - now))): \(a.why ?? "?")"
        }
        var t = "interval \(a.lastSucceeded) ok / \(a.lastFailed) failed"
        if a.multiplier > 0 { t += ", multiplier \(a.multiplier)" }
        if a.ejections > 0 { t += ", ejected \(a.ejections)× before" }
        return t
    }

    /// STREAMS: RPC streams, `+1` for the health-check Watch stream, and the peer's limit.
    public func streamsText(_ s: SubchannelRecord) -> String {
        let health = s.state == .ready && (s.health?.holdsStream ?? false)
        return "\(s.activeStreams)\(health ? "+1" : "")/\(s.maxConcurrentStreams.map(String.init) ?? "100*")"
    }

    public func streamsHeld(_ s: SubchannelRecord) -> Int {
        s.activeStreams + (s.state == .ready && (s.health?.holdsStream ?? false) ? 1 : 0)
    }
}

extension Model {
    /// What the header adds after the policy: ` +health` (A17 on), ` +outlier 1/3 out` (A50).
    public var policyExtras: String {
        var t = ""
        if table.healthChecking { t += " +health" }
        if let od = outlierDetection {
            let out = od.addresses.values.filter { $0.ejectedAt != nil }.count
            t += " +outlier \(out)/\(od.addresses.count) out"
        }
        return t
    }
}
