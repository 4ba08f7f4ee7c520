import Foundation

/// The model's statistics: per-tick counters into each subchannel's and backend's series, the
/// clean-up of rows gone long enough, fairness and revision shares (computed once per tick).
extension Model {
    mutating func applyStats(_ tick: StatsTick) {
        var total = RPCDelta()
        var bySub: [SubchannelID: Int] = [:]
        bySub.reserveCapacity(tick.subchannels.count)
        for (i, s) in tick.subchannels.enumerated() { bySub[s.id] = i }
        // Through the dictionaries' indices: one hash per row, not one per field.
        var i = table.records.startIndex
        while i != table.records.endIndex {
            if let j = bySub[table.records.keys[i]] {
                let s = tick.subchannels[j]
                table.records.values[i].activeStreams = s.activeStreams
                table.records.values[i].queued = s.queued
                table.records.values[i].traffic.apply(s.delta, at: now)
                total.addCounts(s.delta)
                channel.addSessionLatency(s.delta.latency)
            } else {
                table.records.values[i].traffic.apply(nil, at: now)
            }
            table.records.formIndex(after: &i)
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

    mutating func collectGarbage() {
        for (key, row) in endpoints {
            if let r = row.removedAt, now - r > Self.removedRowMs { endpoints[key] = nil; rowsVersion += 1 }
        }
        if table.dropShutDown(before: now - Self.shutdownRowMs) { rowsVersion += 1 }
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

    mutating func computeRevisionShares() -> [RevisionShare] {
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

    func computeLiveFairness() -> FairnessValue {
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
}
