import ChannelzAPI
import Foundation
import NIOSSL
import TopologyCore

/// `grpctop attach`'s source: polls a process's channelz every interval and reports the chosen
/// channel as an observed channel (states, addresses, calls per subchannel since the last
/// poll), the channelz status as the "resolver" line, and new trace events as log lines. An
/// unreachable process is retried with backoff (1 s doubling to 30 s), its last picture kept.
public final class ChannelzSource: @unchecked Sendable {
    public let address: EndpointAddress
    public let intervalMs: Int64
    private let client: ChannelzClient
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var chosenID: Int64?
    private var sink: (@Sendable (Event) -> Void)?
    /// Called once when the process answers that it has no channelz service.
    public var onNotEnabled: (@Sendable (String) -> Void)?
    /// `--names`: a second target resolved only to name the observed addresses (pod, node,
    /// zone, revision) and to know every pod the channel should reach.
    public var names: (any EndpointResolver)?
    private var named: [String: Endpoint] = [:]
    private var expected: [String]?

    public init(address: EndpointAddress, intervalMs: Int64, channelID: Int64? = nil, tls: NIOSSLContext? = nil, serverName: String? = nil) {
        self.address = address
        self.intervalMs = intervalMs
        self.chosenID = channelID
        client = ChannelzClient(address: address, tls: tls, serverName: serverName, timeoutMs: max(1000, min(10_000, intervalMs * 5)))
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        lock.withLock { self.sink = sink }
        names?.start { [weak self] event in self?.namesEvent(event) }
        let t = Task { [self] in await run() }
        lock.withLock { task = t }
    }

    public func stop() {
        let t = lock.withLock { () -> Task<Void, Never>? in
            sink = nil
            return task
        }
        t?.cancel()
        client.close()
        names?.stop()
    }

    /// The names resolver's answers: addresses → endpoints; its failures go to the log.
    private func namesEvent(_ event: Event) {
        switch event {
        case .resolverUpdated(let result):
            var map: [String: Endpoint] = [:]
            for e in result.endpoints { for a in e.addresses { map[a.description] = e } }
            let pods = result.endpoints.filter(\.ready).map(\.displayName)
            lock.withLock {
                named = map
                expected = result.backends ?? pods
            }
        case .resolverFailed(let f):
            push(.notice(Notice(.warning, "--names: \(f.message)")))
        default:
            break
        }
    }

    /// An observed address with the names resolver's pod, node, zone and revision.
    private func name(_ report: ObservedChannel) -> ObservedChannel {
        let (map, pods) = lock.withLock { (named, expected) }
        guard !map.isEmpty || pods != nil else { return report }
        var r = report
        r.subchannels = report.subchannels.map { sub in
            var s = sub
            if let a = sub.endpoint.addresses.first, let known = map[a.description] {
                var e = known
                e.addresses = sub.endpoint.addresses
                s.endpoint = e
            }
            return s
        }
        r.expectedBackends = pods
        return r
    }

    /// Watch another channel (the Channels pane's Enter).
    public func choose(channelID: Int64) { lock.withLock { chosenID = channelID } }

    private func push(_ e: Event) { lock.withLock { sink }?(e) }

    private func run() async {
        let source = "channelz \(address)"
        var observer = ChannelzObserver(source: source)
        var watching: Int64?
        var traces = TraceCursor()
        var backoff = ConnectionBackoff(initialMs: 1000, multiplier: 2, jitter: 0.2, maxMs: 30_000, minConnectTimeoutMs: 0)
        var downSince: Date?
        var polls = 0
        var reportedNotEnabled = false
        var lastPoll: UInt64?
        while !Task.isCancelled {
            let started = DispatchTime.now()
            var delayMs = intervalMs
            do {
                let wanted = lock.withLock { chosenID }
                let (poll, channel) = try await client.poll(channelID: wanted)
                polls += 1
                var info = ["channelz": "\(address)", "channels": "\(poll.channels.count)", "polls": "\(polls)"]
                guard let channel, let id = channel.ref?.channelId else {
                    let why = wanted.map { "channel #\($0) is gone from \(address)" } ?? "\(address) has no channel yet (the process has not created one)"
                    push(.resolverFailed(ResolverFailure(message: why, info: info)))
                    try? await Task.sleep(for: .milliseconds(delayMs))
                    continue
                }
                if watching != id {
                    if watching != nil { push(.notice(Notice(.info, "channelz: now watching channel #\(id) \(channel.data?.target ?? "")"))) }
                    watching = id
                    observer = ChannelzObserver(source: source)
                    traces = TraceCursor()
                }
                info["channel"] = "#\(id) \(channel.data?.target ?? "")"
                info["watch"] = downSince == nil ? "up" : "up again"
                downSince = nil
                backoff.reset()
                push(.resolverStatus(info))
                let now = DispatchTime.now().uptimeNanoseconds
                let elapsed = lastPoll.map { Int64((now - $0) / 1_000_000) }
                lastPoll = now
                push(.observedChannel(name(observer.report(channel: channel, poll: poll, elapsedMs: elapsed))))
                for line in traces.newEvents(channel: channel, poll: poll) { push(.notice(line)) }
            } catch let e as ChannelzError {
                if case .notEnabled = e, !reportedNotEnabled {
                    reportedNotEnabled = true
                    onNotEnabled?(e.description)
                }
                if downSince == nil { downSince = Date() }
                delayMs = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
                push(.resolverFailed(ResolverFailure(message: "\(e); retry in \(formatDuration(delayMs))",
                                                     info: ["channelz": "\(address)", "watch": "down, retry in \(formatDuration(delayMs))"])))
                client.close()
            } catch {
                if Task.isCancelled { return }
                if downSince == nil { downSince = Date() }
                delayMs = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
                push(.resolverFailed(ResolverFailure(message: "channelz at \(address): \(error); retry in \(formatDuration(delayMs))",
                                                     info: ["channelz": "\(address)", "watch": "down, retry in \(formatDuration(delayMs))"])))
                client.close()
            }
            let elapsed = Int64((DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000)
            let wait = max(0, delayMs - (delayMs == intervalMs ? elapsed : 0))
            do { try await Task.sleep(for: .milliseconds(wait)) } catch { return }
        }
    }
}

/// The trace events already reported, per channel and subchannel (channelz keeps a bounded
/// trace per entity; each poll returns all of it). An event is known by its description and
/// time; the time is compared within 5 ms, since grpcio recomputes its wall-clock timestamps on
/// every read (they move by nanoseconds from poll to poll).
struct TraceCursor {
    private var seen: [String: [(text: String, ms: Int64)]] = [:]
    private var started: [String: Bool] = [:]

    mutating func newEvents(channel: Channelz.Channel, poll: ChannelzPoll) -> [Notice] {
        var out: [Notice] = []
        let chID = channel.ref?.channelId ?? 0
        out += fresh("channel #\(chID)", channel.data?.trace)
        for id in poll.subchannels.keys.sorted() {
            let sc = poll.subchannels[id]!
            let name = ChannelzObserver.address(subchannel: sc, socket: poll.sockets[id])?.description ?? "#\(id)"
            out += fresh("subchannel \(name)", sc.data?.trace)
        }
        return out
    }

    private mutating func fresh(_ who: String, _ trace: Channelz.ChannelTrace?) -> [Notice] {
        guard let events = trace?.events, !events.isEmpty else { return [] }
        let first = started[who] == nil
        started[who] = true
        var known = seen[who] ?? []
        var out: [Notice] = []
        let ordered = events.sorted { ($0.timestamp?.seconds ?? 0, $0.timestamp?.nanos ?? 0) < ($1.timestamp?.seconds ?? 0, $1.timestamp?.nanos ?? 0) }
        for e in ordered {
            let text = String(e.description.prefix(300))
            let ms = (e.timestamp?.seconds ?? 0).multipliedReportingOverflow(by: 1000).partialValue + Int64((e.timestamp?.nanos ?? 0) / 1_000_000)
            if known.contains(where: { $0.text == text && abs($0.ms - ms) <= 5 }) { continue }
            known.append((text, ms))
            let level: Notice.Level = e.severity == 3 ? .error : (e.severity == 2 ? .warning : .info)
            out.append(Notice(level, "channelz: \(who): \(text)"))
        }
        seen[who] = Array(known.suffix(256))
        // The first poll shows at most the last 20 of what the process kept.
        return first ? Array(out.suffix(20)) : out
    }
}
