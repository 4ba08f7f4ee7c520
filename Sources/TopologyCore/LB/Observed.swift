/// An *observed* channel: another process's channel (read through channelz) or a proxy's cluster
/// (read from its admin API). No policy runs here: the source reports the subchannels, their
/// states and the channel's state (`Event.observedChannel`), and this type only mirrors them into
/// the table, so the same panes, statistics, recordings and replays serve it. A *driven* channel
/// is one our own client runs, where a policy (`PickFirst`, `RoundRobin`, `LeastRequest`, or a
/// tree of them) decides.
public struct Observed: LoadBalancingPolicy {
    public static let name = "observed"
    public private(set) var owned = OwnedSubchannels()
    /// The channel's state as the source last reported it.
    private var reported: ConnectivityState = .idle

    public init() {}

    /// A source's report: rows for new subchannels, SHUTDOWN for those gone, states as reported.
    public mutating func apply(_ report: ObservedChannel, table: inout SubchannelTable) {
        reported = report.state
        let wanted = Set(report.subchannels.map(\.endpoint.key))
        for id in owned.ids.sorted() {
            if let key = table.record(id)?.key, !wanted.contains(key) {
                owned.shutDown(id, why: "gone from \(report.source)", table: &table)
            }
        }
        for sub in report.subchannels {
            let id: SubchannelID
            if let existing = table.live(for: sub.endpoint.key) {
                id = existing
                table.refresh(id, endpoint: sub.endpoint)
            } else {
                id = table.create(sub.endpoint, connect: false)
            }
            owned.adopt(id, state: table.state(of: id) ?? .idle)
            table.records[id]?.observedSocket = sub.socket
            table.records[id]?.observedLifetime = sub.lifetime
            if let socket = sub.socket {
                table.records[id]?.remote = socket.remote
                table.records[id]?.local = socket.local
                if let m = socket.peerMaxStreams { table.records[id]?.maxConcurrentStreams = m }
            }
            if let from = table.transition(id, to: sub.state, reason: sub.reason, backoffMs: nil) {
                owned.changed(id, from: from, to: sub.state)
                let why = sub.reason.map { ": \($0)" } ?? ""
                table.logLines.append((sub.state == .transientFailure ? .warning : .info,
                                       "subchannel #\(id) \(sub.endpoint.displayName) \(from.rawValue) → \(sub.state.rawValue)\(why)"))
            }
        }
        table.changed = true
    }

    // A resolver does not feed an observed channel; its source does.
    public mutating func update(endpoints: [Endpoint], table: inout SubchannelTable) {}
    public mutating func subchannelChanged(_ id: SubchannelID, from: ConnectivityState, to: ConnectivityState, table: inout SubchannelTable) {
        owned.changed(id, from: from, to: to)
    }
    public func owns(_ id: SubchannelID) -> Bool { owned.owns(id) }
    public mutating func shutDownAll(why: String, table: inout SubchannelTable) {
        for id in owned.ids.sorted() { owned.shutDown(id, why: why, table: &table) }
    }
    public func state(previous: ConnectivityState, table: SubchannelTable) -> ConnectivityState { reported }
    /// Nothing is picked here: the observed process picks for itself.
    public func pickNode(table: SubchannelTable) -> any PickNode { NoPick() }
}

/// One report from an observed source (one poll): the channel's state, its subchannels, and
/// what each counted since the previous report — the model applies the counts as a stats tick,
/// so rates, shares and fairness come out as for our own client.
public struct ObservedChannel: Sendable, Codable, Equatable {
    /// Where it was read (`channelz 10.0.0.7:50051`, `envoy admin`): in the log's wording.
    public var source: String
    public var state: ConnectivityState
    public var subchannels: [ObservedSubchannel]
    /// Calls the channel saw since the previous report that no subchannel counted (failed
    /// before a pick).
    public var unassigned: RPCDelta?
    /// The rest of the process: its channels and servers (channelz).
    public var process: ObservedProcess?
    /// Every pod the channel should reach, when known from elsewhere (`attach --names`): counted
    /// in fairness with zero when no subchannel of the channel reaches it.
    public var expectedBackends: [String]?
    /// The time between the source's polls, when it is not the session's tick (a proxy beside a
    /// driven channel).
    public var intervalMs: Int?
    public init(source: String, state: ConnectivityState, subchannels: [ObservedSubchannel], unassigned: RPCDelta? = nil,
                process: ObservedProcess? = nil, expectedBackends: [String]? = nil) {
        self.expectedBackends = expectedBackends
        self.source = source
        self.state = state
        self.subchannels = subchannels
        self.unassigned = unassigned
        self.process = process
    }
}

public struct ObservedSubchannel: Sendable, Codable, Equatable {
    public var endpoint: Endpoint
    public var state: ConnectivityState
    public var reason: String?
    /// Calls since the previous report (nil: the source does not count them).
    public var calls: RPCDelta?
    /// Streams open now (started − succeeded − failed on its socket), when known.
    public var activeStreams: Int?
    /// Its connection as the process sees it (channelz's socket: streams, messages, keepalives,
    /// flow-control windows, TLS), when known.
    public var socket: ObservedSocket?
    /// What the process counted for it since the subchannel was created (channelz).
    public var lifetime: ObservedCalls?
    public init(endpoint: Endpoint, state: ConnectivityState, reason: String? = nil, calls: RPCDelta? = nil, activeStreams: Int? = nil,
                socket: ObservedSocket? = nil, lifetime: ObservedCalls? = nil) {
        self.endpoint = endpoint
        self.state = state
        self.reason = reason
        self.calls = calls
        self.activeStreams = activeStreams
        self.socket = socket
        self.lifetime = lifetime
    }
}

/// Calls an observed process counted on a channel or subchannel since it was created.
public struct ObservedCalls: Sendable, Codable, Equatable {
    public var started: Int64
    public var succeeded: Int64
    public var failed: Int64
    /// When the last call started (seconds since 1970), if any.
    public var lastStarted: Double?
    public init(started: Int64, succeeded: Int64, failed: Int64, lastStarted: Double? = nil) {
        self.started = started
        self.succeeded = succeeded
        self.failed = failed
        self.lastStarted = lastStarted
    }
}

/// What an observed process holds besides the watched channel (channelz): all its top channels
/// (and their children), and its servers with the client connections they hold — the
/// server-side picture of load balancing (pod A holds 40 client connections, pod B one).
public struct ObservedProcess: Sendable, Codable, Equatable {
    public var channels: [ObservedChannelRow] = []
    public var servers: [ObservedServer] = []
    /// The channel whose subchannels are shown.
    public var watched: Int64?
    /// What was read: nil for channelz; `envoy 1.40.0` for a proxy's admin API (its
    /// "channels" are clusters).
    public var kind: String?
    public init(channels: [ObservedChannelRow] = [], servers: [ObservedServer] = [], watched: Int64? = nil, kind: String? = nil) {
        self.channels = channels
        self.servers = servers
        self.watched = watched
        self.kind = kind
    }

    /// What the source says beyond the rows (Envoy: panic mode, outlier ejections), this poll.
    public var notes: [String]?

    /// A proxy's clusters rather than a process's channels.
    public var isProxy: Bool { kind?.hasPrefix("envoy") ?? false }
}

public struct ObservedChannelRow: Sendable, Codable, Equatable {
    public var id: Int64
    /// The channel it is nested in (xDS and grpclb make child channels).
    public var parent: Int64?
    public var target: String
    public var state: ConnectivityState
    public var callsStarted: Int64
    public var callsSucceeded: Int64
    public var callsFailed: Int64
    public var subchannels: Int
    /// Calls started and failed per second between the last two polls (nil on the first).
    public var startedPerSecond: Double?
    public var failedPerSecond: Double?
    /// When its last call started (seconds since 1970).
    public var lastCallStarted: Double?
    public init(id: Int64, parent: Int64?, target: String, state: ConnectivityState, callsStarted: Int64, callsSucceeded: Int64, callsFailed: Int64, subchannels: Int,
                startedPerSecond: Double? = nil, failedPerSecond: Double? = nil, lastCallStarted: Double? = nil) {
        self.startedPerSecond = startedPerSecond
        self.failedPerSecond = failedPerSecond
        self.lastCallStarted = lastCallStarted
        self.id = id
        self.parent = parent
        self.target = target
        self.state = state
        self.callsStarted = callsStarted
        self.callsSucceeded = callsSucceeded
        self.callsFailed = callsFailed
        self.subchannels = subchannels
    }
}

public struct ObservedServer: Sendable, Codable, Equatable {
    public var id: Int64
    public var listen: [String]
    public var callsStarted: Int64
    public var callsSucceeded: Int64
    public var callsFailed: Int64
    /// Its client connections (the first `ChannelzClient.maxSocketsPerServer` in detail).
    public var sockets: [ObservedSocket]
    /// Client connections in all, detailed or not.
    public var socketCount: Int
    public init(id: Int64, listen: [String], callsStarted: Int64, callsSucceeded: Int64, callsFailed: Int64, sockets: [ObservedSocket], socketCount: Int) {
        self.id = id
        self.listen = listen
        self.callsStarted = callsStarted
        self.callsSucceeded = callsSucceeded
        self.callsFailed = callsFailed
        self.sockets = sockets
        self.socketCount = socketCount
    }
}

public struct ObservedSocket: Sendable, Codable, Equatable {
    public var id: Int64
    public var remote: String
    public var local: String
    public var streamsStarted: Int64
    public var streamsSucceeded: Int64
    public var streamsFailed: Int64
    public var messagesSent: Int64
    public var messagesReceived: Int64
    public var keepAlivesSent: Int64
    /// Flow-control windows (bytes) of this end and of the peer, when the process reports them.
    public var localWindow: Int64?
    public var remoteWindow: Int64?
    /// The peer's MAX_CONCURRENT_STREAMS, when reported.
    public var peerMaxStreams: Int?
    /// Last message sent and received, last stream created (seconds since 1970).
    public var lastMessageSent: Double?
    public var lastMessageReceived: Double?
    public var lastStreamCreated: Double?
    /// The error code of a GOAWAY the peer sent, if any.
    public var goAwayCode: UInt32?
    /// TLS: the cipher suite and the peer certificate's subject; or the name of another security.
    public var tlsCipher: String?
    public var peerSubject: String?
    public var otherSecurity: String?
    public init(id: Int64, remote: String, local: String, streamsStarted: Int64, streamsSucceeded: Int64, streamsFailed: Int64,
                messagesSent: Int64, messagesReceived: Int64, keepAlivesSent: Int64) {
        self.id = id
        self.remote = remote
        self.local = local
        self.streamsStarted = streamsStarted
        self.streamsSucceeded = streamsSucceeded
        self.streamsFailed = streamsFailed
        self.messagesSent = messagesSent
        self.messagesReceived = messagesReceived
        self.keepAlivesSent = keepAlivesSent
    }
}

extension ObservedSocket {
    /// Streams open now.
    public var activeStreams: Int64 { max(0, streamsStarted &- streamsSucceeded &- streamsFailed) }

    /// "TLS TLS_AES_128_GCM_SHA256, peer CN=web" / "plaintext" / another security's name.
    public var securityText: String {
        if let c = tlsCipher { return "TLS \(c.isEmpty ? "(cipher not reported)" : c)" + (peerSubject.map { ", peer \($0)" } ?? "") }
        if let o = otherSecurity { return o }
        return "plaintext"
    }
}
