/// The model's resolver part: an answer becomes endpoint rows (added, removed, condition
/// changes) and, when it changed anything, a new endpoint list for the LB policy.
extension Model {
    /// Applies an answer; false when it changed nothing but the resolver's status.
    mutating func applyResolverResult(_ result: ResolverResult) -> Bool {
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
}

extension Model {
    /// An xDS status report: kept for the status line; the stream's state changes, a NACK and
    /// a new NACK reason are logged (ACKed versions are logged by the resolver with what changed).
    mutating func applyXDSStatus(_ status: XDSStatus) {
        let before = xds
        if before?.connection != status.connection {
            let level: LogEntry.Level = status.connection.hasPrefix("down") ? .warning : .info
            log.append(now, level, "xDS control plane \(status.server): \(status.connection)")
        }
        for r in status.resources where r.state == "nacked" {
            let old = before?.resources.first { $0.type == r.type && $0.name == r.name }
            if old?.state != "nacked" || old?.nackReason != r.nackReason {
                log.append(now, .error, "\(r.type) \(r.name) NACKed: \(r.nackReason ?? "invalid")\(r.version.isEmpty ? "" : " (keeping v\(r.version))")")
            }
        }
        xds = status
    }
}
