/// The rows and records the model keeps (what the panes show).

public struct ResolverState: Sendable, Codable {
    public struct Failure: Sendable, Equatable, Codable {
        public var message: String
        public var since: Millis
        public var last: Millis
    }
    public var endpoints: [Endpoint] = []
    public var lastUpdate: Millis?
    public var updates = 0
    public var failures = 0
    public var error: Failure?
    public var info: [String: String] = [:]
    /// Pods behind the endpoints, when the resolver knows them (`ResolverResult.backends`).
    public var backends: [String] = []
}

public struct EndpointRow: Sendable, Codable {
    public var endpoint: Endpoint
    public var firstSeen: Millis
    public var conditionSince: Millis
    public var removedAt: Millis?
    public var order: Int
    /// Part of the first answer (not marked as "added").
    public var initial: Bool

    public func isNew(now: Millis) -> Bool { !initial && removedAt == nil && now - firstSeen < Model.recentMs }
}

public struct StateTransition: Sendable, Equatable, Codable {
    public var at: Millis
    public var from: ConnectivityState
    public var to: ConnectivityState
    public var reason: String?
}

public struct GoAwayInfo: Sendable, Equatable, Codable {
    public var at: Millis
    public var code: String
    public var lastStreamID: Int
    public var debug: String
}

public struct SubchannelRecord: Sendable, Codable {
    public let id: SubchannelID
    public let key: EndpointKey
    public var endpoint: Endpoint
    public let created: Millis
    public private(set) var state: ConnectivityState = .idle
    public private(set) var stateSince: Millis
    public private(set) var transitions: [StateTransition] = []
    public var backoffUntil: Millis?
    public var lastDisconnectReason: String?
    public var connectMs: Int64?
    public var local: String?
    public var remote: String?
    public var connections = 0
    public var maxConcurrentStreams: Int?
    public var settingsSeen = false
    public var activeStreams = 0
    public var queued = 0
    public var traffic = TrafficSeries()
    public var lastGoAway: GoAwayInfo?
    public var goAways = 0
    public var rttMicros: Int64?
    /// An observed subchannel's connection and lifetime counts, as its process reports them.
    public var observedSocket: ObservedSocket?
    public var observedLifetime: ObservedCalls?
    /// gRFC A17: the health-check stream's last word on the current connection (nil: not
    /// checked — health checking off, pick_first, or not READY).
    public var health: SubchannelHealth?

    init(id: SubchannelID, endpoint: Endpoint, created: Millis) {
        self.id = id
        self.key = endpoint.key
        self.endpoint = endpoint
        self.created = created
        self.stateSince = created
    }

    mutating func transition(to: ConnectivityState, reason: String?, at: Millis) {
        transitions.append(StateTransition(at: at, from: state, to: to, reason: reason))
        if transitions.count > 64 { transitions.removeFirst(transitions.count - 64) }
        if state == .ready || (to == .transientFailure), let reason { lastDisconnectReason = reason }
        if to != .transientFailure { backoffUntil = nil }
        state = to
        stateSince = at
    }

    /// The stream limit in force: the peer's MAX_CONCURRENT_STREAMS, or NIO's cap of 100 when
    /// the peer sent none.
    public var effectiveStreamLimit: Int { maxConcurrentStreams ?? 100 }

    /// The state the LB policies see: with health checking (A17), a READY connection is
    /// CONNECTING until the first answer, TRANSIENT_FAILURE while the server says it is not
    /// serving (or the check fails), READY when it serves (or has no health service).
    public var lbState: ConnectivityState {
        guard state == .ready, let h = health else { return state }
        return h.lbState
    }
}

/// A subchannel's health as its health-check stream reports it (gRFC A17).
public struct SubchannelHealth: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        /// The Watch call is open, no answer yet.
        case checking
        case serving = "SERVING"
        case notServing = "NOT_SERVING"
        case unknown = "UNKNOWN"
        case serviceUnknown = "SERVICE_UNKNOWN"
        /// The server has no health service: healthy, not checked.
        case unimplemented = "UNIMPLEMENTED"
        /// The call failed; retried after `retryAt`.
        case failed
    }
    public var status: Status
    public var since: Millis
    /// The failure or the UNIMPLEMENTED message.
    public var detail: String?
    public var retryAt: Millis?
    /// Answers received on this connection.
    public var answers = 0

    public init(status: Status, since: Millis, detail: String? = nil) {
        self.status = status
        self.since = since
        self.detail = detail
    }

    public var lbState: ConnectivityState {
        switch status {
        case .checking: .connecting
        case .serving, .unimplemented: .ready
        case .notServing, .unknown, .serviceUnknown, .failed: .transientFailure
        }
    }

    /// Whether the Watch stream holds a stream slot now.
    public var holdsStream: Bool {
        switch status {
        case .unimplemented, .failed: false
        default: true
        }
    }

    /// The word after `READY · ` in the STATE column, nil when healthy.
    public var word: String? {
        switch status {
        case .checking: "checking"
        case .serving, .unimplemented: nil
        case .notServing, .unknown, .serviceUnknown: "unhealthy"
        case .failed: "check err"
        }
    }
}

public struct BackendRecord: Sendable, Codable {
    public let name: String
    public let firstSeen: Millis
    public var traffic = TrafficSeries()
    init(name: String, firstSeen: Millis) {
        self.name = name
        self.firstSeen = firstSeen
    }
}

public struct Marker: Sendable, Equatable, Codable {
    public var at: Millis
    public var label: String
}

public struct LogEntry: Sendable, Equatable, Codable {
    public enum Level: String, Sendable, Codable { case info, warning, error, marker, caption }
    public var at: Millis
    public var level: Level
    public var text: String
}

/// The event log: the last `capacity` entries, oldest first.
public struct EventLog: Sendable, Codable {
    public static let capacity = 1000
    public private(set) var entries: [LogEntry] = []
    public private(set) var total = 0
    mutating func append(_ at: Millis, _ level: LogEntry.Level, _ text: String) {
        entries.append(LogEntry(at: at, level: level, text: text))
        total += 1
        if entries.count > Self.capacity + 100 { entries.removeFirst(entries.count - Self.capacity) }
    }
}

/// pick_first's state in keyframes written before policies were types (read back only).
struct PickFirstState: Sendable, Codable {
    var list: [EndpointKey] = []
    var index = 0
    var selected: SubchannelID?
    var passFailed = false
}

struct FairnessValue: Sendable, Codable {
    var index: Double?
    var word: String
}

struct RevisionShare: Sendable, Codable {
    var revision: String
    var share: Double
}

/// The revision of each backend and when each revision was first seen, for one `rowsVersion`.
/// Derived from the rows, so a keyframe does not hold it: read back, it is rebuilt on the next tick.
struct RevisionMap: Sendable, Codable {
    var version: Int
    var ofBackend: [String: String] = [:]
    var firstSeen: [String: Int64] = [:]
    init(version: Int) { self.version = version }
    init(from decoder: Decoder) throws { self.init(version: -1) }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encodeNil()
    }
}


/// "850ms", "3.2s", "1m05s", "2h03m".
public func formatDuration(_ ms: Millis) -> String {
    let ms = max(0, ms)
    if ms < 1000 { return "\(ms)ms" }
    if ms < 10_000 { return "\(ms / 1000).\((ms % 1000) / 100)s" }
    let s = ms / 1000
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m\(pad2(s % 60))s" }
    return "\(s / 3600)h\(pad2((s % 3600) / 60))m"
}

func pad2(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
