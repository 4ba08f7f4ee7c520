/// Connectivity states of a subchannel or a channel, as grpc/grpc
/// `doc/connectivity-semantics-and-api.md` defines them.
public enum ConnectivityState: String, Sendable, Codable, CaseIterable {
    case idle = "IDLE"
    case connecting = "CONNECTING"
    case ready = "READY"
    case transientFailure = "TRANSIENT_FAILURE"
    case shutdown = "SHUTDOWN"

    /// A short form for narrow columns.
    public var short: String {
        switch self {
        case .idle: "IDLE"
        case .connecting: "CONN"
        case .ready: "READY"
        case .transientFailure: "TF"
        case .shutdown: "SHUT"
        }
    }
}
