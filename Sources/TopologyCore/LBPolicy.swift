import Foundation

/// Load-balancing policies, with gRPC's names.
public enum LBPolicy: String, Sendable, Codable, CaseIterable {
    /// gRFC A61/A62: one connection; stays on the READY address while it is still in the list.
    case pickFirst = "pick_first"
    /// One subchannel per endpoint, picks READY ones in turn from a random start.
    case roundRobin = "round_robin"
    /// gRFC A48: two random READY subchannels, the one with fewer outstanding RPCs wins.
    case leastRequest = "least_request"

    public init?(name: String) {
        let n = name.lowercased().replacingOccurrences(of: "-", with: "_")
        self.init(rawValue: n)
    }

    /// `l` in the UI: round_robin → pick_first (watch it collapse) → least_request → round_robin.
    public var next: LBPolicy {
        switch self {
        case .roundRobin: .pickFirst
        case .pickFirst: .leastRequest
        case .leastRequest: .roundRobin
        }
    }
}

/// The per-RPC pick, on the hot path. Pure apart from the random source the caller passes.
public struct Picker: Sendable {
    public private(set) var spec: PickerSpec
    private var next: Int

    public init(spec: PickerSpec, randomStart: Int) {
        self.spec = spec
        self.next = spec.ready.isEmpty ? 0 : abs(randomStart) % spec.ready.count
    }

    /// Returns a READY subchannel, or nil when there is none.
    /// - Parameters:
    ///   - outstanding: RPCs in flight on a subchannel (least_request).
    ///   - random: a random integer source (least_request's two choices).
    public mutating func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? {
        let ready = spec.ready
        guard !ready.isEmpty else { return nil }
        switch spec.policy {
        case .pickFirst:
            return ready[0]
        case .roundRobin:
            if next >= ready.count { next = 0 }
            let id = ready[next]
            next += 1
            return id
        case .leastRequest:
            // gRFC A48 with choice_count = 2: sample with replacement, keep the less loaded.
            let a = ready[abs(random()) % ready.count]
            let b = ready[abs(random()) % ready.count]
            return outstanding(b) < outstanding(a) ? b : a
        }
    }
}
