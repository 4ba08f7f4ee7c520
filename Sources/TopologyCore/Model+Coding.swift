/// A keyframe is the model encoded: the same keys as before policies were types (recordings made
/// by earlier versions replay and seek), plus `lb`, the policy tree. A keyframe without `lb` is
/// read back into the flat policy it was made with (`pickFirst` held pick_first's state).
extension Model: Codable {
    enum CodingKeys: String, CodingKey {
        case session, now, policy, traffic, resolver, endpoints, subchannels, backends, channel, unassigned
        case channelState, channelQueued, log, markers, goAways, reconnectReasons, nextID, liveByKey
        case liveCounts, listed, lb, pickFirst, rowsVersion, fairnessCache, revisionSharesCache
        case backendsCompleted10s, backendsPeakPerSecond, topologyChanged, observedProcess, xds, proxy
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(session, forKey: .session)
        try c.encode(now, forKey: .now)
        try c.encode(policy, forKey: .policy)
        try c.encode(traffic, forKey: .traffic)
        try c.encode(resolver, forKey: .resolver)
        try c.encode(endpoints, forKey: .endpoints)
        try c.encode(table.records, forKey: .subchannels)
        try c.encode(backends, forKey: .backends)
        try c.encode(channel, forKey: .channel)
        try c.encode(unassigned, forKey: .unassigned)
        try c.encode(channelState, forKey: .channelState)
        try c.encode(channelQueued, forKey: .channelQueued)
        try c.encode(log, forKey: .log)
        try c.encode(markers, forKey: .markers)
        try c.encode(goAways, forKey: .goAways)
        try c.encode(reconnectReasons, forKey: .reconnectReasons)
        try c.encode(table.nextID, forKey: .nextID)
        try c.encode(table.liveByKey, forKey: .liveByKey)
        try c.encode(table.liveCounts, forKey: .liveCounts)
        try c.encode(table.listed, forKey: .listed)
        try c.encode(lb, forKey: .lb)
        try c.encode(rowsVersion, forKey: .rowsVersion)
        try c.encode(fairnessCache, forKey: .fairnessCache)
        try c.encode(revisionSharesCache, forKey: .revisionSharesCache)
        try c.encode(backendsCompleted10s, forKey: .backendsCompleted10s)
        try c.encode(backendsPeakPerSecond, forKey: .backendsPeakPerSecond)
        try c.encode(topologyChanged, forKey: .topologyChanged)
        try c.encodeIfPresent(observedProcess, forKey: .observedProcess)
        try c.encodeIfPresent(xds, forKey: .xds)
        try c.encodeIfPresent(proxy, forKey: .proxy)
    }

    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        session = try c.decodeIfPresent(SessionInfo.self, forKey: .session)
        now = try c.decode(Millis.self, forKey: .now)
        policy = try c.decode(LBPolicy.self, forKey: .policy)
        traffic = try c.decode(TrafficSetting.self, forKey: .traffic)
        resolver = try c.decode(ResolverState.self, forKey: .resolver)
        endpoints = try c.decode([EndpointKey: EndpointRow].self, forKey: .endpoints)
        table.records = try c.decode([SubchannelID: SubchannelRecord].self, forKey: .subchannels)
        backends = try c.decode([String: BackendRecord].self, forKey: .backends)
        channel = try c.decode(TrafficSeries.self, forKey: .channel)
        unassigned = try c.decode(TrafficSeries.self, forKey: .unassigned)
        channelState = try c.decode(ConnectivityState.self, forKey: .channelState)
        channelQueued = try c.decode(Int.self, forKey: .channelQueued)
        log = try c.decode(EventLog.self, forKey: .log)
        markers = try c.decode([Marker].self, forKey: .markers)
        goAways = try c.decode(Int.self, forKey: .goAways)
        reconnectReasons = try c.decode([String: Int].self, forKey: .reconnectReasons)
        table.nextID = try c.decode(SubchannelID.self, forKey: .nextID)
        table.liveByKey = try c.decode([EndpointKey: SubchannelID].self, forKey: .liveByKey)
        table.liveCounts = try c.decode([ConnectivityState: Int].self, forKey: .liveCounts)
        table.listed = try c.decodeIfPresent(Set<EndpointKey>.self, forKey: .listed) ?? Set(resolver.endpoints.map(\.key))
        table.now = now
        table.healthChecking = session?.healthCheckService != nil && session?.observed != true && policy != .pickFirst
        if let tree = try c.decodeIfPresent(AnyPolicy.self, forKey: .lb) {
            lb = tree
        } else if policy == .pickFirst {
            let s = try c.decodeIfPresent(PickFirstState.self, forKey: .pickFirst) ?? PickFirstState()
            lb = AnyPolicy(PickFirst(legacy: s.list, index: s.index, selected: s.selected, passFailed: s.passFailed,
                                     endpoints: resolver.endpoints, table: table))
        } else {
            let list = EndpointList(legacy: resolver.endpoints.filter(\.ready), table: table)
            lb = AnyPolicy(policy == .leastRequest ? LeastRequest(legacy: list) : RoundRobin(legacy: list))
        }
        rowsVersion = try c.decode(Int.self, forKey: .rowsVersion)
        fairnessCache = try c.decode(FairnessValue.self, forKey: .fairnessCache)
        revisionSharesCache = try c.decode([RevisionShare].self, forKey: .revisionSharesCache)
        backendsCompleted10s = try c.decode(Int.self, forKey: .backendsCompleted10s)
        backendsPeakPerSecond = try c.decode(Double.self, forKey: .backendsPeakPerSecond)
        topologyChanged = try c.decode(Bool.self, forKey: .topologyChanged)
        observedProcess = try c.decodeIfPresent(ObservedProcess.self, forKey: .observedProcess)
        xds = try c.decodeIfPresent(XDSStatus.self, forKey: .xds)
        proxy = try c.decodeIfPresent(ProxyView.self, forKey: .proxy)
    }
}
