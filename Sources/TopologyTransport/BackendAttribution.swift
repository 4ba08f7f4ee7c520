import TopologyCore

/// Which backend an RPC is credited to — decided here and nowhere else.
///
/// - Without `--identity-header` the backend is the endpoint the RPC's subchannel connects to
///   (its pod name when the resolver knows it): the RPC is counted when its stream starts and
///   when it finishes, like the subchannel's own counters.
/// - With `--identity-header NAME` (behind a proxy or a ClusterIP, where one connection reaches
///   many pods) the backend is what the server's answer names in that header, known only at the
///   end: the RPC is counted then, or under `(no NAME)` when the answer did not carry it.
/// - An RPC that never reached a subchannel is *unassigned*.
///
/// The engine's statistics tick reads the counts (`tickRows`). Confined to the engine's loop.
final class BackendAttribution {
    let identityHeader: String?
    private var slots: [String: StatsSlot] = [:]
    let unassigned = StatsSlot()

    init(identityHeader: String?) { self.identityHeader = identityHeader }

    /// The slot a new subchannel credits, or nil when the answer decides (identity header).
    func slot(forSubchannelOf endpoint: Endpoint) -> StatsSlot? {
        identityHeader == nil ? slot(named: endpoint.displayName) : nil
    }

    /// A stream started on a subchannel.
    func started(on sc: Subchannel) {
        sc.backendSlot?.recordStarted()
    }

    /// An RPC ended on a subchannel (answered, failed or cancelled).
    func finished(_ call: RPCCall, on sc: Subchannel, code: Int, micros: UInt64) {
        if let header = identityHeader {
            let backend = slot(named: call.identity ?? "(no \(header))")
            backend.recordStarted()
            backend.recordFinished(code: code, micros: micros, messages: call.messagesReceived)
        } else {
            sc.backendSlot?.recordFinished(code: code, micros: micros, messages: call.messagesReceived)
        }
    }

    /// An RPC that never reached a subchannel ended.
    func finishedUnassigned(code: Int, micros: UInt64) {
        unassigned.recordFinished(code: code, micros: micros, messages: 0)
    }

    /// Backends with something new since the last tick, by name.
    func tickRows() -> [BackendTick] {
        slots.sorted { $0.key < $1.key }.compactMap { name, slot in
            slot.isDirty ? BackendTick(name: name, delta: slot.take()) : nil
        }
    }

    private func slot(named name: String) -> StatsSlot {
        if let s = slots[name] { return s }
        let s = StatsSlot()
        slots[name] = s
        return s
    }
}
