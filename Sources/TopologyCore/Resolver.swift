/// The contract between a resolver and the engine.
///
/// A resolver turns a target into endpoint sets and *pushes* them into the event stream as
/// `Event.resolverUpdated` (or `Event.resolverFailed`), from any thread:
///
/// - **Updates are whole sets.** Each `resolverUpdated` replaces the previous set; the model
///   diffs it (by `Endpoint.key`, order-independent) to decide which subchannels to create or
///   shut down. Metadata (pod, node, zone, conditions) may change without the addresses changing.
/// - **Empty sets are real.** A resolver that finds zero endpoints (a Service scaled to zero)
///   pushes an empty `resolverUpdated`; it must not skip it. The channel then goes
///   TRANSIENT_FAILURE and RPCs fail fast, as gRPC does.
/// - **Errors keep the last good set.** A lookup or watch failure is pushed as `resolverFailed`;
///   the model keeps the endpoints it has and shows the error and its age until the next
///   successful update (gRPC's behaviour). A resolver retries on its own schedule.
/// - **Re-resolution is a request, not a command.** The engine calls `requestResolution` when a
///   subchannel disconnects or receives GOAWAY (as gRPC does) or when the user asks; push-based
///   resolvers (watches) may ignore it, pull-based ones (DNS) apply their own rate limit.
/// - **Status is separate from data.** A resolver may push `resolverStatus` (refresh policy, TTL,
///   next lookup, watch state) at any time without changing endpoints.
/// - **Lifecycle.** `start` is called once; after `stop` returns the resolver pushes nothing.
public protocol EndpointResolver: AnyObject, Sendable {
    /// A short name for the header ("file", "static", "dns", "kubernetes", "etcd").
    var name: String { get }
    /// Begins resolving; every result goes to `sink`, which may be called from any thread.
    func start(_ sink: @escaping @Sendable (Event) -> Void)
    /// Asks for a fresh resolution: soon (within the resolver's rate limit) after a disconnect,
    /// at once when the user asks.
    func requestResolution(_ request: ResolutionRequest)
    func stop()
}

/// Why the channel asks its resolver to look again.
public enum ResolutionRequest: Sendable, Equatable, CustomStringConvertible {
    /// A READY subchannel lost its connection (or got GOAWAY), as gRPC re-resolves then.
    case disconnected(SubchannelID)
    /// The user asked (`r`): a rate-limited resolver answers at once.
    case user

    public var description: String {
        switch self {
        case .disconnected(let id): "subchannel #\(id) disconnected"
        case .user: "user request"
        }
    }
}
