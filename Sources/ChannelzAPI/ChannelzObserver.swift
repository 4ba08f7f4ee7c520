import Foundation
import TopologyCore

/// One channelz poll of a process: its top channels, and for the channel being watched its
/// subchannels (child channels' too: xDS and grpclb nest them) and each subchannel's socket.
public struct ChannelzPoll: Sendable {
    public var channels: [Channelz.Channel] = []
    /// The watched channel's subchannels, by subchannel id.
    public var subchannels: [Int64: Channelz.Subchannel] = [:]
    /// Each subchannel's current socket, by subchannel id.
    public var sockets: [Int64: Channelz.Socket] = [:]
    /// Child channels read (of the watched channel), with their parent's id.
    public var children: [(channel: Channelz.Channel, parent: Int64)] = []
    public var servers: [Channelz.Server] = []
    /// Each server's client sockets (the first `maxSocketsPerServer` in detail) and how many it has.
    public var serverSockets: [Int64: [Channelz.Socket]] = [:]
    public var serverSocketCounts: [Int64: Int] = [:]
    public init() {}
}

/// Turns consecutive channelz polls of one channel into the model's observed-channel reports:
/// states, addresses, and the calls each subchannel counted since the previous poll. Pure.
public struct ChannelzObserver: Sendable {
    public let source: String
    /// The counters of the previous poll, by subchannel id (calls started, succeeded, failed) and
    /// of the channel itself.
    private var previous: [Int64: (Int64, Int64, Int64)] = [:]
    private var previousChannel: (Int64, Int64, Int64)?
    /// The first poll is the baseline: a process that ran for hours must not show all its calls
    /// as one second's rate. Counts are since grpctop attached (a subchannel created between
    /// two polls counts from zero).
    private var polled = false
    /// Every channel's calls started and failed at the previous poll (for the Channels pane's
    /// rates), by channel id.
    private var previousRows: [Int64: (started: Int64, failed: Int64)] = [:]

    public init(source: String) { self.source = source }

    /// The channel a user most likely means: the first (lowest id) with subchannels or child
    /// channels, else the first.
    public static func defaultChannel(_ channels: [Channelz.Channel]) -> Channelz.Channel? {
        let sorted = channels.sorted { ($0.ref?.channelId ?? 0) < ($1.ref?.channelId ?? 0) }
        return sorted.first { !$0.subchannelRef.isEmpty || !$0.channelRef.isEmpty } ?? sorted.first
    }

    /// The report for `channel` in `poll`; `elapsedMs` is the time since the previous poll (for
    /// the channels' rates).
    public mutating func report(channel: Channelz.Channel, poll: ChannelzPoll, elapsedMs: Int64? = nil) -> ObservedChannel {
        var subs: [ObservedSubchannel] = []
        var seen: [Int64: (Int64, Int64, Int64)] = [:]
        var assigned: (Int64, Int64, Int64) = (0, 0, 0)
        for id in poll.subchannels.keys.sorted() {
            let sc = poll.subchannels[id]!
            let data = sc.data ?? Channelz.ChannelData()
            let socket = poll.sockets[id]
            guard let address = Self.address(subchannel: sc, socket: socket) else { continue }
            let counters = (data.callsStarted, data.callsSucceeded, data.callsFailed)
            seen[id] = counters
            assigned = (assigned.0 + counters.0, assigned.1 + counters.1, assigned.2 + counters.2)
            var delta = RPCDelta()
            let before = polled ? (previous[id] ?? (0, 0, 0)) : counters
            delta.started = Self.difference(counters.0, before.0)
            delta.succeeded = Self.difference(counters.1, before.1)
            delta.failed = Self.difference(counters.2, before.2)
            var active: Int?
            if let d = socket?.data {
                active = Int(clamping: max(0, d.streamsStarted - d.streamsSucceeded - d.streamsFailed))
            }
            subs.append(ObservedSubchannel(endpoint: Endpoint(addresses: [address]), state: Self.state(data.state?.state ?? 0),
                                           reason: Self.lastProblem(data.trace), calls: delta, activeStreams: active,
                                           socket: socket.map(Self.socket), lifetime: Self.calls(data)))
        }
        previous = seen
        polled = true
        // Calls the channel counted that no subchannel did (failed before a pick).
        let data = channel.data ?? Channelz.ChannelData()
        let channelCounters = (data.callsStarted, data.callsSucceeded, data.callsFailed)
        var unassigned = RPCDelta()
        if let before = previousChannel {
            let failedBefore = Self.difference(channelCounters.2, before.2)
            let failedOnSubchannels = subs.reduce(0) { $0 + ($1.calls?.failed ?? 0) }
            unassigned.failed = max(0, failedBefore - failedOnSubchannels)
            unassigned.started = unassigned.failed
        }
        previousChannel = channelCounters
        var process = Self.process(poll, watched: channel.ref?.channelId)
        var rows: [Int64: (started: Int64, failed: Int64)] = [:]
        for i in process.channels.indices {
            let row = process.channels[i]
            rows[row.id] = (row.callsStarted, row.callsFailed)
            if let before = previousRows[row.id], let ms = elapsedMs, ms > 0 {
                process.channels[i].startedPerSecond = Double(Self.difference(row.callsStarted, before.started)) * 1000 / Double(ms)
                process.channels[i].failedPerSecond = Double(Self.difference(row.callsFailed, before.failed)) * 1000 / Double(ms)
            }
        }
        previousRows = rows
        return ObservedChannel(source: source, state: Self.state(data.state?.state ?? 0), subchannels: subs, unassigned: unassigned,
                               process: process)
    }

    static func calls(_ d: Channelz.ChannelData) -> ObservedCalls {
        ObservedCalls(started: d.callsStarted, succeeded: d.callsSucceeded, failed: d.callsFailed, lastStarted: seconds(d.lastCallStartedTimestamp))
    }

    /// A timestamp as seconds since 1970 (nil when absent or zero).
    static func seconds(_ t: Channelz.Timestamp?) -> Double? {
        guard let t, t.seconds > 0 || t.nanos > 0 else { return nil }
        return Double(t.seconds) + Double(max(0, min(999_999_999, t.nanos))) / 1e9
    }

    /// A socket as the model keeps it: counts, windows, times, security.
    static func socket(_ so: Channelz.Socket) -> ObservedSocket {
        let sd = so.data ?? Channelz.SocketData()
        var o = ObservedSocket(id: so.ref?.socketId ?? 0, remote: text(so.remote), local: text(so.local),
                               streamsStarted: sd.streamsStarted, streamsSucceeded: sd.streamsSucceeded, streamsFailed: sd.streamsFailed,
                               messagesSent: sd.messagesSent, messagesReceived: sd.messagesReceived, keepAlivesSent: sd.keepAlivesSent)
        o.localWindow = sd.localFlowControlWindow?.value
        o.remoteWindow = sd.remoteFlowControlWindow?.value
        o.peerMaxStreams = sd.peerMaxConcurrentStreams > 0 ? Int(sd.peerMaxConcurrentStreams) : nil
        o.lastMessageSent = seconds(sd.lastMessageSentTimestamp)
        o.lastMessageReceived = seconds(sd.lastMessageReceivedTimestamp)
        o.lastStreamCreated = [seconds(sd.lastLocalStreamCreatedTimestamp), seconds(sd.lastRemoteStreamCreatedTimestamp)].compactMap { $0 }.max()
        o.goAwayCode = sd.receivedGoawayError?.value
        if let tls = so.security?.tls {
            o.tlsCipher = String((tls.standardName.isEmpty ? tls.otherName : tls.standardName).prefix(100))
            o.peerSubject = CertificateSubject.text(certificate: tls.remoteCertificate)
        } else if let other = so.security?.other {
            o.otherSecurity = String(other.name.prefix(100))
        }
        return o
    }

    /// The process's channels (top ones and the watched one's children) and servers.
    static func process(_ poll: ChannelzPoll, watched: Int64?) -> ObservedProcess {
        func row(_ c: Channelz.Channel, parent: Int64?) -> ObservedChannelRow {
            let d = c.data ?? Channelz.ChannelData()
            return ObservedChannelRow(id: c.ref?.channelId ?? 0, parent: parent, target: String(d.target.prefix(512)), state: state(d.state?.state ?? 0),
                                      callsStarted: d.callsStarted, callsSucceeded: d.callsSucceeded, callsFailed: d.callsFailed,
                                      subchannels: c.subchannelRef.count, lastCallStarted: seconds(d.lastCallStartedTimestamp))
        }
        var channels = poll.channels.map { row($0, parent: nil) }.sorted { $0.id < $1.id }
        channels += poll.children.map { row($0.channel, parent: $0.parent) }
        let servers = poll.servers.map { s -> ObservedServer in
            let id = s.ref?.serverId ?? 0
            let d = s.data ?? Channelz.ServerData()
            let sockets = (poll.serverSockets[id] ?? []).map(socket)
            return ObservedServer(id: id, listen: s.listenSocket.map { String($0.name.prefix(200)) }, callsStarted: d.callsStarted,
                                  callsSucceeded: d.callsSucceeded, callsFailed: d.callsFailed, sockets: sockets,
                                  socketCount: poll.serverSocketCounts[id] ?? sockets.count)
        }.sorted { $0.id < $1.id }
        return ObservedProcess(channels: channels, servers: servers, watched: watched)
    }

    /// An address as text (`10.0.0.7:50051`, `unix:/path`, or `?`).
    static func text(_ a: Channelz.Address?) -> String {
        if let tcp = a?.tcpipAddress, let host = ipText(tcp.ipAddress) { return HostPort(host: host, port: Int(tcp.port)).description }
        if let uds = a?.udsAddress { return "unix:\(uds.filename.prefix(200))" }
        if let other = a?.otherAddress { return String(other.name.prefix(200)) }
        return "?"
    }

    /// A counter's growth; a counter that went down (the process restarted) counts from zero.
    static func difference(_ now: Int64, _ before: Int64) -> Int {
        Int(clamping: now >= before ? now - before : max(0, now))
    }

    /// channelz's ChannelConnectivityState.State.
    public static func state(_ raw: Int32) -> ConnectivityState {
        switch raw {
        case 2: .connecting
        case 3: .ready
        case 4: .transientFailure
        case 5: .shutdown
        default: .idle  // UNKNOWN (0), IDLE (1)
        }
    }

    /// The subchannel's address: its socket's remote address, else its target (grpc-go writes
    /// `10.0.0.7:50051`, grpcio and C++ `ipv4:10.0.0.7:50051`).
    public static func address(subchannel: Channelz.Subchannel, socket: Channelz.Socket?) -> EndpointAddress? {
        if let remote = socket?.remote {
            if let tcp = remote.tcpipAddress, let host = ipText(tcp.ipAddress), (1...65535).contains(tcp.port) {
                return .tcp(host: host, port: Int(tcp.port))
            }
            if let uds = remote.udsAddress, !uds.filename.isEmpty { return .unix(path: uds.filename) }
        }
        var target = subchannel.data?.target ?? ""
        for prefix in ["ipv4:", "ipv6:"] where target.hasPrefix(prefix) { target.removeFirst(prefix.count) }
        if target.hasPrefix("unix:") { return target.count > 5 ? .unix(path: String(target.dropFirst(5))) : nil }
        guard let hp = try? Target.splitHostPort(target, whole: target, bareIPv6: false), (1...65535).contains(hp.port) else { return nil }
        return .tcp(host: hp.host, port: hp.port)
    }

    /// An IPv4 or IPv6 address in bytes, as text.
    static func ipText(_ bytes: [UInt8]) -> String? {
        switch bytes.count {
        case 4: return bytes.map(String.init).joined(separator: ".")
        case 16:
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]), radix: 16)) }
            return groups.joined(separator: ":")
        default: return nil
        }
    }

    /// The last warning or error in a trace, as the subchannel's reason.
    static func lastProblem(_ trace: Channelz.ChannelTrace?) -> String? {
        trace?.events.last { $0.severity >= 2 }.map { String($0.description.prefix(200)) }
    }
}
