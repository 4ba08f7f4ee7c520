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

    mutating func applySubchannel(_ id: SubchannelID, _ event: SubchannelEvent) {
        guard var sc = subchannels[id] else { return }
        switch event {
        case .stateChanged(let to, let reason, let backoffMs):
            guard let from = table.transition(id, to: to, reason: reason, backoffMs: backoffMs) else { return }
            sc = subchannels[id]!
            if from == .ready { reconnectReasons[reason ?? "unknown", default: 0] += 1 }
            let why = reason.map { ": \($0)" } ?? ""
            let level: LogEntry.Level = to == .transientFailure ? .warning : .info
            let backoffText = backoffMs.map { " (retry in \(formatDuration($0)))" } ?? ""
            log.append(now, level, "subchannel #\(id) \(sc.endpoint.displayName) \(from.rawValue) → \(to.rawValue)\(why)\(backoffText)")
            if from == .ready && !isObserved {
                table.effects.append(.requestResolution(.disconnected(id)))
            }
            lb.subchannelChanged(id, from: from, to: to, table: &table)
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
