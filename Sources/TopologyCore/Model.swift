/// The whole state grpctop shows, built only from events.
///
/// ```
///   resolvers ─┐
///   subchannels├─► TimedEvent ─► Model.apply ─► [Effect] ─► engine (create/connect/shut down
///   stats tick ├┘                    │                       subchannels, new picker, …)
///   user       ┘                     ▼
///                             view / batch / recorder
/// ```
/// `apply` is pure: no clock (time comes stamped on the event), no I/O, no randomness. It
/// dispatches: resolver answers to `Model+Resolver.swift`, subchannel reports and the LB policy
/// tree (`lb`, see `LB/`) to `Model+Subchannels.swift`, stats ticks to `Model+Stats.swift`. A
/// replay of the same events rebuilds the same model, with the same subchannel ids, while its
/// effects are simply dropped.
///
/// A channel is *driven* (our own client: `lb` is a policy that decides) or *observed* (another
/// process's channel or a proxy's cluster: `lb` is `Observed`, which mirrors what the source
/// reports). Both fill the same rows.
public struct Model: Sendable {
    public internal(set) var session: SessionInfo?
    public internal(set) var now: Millis = 0
    /// The driven policy the user chose (`--lb`, `l`).
    public internal(set) var policy: LBPolicy = .roundRobin
    /// The root of the LB policy tree.
    public internal(set) var lb: AnyPolicy = LBPolicy.roundRobin.make()
    public internal(set) var traffic: TrafficSetting = .rate(20)
    public internal(set) var resolver = ResolverState()
    /// Endpoint rows, including ones removed in the last `removedRowMs` (shown struck out).
    public internal(set) var endpoints: [EndpointKey: EndpointRow] = [:]
    /// The subchannels every policy of the tree manages.
    public internal(set) var table = SubchannelTable()
    public var subchannels: [SubchannelID: SubchannelRecord] { _read { yield table.records } }
    public internal(set) var backends: [String: BackendRecord] = [:]
    /// Every RPC, whatever happened to it. Its latency is the session histogram only: no 10 s
    /// percentiles (`recentPercentile` is nil).
    public internal(set) var channel = TrafficSeries()
    /// RPCs that never reached a subchannel.
    public internal(set) var unassigned = TrafficSeries()
    public internal(set) var channelState: ConnectivityState = .idle
    public internal(set) var channelQueued = 0
    public internal(set) var log = EventLog()
    public internal(set) var markers: [Marker] = []
    /// Number of GOAWAYs received.
    public internal(set) var goAways = 0
    /// Reconnections (a READY subchannel that lost its connection) by the reason the connection
    /// ended (`GOAWAY NO_ERROR`, `connection reset`…).
    public internal(set) var reconnectReasons: [String: Int] = [:]
    /// An observed process's channels and servers, as last reported (`grpctop attach`).
    public internal(set) var observedProcess: ObservedProcess?
    /// An xDS client's control plane, connection and resource versions (`xds:///` targets).
    public internal(set) var xds: XDSStatus?
    /// A proxy's level (`--envoy-admin`): its cluster's hosts, health and requests.
    public internal(set) var proxy: ProxyView?
    public var reconnects: Int { reconnectReasons.values.reduce(0, +) }

    var lastPicker: PickerSpec?

    public static let recentMs: Millis = 10_000
    public static let removedRowMs: Millis = 10_000
    public static let shutdownRowMs: Millis = 10_000

    public init() {}

    public var tickMs: Int { session?.tickMs ?? 250 }

    /// Whether the channel is another process's (or a proxy's), read rather than run.
    public var isObserved: Bool { lb.policy is Observed }

    /// A tree the resolver chose (xDS), not the user's `--lb`.
    public var isXDS: Bool { PolicyTrees.isXDS(lb) }

    /// What the header and snapshots name as the policy: the driven one, `observed`, or `xds`
    /// (the control plane's tree).
    public var policyName: String { isObserved ? Observed.name : (isXDS ? "xds" : policy.rawValue) }

    /// The policy tree as it stands (states, weights, the priority in use and why).
    public var policyTree: PolicyDescription { lb.describe(table: table) }

    /// Changes whenever the set or order of rows may have changed (endpoints, subchannels,
    /// backends): a view may reuse its sorted rows while it stays the same.
    public internal(set) var rowsVersion = 0
    var fairnessCache = FairnessValue(index: nil, word: "no traffic")
    var revisionSharesCache: [RevisionShare] = []
    var revisionMap: RevisionMap?
    /// RPCs all backends completed in the last 10 s (shares), and the busiest second any backend
    /// had in the last minute (sparkline scale): computed once per stats tick.
    public internal(set) var backendsCompleted10s = 0
    public internal(set) var backendsPeakPerSecond = 0.0

    var topologyChanged = true

    // MARK: - apply

    /// Applies one event and returns what the engine must do about it.
    public mutating func apply(_ timed: TimedEvent) -> [Effect] {
        now = max(now, timed.at)
        table.now = now
        var effects: [Effect] = []
        switch timed.event {
        case .sessionStarted(let info):
            session = info
            policy = info.policy
            traffic = info.traffic
            topologyChanged = true
            if info.observed == true {
                lb = AnyPolicy(Observed())
                log.append(now, .info, "attached to \(info.target): its channel is read, not driven (grpctop sends no RPCs)")
            } else {
                table.healthChecking = healthCheckingApplies(to: info.policy)
                lb = wrapped(info.policy.make())
                log.append(now, .info, "watching \(info.target) with \(info.policy.rawValue), \(info.rpc), \(info.traffic)")
                if let s = info.healthCheckService {
                    log.append(now, .info, "health checking (A17) with service \(s.isEmpty ? "\"\" (the whole server)" : s)\(info.policy == .pickFirst ? ": not used by pick_first" : "")")
                }
                if let od = info.outlierDetection { log.append(now, .info, "outlier detection (A50): \(od.summary)") }
            }
        case .resolverUpdated(let result):
            if let name = result.lbTree, !isXDS, let tree = PolicyTrees.named(name) {
                log.append(now, .info, "LB policy: \(name) (chosen by the resolver)")
                switchPolicy(to: tree)
            }
            // An unchanged answer (a DNS poll, a re-list) only refreshes the resolver's status:
            // no subchannel churn, no new rows.
            if applyResolverResult(result) {
                updatePolicy()
                topologyChanged = true
            }
        case .resolverFailed(let failure):
            if resolver.error == nil || resolver.error?.message != failure.message {
                log.append(now, .error, "resolver: \(failure.message)\(resolver.endpoints.isEmpty ? "" : " (keeping \(resolver.endpoints.count) endpoints)")")
            }
            resolver.error = ResolverState.Failure(message: failure.message, since: resolver.error?.since ?? now, last: now)
            resolver.failures += 1
            resolver.info.merge(failure.info) { $1 }
            // No endpoints ever: the channel is TRANSIENT_FAILURE and RPCs fail fast (gRPC).
            if resolver.updates == 0 { topologyChanged = true }
        case .resolverStatus(let info):
            resolver.info.merge(info) { $1 }
        case .subchannel(let id, let event):
            applySubchannel(id, event)
        case .observedChannel(let report):
            // Its subchannels' addresses are the observed channel's endpoint list.
            if applyResolverResult(ResolverResult(endpoints: report.subchannels.map(\.endpoint), backends: report.expectedBackends)) {
                topologyChanged = true
            }
            if let p = report.process {
                for n in p.notes ?? [] where !(observedProcess?.notes ?? []).contains(n) { log.append(now, .warning, n) }
                observedProcess = p
            }
            applyObserved(report)
        case .stats(let tick):
            applyStats(tick)
            lb.tick(table: &table)
        case .policyChanged(let p):
            if isXDS {
                log.append(now, .info, "the control plane chooses the policy (xds): \(p.rawValue) not applied")
                break
            }
            guard p != policy, !isObserved else { break }
            log.append(now, .info, "LB policy \(policy.rawValue) → \(p.rawValue)")
            policy = p
            setHealthChecking(healthCheckingApplies(to: p))
            switchPolicy(to: wrapped(p.make()))
        case .trafficChanged(let t):
            guard t != traffic else { break }
            log.append(now, .info, "traffic \(traffic) → \(t)")
            traffic = t
            effects.append(.setTraffic(t))
        case .marker(let label):
            markers.append(Marker(at: now, label: label))
            log.append(now, .marker, label.isEmpty ? "marker" : "marker: \(label)")
        case .reconnectRequested(let id):
            guard let sc = subchannels[id], sc.state == .ready, !isObserved else {
                log.append(now, .info, "subchannel #\(id): no connection to renew (not READY)")
                break
            }
            log.append(now, .info, "subchannel #\(id) \(sc.endpoint.displayName): new connection requested")
            effects.append(.reconnect(id))
        case .xdsStatus(let status):
            applyXDSStatus(status)
        case .proxyReport(let report):
            applyProxyReport(report, intervalMs: report.intervalMs ?? 1000)
        case .proxyFailed(let message):
            applyProxyFailure(message)
        case .channelChosen(let id):
            guard isObserved, id != observedProcess?.watched else { break }
            let target = observedProcess?.channels.first { $0.id == id }?.target
            log.append(now, .info, "watching channel #\(id)\(target.map { " \($0)" } ?? "") (chosen)")
            effects.append(.watchChannel(id))
        case .healthCheckChanged(let service):
            guard var info = session, !isObserved, info.healthCheckService != service else { break }
            info.healthCheckService = service
            session = info
            log.append(now, .info, service.map { "health checking (A17) on, service \($0.isEmpty ? "\"\"" : $0)\(policy == .pickFirst ? ": not used by pick_first" : "")" } ?? "health checking off")
            setHealthChecking(healthCheckingApplies(to: policy))
            topologyChanged = true
        case .resolutionRequested:
            log.append(now, .info, "re-resolution requested by the user")
            effects.append(.requestResolution(.user))
        case .notice(let n):
            let level: LogEntry.Level = switch n.level {
            case .info: .info
            case .warning: .warning
            case .error: .error
            case .caption: .caption
            }
            log.append(now, level, n.text)
        }
        effects += takeTableWork()
        // Channel state and picker only change with the topology (not with stats ticks): with
        // thousands of subchannels this keeps `apply` O(1) for most events.
        if topologyChanged {
            topologyChanged = false
            rowsVersion += 1
            updateChannelState()
            effects += pickerEffect()
        }
        if timed.event.carriesStats {
            fairnessCache = computeLiveFairness()
            var total = 0
            var peak = 0.0
            for b in backends.values {
                total += b.traffic.completed(lastSeconds: 10, tickMs: tickMs)
                peak = max(peak, b.traffic.peakPerSecond(tickMs: tickMs))
            }
            backendsCompleted10s = total
            backendsPeakPerSecond = peak
            revisionSharesCache = computeRevisionShares()
        }
        return effects
    }

    /// The effects and log lines the policies left in the table while this event was applied.
    private mutating func takeTableWork() -> [Effect] {
        let work = table.takeWork()
        for line in work.log { log.append(now, line.level, line.text) }
        if table.changed {
            table.changed = false
            topologyChanged = true
        }
        return work.effects
    }

    // MARK: - derived views

    /// The latest caption (a demo step's "what is happening, what to look at").
    public var caption: String? { log.entries.last { $0.level == .caption }?.text }

    /// A `grpctop demo` session (demo-only keys apply).
    public var isDemo: Bool { session?.resolver == "demo" }

    /// Subchannels not SHUTDOWN.
    public var liveSubchannelCount: Int { table.liveCount }

    /// Endpoint rows in resolver order, removed ones last.
    public var endpointRows: [EndpointRow] {
        endpoints.values.sorted { a, b in
            if (a.removedAt == nil) != (b.removedAt == nil) { return a.removedAt == nil }
            return a.order != b.order ? a.order < b.order : a.endpoint.key < b.endpoint.key
        }
    }

    public var subchannelRows: [SubchannelRecord] { subchannels.values.sorted { $0.id < $1.id } }

    /// The live subchannel serving an endpoint, if any.
    public func subchannel(for key: EndpointKey) -> SubchannelRecord? {
        table.live(for: key).flatMap { subchannels[$0] }
    }
}
