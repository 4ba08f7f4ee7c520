/// What an xDS client knows of its control plane (`xds:///` targets): where it is, the state of
/// the ADS stream, and per resource the version in use, whether the last answer was ACKed or
/// NACKed (and why), and when it changed. The resolver reports it whenever it changes; the
/// model keeps the last one for the status line, snapshots and recordings.
public struct XDSStatus: Sendable, Codable, Equatable {
    /// The control plane (`127.0.0.1:18000`), from the bootstrap.
    public var server: String
    /// `connecting`, `connected`, or `down: <reason>; retry in 2s`.
    public var connection: String
    /// Since when the stream has been in this state (seconds since 1970).
    public var since: Double?
    public var resources: [XDSResourceStatus]
    public init(server: String, connection: String, since: Double? = nil, resources: [XDSResourceStatus] = []) {
        self.server = server
        self.connection = connection
        self.since = since
        self.resources = resources
    }
}

public struct XDSResourceStatus: Sendable, Codable, Equatable {
    /// `LDS`, `RDS`, `CDS`, `EDS`.
    public var type: String
    public var name: String
    /// The version in use (the last ACKed), empty before the first.
    public var version: String
    /// `requested` (no answer yet), `acked`, `nacked`.
    public var state: String
    /// Why the last answer was NACKed (the previous version stays in use).
    public var nackReason: String?
    /// When the version in use arrived (seconds since 1970).
    public var updated: Double?
    public init(type: String, name: String, version: String, state: String, nackReason: String? = nil, updated: Double? = nil) {
        self.type = type
        self.name = name
        self.version = version
        self.state = state
        self.nackReason = nackReason
        self.updated = updated
    }
}

/// Policy trees a resolver asks for (gRPC's service config from the resolver).
public enum PolicyTrees {
    /// xDS (gRFC A27/A28): the route's clusters, weighted → each cluster's priorities → the
    /// priority's localities, weighted → round_robin over the locality's endpoints. The
    /// endpoints carry `cluster`, `cluster_weight`, `priority`, `locality` and
    /// `locality_weight` in their metadata.
    public static func xds() -> AnyPolicy {
        let localities = WeightedTarget(groupKey: "locality", weightKey: "locality_weight", child: AnyPolicy(RoundRobin()))
        let priorities = Priority(child: AnyPolicy(localities))
        return AnyPolicy(WeightedTarget(groupKey: "cluster", weightKey: "cluster_weight", child: AnyPolicy(priorities)))
    }

    public static func named(_ name: String) -> AnyPolicy? { name == "xds" ? xds() : nil }

    /// Whether `tree` is the xDS tree.
    public static func isXDS(_ tree: AnyPolicy) -> Bool { (tree.policy as? WeightedTarget)?.groupKey == "cluster" }
}
