/// Milliseconds since the session started. The model's only notion of time: `Model.apply`
/// never reads a clock, it takes the time stamped on each event.
public typealias Millis = Int64

/// Subchannel ids are handed out by the model (so a replay assigns the same ones).
public typealias SubchannelID = Int

/// One input of the model, stamped with the time the engine received it.
public struct TimedEvent: Sendable, Codable, Equatable {
    public var at: Millis
    public var event: Event

    public init(at: Millis, _ event: Event) {
        self.at = at
        self.event = event
    }
}

/// Everything the model consumes. Live runs, tests and replays feed the same events.
public enum Event: Sendable, Codable, Equatable {
    /// The first event of every session: what is being watched and how.
    case sessionStarted(SessionInfo)
    /// A resolver produced a (possibly empty) set of endpoints.
    case resolverUpdated(ResolverResult)
    /// A resolver failed; the last good endpoints stay in use, as gRPC does.
    case resolverFailed(ResolverFailure)
    /// A resolver's own status changed (policy, TTL, next lookup, watch state…) without new endpoints.
    case resolverStatus([String: String])
    /// Something happened to one subchannel.
    case subchannel(SubchannelID, SubchannelEvent)
    /// An observed channel's state and subchannels, as its source read them (channelz, a proxy's
    /// admin API): the model mirrors them, no policy runs.
    case observedChannel(ObservedChannel)
    /// The statistics collector's periodic tick (every `SessionInfo.tickMs`).
    case stats(StatsTick)
    /// The user (or a demo step) switched the load-balancing policy.
    case policyChanged(LBPolicy)
    /// The traffic rate or concurrency changed.
    case trafficChanged(TrafficSetting)
    /// A marker set by the user (`m`) or a scenario step.
    case marker(String)
    /// A line for the event log that is not tied to a subchannel (demo captions, notices, errors).
    case notice(Notice)
    /// The user (`x`) or a demo step asked for a new connection on a subchannel: the old one
    /// drains like after a GOAWAY. Behind a ClusterIP the new one may land on another pod.
    case reconnectRequested(SubchannelID)
    /// The user (`r`) asked the resolver for a fresh answer now.
    case resolutionRequested
    /// The user chose another of an observed process's channels to watch (attach's Channels
    /// pane, Enter).
    case channelChosen(Int64)
    /// An xDS client's view of its control plane changed (connection, versions, ACK/NACK).
    case xdsStatus(XDSStatus)
    /// A proxy's admin API was read (`--envoy-admin`): its cluster's hosts beside the client.
    case proxyReport(ObservedChannel)
    /// The proxy's admin API could not be read (the picture is kept).
    case proxyFailed(String)
    /// Client-side health checking (A17) switched on with this service name, or off (nil).
    case healthCheckChanged(String?)
}

extension Event {
    /// Whether the model counts RPCs from it (a stats tick, or an observed source's report).
    public var carriesStats: Bool {
        switch self {
        case .stats, .observedChannel, .proxyReport: true
        default: false
        }
    }
}

public struct SessionInfo: Sendable, Codable, Equatable {
    public var target: String
    public var resolver: String
    public var policy: LBPolicy
    public var rpc: String
    /// `nil`: backends are the endpoints themselves; otherwise the response header naming the backend.
    public var identityHeader: String?
    public var traffic: TrafficSetting
    public var tickMs: Int
    /// Wall-clock start, seconds since 1970.
    public var startedAt: Double
    public var host: String
    public var version: String
    /// An observed session (`grpctop attach`): another process's channel, read, not driven;
    /// grpctop sends no traffic. nil in recordings made before.
    public var observed: Bool?
    /// gRFC A17: the service name of client-side health checks (`--health-check [SERVICE]`;
    /// "" is the server as a whole); nil: no health checking.
    public var healthCheckService: String?
    /// gRFC A50: outlier detection around the chosen policy (`--outlier-detection`); nil: none.
    public var outlierDetection: OutlierDetectionConfig?

    public init(
        target: String, resolver: String, policy: LBPolicy, rpc: String, identityHeader: String?,
        traffic: TrafficSetting, tickMs: Int = 250, startedAt: Double, host: String, version: String, observed: Bool? = nil,
        healthCheckService: String? = nil, outlierDetection: OutlierDetectionConfig? = nil
    ) {
        self.observed = observed
        self.healthCheckService = healthCheckService
        self.outlierDetection = outlierDetection
        self.target = target
        self.resolver = resolver
        self.policy = policy
        self.rpc = rpc
        self.identityHeader = identityHeader
        self.traffic = traffic
        self.tickMs = tickMs
        self.startedAt = startedAt
        self.host = host
        self.version = version
    }
}

public enum TrafficSetting: Sendable, Codable, Equatable, CustomStringConvertible {
    /// Open loop: this many RPCs a second, whatever the latency.
    case rate(Double)
    /// Closed loop: this many RPCs in flight at all times.
    case concurrency(Int)

    public var description: String {
        switch self {
        case .rate(let r): r == r.rounded() ? "\(Int(r)) rps" : "\(r) rps"
        case .concurrency(let c): "\(c) in flight"
        }
    }

    /// `+` / `-` in the UI: ×2 or ÷2, never below 1 (or 0.25 rps).
    public func scaled(up: Bool) -> TrafficSetting {
        switch self {
        case .rate(let r): .rate(up ? min(r * 2, 1_000_000) : max(r / 2, 0.25))
        case .concurrency(let c): .concurrency(up ? min(c * 2, 100_000) : max(c / 2, 1))
        }
    }
}

public struct ResolverResult: Sendable, Codable, Equatable {
    public var endpoints: [Endpoint]
    /// Resolver-specific status to show (policy, TTL, last answer, next lookup, watch state…).
    public var info: [String: String]
    /// The pods known to stand behind these endpoints when they are not the endpoints themselves
    /// (a ClusterIP's EndpointSlices behind its one virtual IP): shown with their share, even a
    /// zero one, and counted in fairness.
    public var backends: [String]?

    /// The policy tree the resolver asks for (`xds`: see `PolicyTrees`), in place of the
    /// user's `--lb`.
    public var lbTree: String?

    public init(endpoints: [Endpoint], info: [String: String] = [:], backends: [String]? = nil, lbTree: String? = nil) {
        self.endpoints = endpoints
        self.info = info
        self.backends = backends
        self.lbTree = lbTree
    }
}

public struct ResolverFailure: Sendable, Codable, Equatable {
    public var message: String
    public var info: [String: String]
    public init(message: String, info: [String: String] = [:]) {
        self.message = message
        self.info = info
    }
}

public struct Notice: Sendable, Codable, Equatable {
    public enum Level: String, Sendable, Codable { case info, warning, error, caption }
    public var level: Level
    public var text: String
    public init(_ level: Level, _ text: String) {
        self.level = level
        self.text = text
    }
}

/// What a subchannel reports. Reasons are worded as gRFC A94 does (`GOAWAY NO_ERROR`,
/// `connection reset`, `connection timed out`, `connection refused`, `subchannel shutdown`…).
public enum SubchannelEvent: Sendable, Codable, Equatable {
    case stateChanged(to: ConnectivityState, reason: String?, backoffMs: Int64?)
    /// TCP (and TLS) connected; SETTINGS not yet seen.
    case connected(local: String, remote: String, connectMs: Int64)
    /// The peer's SETTINGS: its MAX_CONCURRENT_STREAMS (nil when it sent none).
    case settingsReceived(maxConcurrentStreams: Int?)
    case goAwayReceived(code: String, lastStreamID: Int, debug: String)
    case pingRTT(micros: Int64)
    /// gRFC A17: the subchannel's health-check stream (`grpc.health.v1.Health/Watch`).
    case health(HealthReport)
}

/// What a subchannel's health-check stream reported (gRFC A17).
public enum HealthReport: Sendable, Codable, Equatable {
    /// A Watch call started (the connection just became READY, or a retry): no answer yet.
    case watching
    /// The server answered: `SERVING`, `NOT_SERVING`, `UNKNOWN` or `SERVICE_UNKNOWN`.
    case answered(String)
    /// The call ended UNIMPLEMENTED: the server has no health service; the subchannel counts as
    /// healthy and is not checked again on this connection.
    case unimplemented(String)
    /// The call ended with another status (or was reset): TRANSIENT_FAILURE until the retry,
    /// which starts at once after an answer was received, else after `retryMs` of backoff.
    case failed(String, retryMs: Int64?)
}

/// Effects `Model.apply` asks the engine to carry out. Replays ignore them.
public enum Effect: Sendable, Equatable {
    case createSubchannel(SubchannelID, Endpoint)
    case connect(SubchannelID)
    case shutDown(SubchannelID)
    case updatePicker(PickerSpec)
    case requestResolution(ResolutionRequest)
    case setTraffic(TrafficSetting)
    /// Open a new connection on a READY subchannel; the old one finishes its streams.
    case reconnect(SubchannelID)
    /// Watch another of the observed process's channels (its channelz id).
    case watchChannel(Int64)
    /// gRFC A17: start (or stop) the health-check stream of a READY subchannel.
    case startHealthCheck(SubchannelID)
    case stopHealthCheck(SubchannelID)
}
