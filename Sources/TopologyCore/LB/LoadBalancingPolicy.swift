/// gRPC's load-balancing policy tree, as types.
///
/// A policy gets the endpoints it balances over, manages their subchannels in the channel's
/// `SubchannelTable` (which exist, which to connect, which to shut down), aggregates their states
/// into its own connectivity state, and builds the picker RPCs are sent with. A parent policy
/// (priority, weighted_target, outlier detection — as gRPC nests them for xDS) holds child
/// policies, hands each its part of the endpoints, forwards the subchannel changes of the
/// subchannels a child owns, and combines their states and pickers.
///
/// Policies are pure values: no clock (the table carries the event's time), no I/O, no randomness
/// (the engine's picker draws). A keyframe encodes the tree, so a replay resumes mid-session with
/// the same decisions.
///
/// | name            | type         | file              |
/// |-----------------|--------------|-------------------|
/// | `pick_first`    | `PickFirst`  | `PickFirst.swift` |
/// | `round_robin`   | `RoundRobin` | `RoundRobin.swift`|
/// | `least_request` | `LeastRequest` | `LeastRequest.swift` |
/// | (observed)      | `Observed`   | `Observed.swift`  |
public protocol LoadBalancingPolicy: Sendable, Codable {
    /// gRPC's name for it (`round_robin`): the registry key and what the header shows.
    static var name: String { get }
    /// The policy as a flag makes it: no children, nothing owned.
    init()
    /// The endpoints to balance over changed (or the policy was just made: it adopts the live
    /// subchannels of its endpoints that are already in the table).
    mutating func update(endpoints: [Endpoint], table: inout SubchannelTable)
    /// A subchannel changed state. Every policy hears every change; it acts on the ones it owns.
    mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable)
    /// Whether a subchannel belongs to this policy (or one of its children).
    func owns(_ id: SubchannelID) -> Bool
    /// Shuts every subchannel it owns down (a parent dropping a child).
    mutating func shutDownAll(why: String, table: inout SubchannelTable)
    /// The policy's connectivity state; `previous` is what it last reported (sticky
    /// TRANSIENT_FAILURE). Only called after a change, never per RPC.
    func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState
    /// What RPCs are picked from now.
    func pickNode(table: SubchannelTable) -> any PickNode
    /// Time passed (every stats tick): timers (priority's failover) are checked here.
    mutating func tick(table: inout SubchannelTable)
    /// The tree as it stands, for the view: states, weights, the child in use and why.
    func describe(table: SubchannelTable) -> PolicyDescription
}

extension LoadBalancingPolicy {
    public mutating func tick(table: inout SubchannelTable) {}
    public func describe(table: SubchannelTable) -> PolicyDescription {
        PolicyDescription(name: Self.name, state: state(previous: .idle, table: table))
    }
}

/// One node of a policy tree as the view shows it: the policy, the group it serves under its
/// parent (a cluster, a priority, a locality) with its weight, its state, whether its parent uses
/// it, and a note (priority: which one is in use and why).
public struct PolicyDescription: Sendable, Equatable, Codable {
    public var name: String
    public var label: String?
    public var weight: UInt32?
    public var state: ConnectivityState
    public var inUse: Bool?
    public var note: String?
    public var children: [PolicyDescription] = []
    public init(name: String, state: ConnectivityState, note: String? = nil) {
        self.name = name
        self.state = state
        self.note = note
    }

    /// The node reached by following `labels` from here (`["greeter", "0", "us/zone-a"]`).
    public func find(_ labels: [String]) -> PolicyDescription? {
        guard let first = labels.first else { return self }
        return children.first { $0.label == first }?.find(Array(labels.dropFirst()))
    }
}

/// Policies by name, as gRPC's LB policy registry: how a keyframe's tree is read back, and where
/// a new policy is added.
public enum PolicyRegistry {
    public static let types: [String: any LoadBalancingPolicy.Type] = {
        var d: [String: any LoadBalancingPolicy.Type] = [:]
        for t: any LoadBalancingPolicy.Type in [PickFirst.self, RoundRobin.self, LeastRequest.self, Observed.self, WeightedTarget.self, Priority.self, OutlierDetection.self] {
            d[t.name] = t
        }
        return d
    }()
}

/// A policy of any type, encodable as `{"name": …, "state": …}` (a child of a parent policy, the
/// root of the model's tree).
public struct AnyPolicy: Sendable, Codable {
    public var policy: any LoadBalancingPolicy
    public init(_ policy: any LoadBalancingPolicy) { self.policy = policy }

    public var name: String { type(of: policy).name }

    private enum Keys: String, CodingKey { case name, state }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(name, forKey: .name)
        try c.encode(policy, forKey: .state)
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let name = try c.decode(String.self, forKey: .name)
        guard let t = PolicyRegistry.types[name] else {
            throw DecodingError.dataCorruptedError(forKey: .name, in: c, debugDescription: "unknown LB policy \(name)")
        }
        func decode<P: LoadBalancingPolicy>(_: P.Type) throws -> any LoadBalancingPolicy { try c.decode(P.self, forKey: .state) }
        policy = try decode(t)
    }

    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) { policy.update(endpoints: endpoints, table: &table) }
    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        policy.subchannelChanged(id, from: from, to: to, table: &table)
    }
    public func owns(_ id: SubchannelID) -> Bool { policy.owns(id) }
    public mutating func shutDownAll(why: String, table: inout SubchannelTable) { policy.shutDownAll(why: why, table: &table) }
    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState { policy.state(previous: previous, table: table) }
    public func pickNode(table: SubchannelTable) -> any PickNode { policy.pickNode(table: table) }
    public mutating func tick(table: inout SubchannelTable) { policy.tick(table: &table) }
    public func describe(table: SubchannelTable) -> PolicyDescription { policy.describe(table: table) }
}

/// The policies a user picks with `--lb` and cycles with `l`, by gRPC's names.
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

    /// A new policy of this kind, owning nothing yet.
    public func make() -> AnyPolicy {
        let t = PolicyRegistry.types[rawValue]!
        return AnyPolicy(t.init())
    }

    /// `l` in the UI: round_robin → pick_first (watch it collapse) → least_request → round_robin.
    public var next: LBPolicy {
        let all: [LBPolicy] = [.roundRobin, .pickFirst, .leastRequest]
        return all[(all.firstIndex(of: self)! + 1) % all.count]
    }
}
