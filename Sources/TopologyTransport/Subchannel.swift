#if canImport(Glibc)
import Glibc
#endif
import GRPCWire
import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import TopologyCore

/// One subchannel: the connection (one HTTP/2 connection at a time, plus older ones draining
/// after a GOAWAY) to one endpoint, driven by the pure `SubchannelStateMachine`.
///
/// ```
///  engine ──connect()/shutDown()/accept(call)──► Subchannel ──► SubchannelStateMachine (pure)
///     ▲                                             │  actions: startConnect, scheduleBackoff,
///     │ events (.subchannel(id, …))                 │           drainConnection, closeConnection
///     └─────────────────────────────────────────────┤
///                                                   ▼
///                            ClientConnectionHandler (current)  + draining ones
/// ```
/// Threading: confined to the engine's event loop.
final class Subchannel: ClientConnectionDelegate, @unchecked Sendable {
    let id: SubchannelID
    let endpoint: Endpoint
    unowned let engine: Engine
    private var machine: SubchannelStateMachine
    private var current: ClientConnectionHandler?
    private var draining: [ObjectIdentifier: ClientConnectionHandler] = [:]
    private var attempt = 0
    private var connectStarted: UInt64 = 0
    private var backoffTask: Scheduled<Void>?
    /// RPCs waiting for a stream slot on this subchannel.
    private(set) var queue = CircularBuffer<RPCCall>()
    let stats = StatsSlot()
    /// Active streams and queued RPCs as last reported in a stats tick.
    var reportedGauges = (0, 0)
    /// The backend slot when backends are identified by endpoint.
    /// Set and read by `BackendAttribution` only.
    var backendSlot: StatsSlot?
    private(set) var isShutDown = false

    init(id: SubchannelID, endpoint: Endpoint, engine: Engine) {
        self.id = id
        self.endpoint = endpoint
        self.engine = engine
        self.machine = SubchannelStateMachine(addresses: endpoint.addresses, backoff: engine.config.backoff)
    }

    var state: ConnectivityState { machine.state.connectivity }

    /// Streams in flight on every connection of this subchannel.
    var activeStreams: Int { (current?.activeStreams ?? 0) + draining.values.reduce(0) { $0 + $1.activeStreams } }
    var outstanding: Int { activeStreams + queue.count }
    /// True once every connection is closed after shutdown.
    var isFinished: Bool { isShutDown && current == nil && draining.isEmpty && queue.isEmpty }

    // MARK: - inputs from the engine

    func connect() { perform(machine.connect(now: engine.nowMs)) }

    func reconnect() { perform(machine.reconnectRequested()) }

    // MARK: - health checking (gRFC A17)

    /// The model asked for health checks on this subchannel's connections.
    private var healthWanted = false
    private var healthBackoff = ConnectionBackoff()
    private var healthRetry: Scheduled<Void>?
    /// The current Watch call received an answer (its failure is retried at once).
    private var healthAnswered = false

    /// Starts the Watch stream on the current connection (the model saw it READY).
    func startHealthCheck() {
        guard let request = engine.healthRequest, !isShutDown else { return }
        healthWanted = true
        healthRetry?.cancel()
        healthAnswered = false
        current?.startHealthWatch(request)
    }

    func stopHealthCheck() {
        healthWanted = false
        healthRetry?.cancel()
        healthBackoff.reset()
        current?.stopHealthWatch()
    }

    func shutDown() {
        isShutDown = true
        backoffTask?.cancel()
        healthRetry?.cancel()
        current?.stopHealthWatch()
        perform(machine.shutDown())
        handBackQueue()
    }

    /// Takes an RPC if this subchannel can carry it now (a stream slot) or soon (queued behind
    /// the peer's MAX_CONCURRENT_STREAMS). False: pick again.
    func accept(_ call: RPCCall) -> Bool {
        guard case .ready = machine.state, let conn = current, !conn.lifecycle.isGoingAway else { return false }
        if conn.canOpenStream && queue.isEmpty {
            startStream(call, on: conn)
        } else if queue.count >= Engine.maxQueuedCalls {
            engine.finish(call, on: self, code: 8, message: "more than \(Engine.maxQueuedCalls) RPCs queued for a stream on this subchannel")
        } else {
            queue.append(call)
        }
        return true
    }

    /// Ends every RPC this subchannel holds — streams in flight (reset with CANCEL) and queued
    /// ones — with `code`: the run is over and they did not finish.
    func abandonAll(code: Int, message: String) {
        while let call = queue.popFirst() { engine.finish(call, on: self, code: code, message: message) }
        current?.cancelAll(code: code, message: message)
        for conn in draining.values { conn.cancelAll(code: code, message: message) }
    }

    private func startStream(_ call: RPCCall, on conn: ClientConnectionHandler) {
        stats.recordStarted()
        engine.attribution.started(on: self)
        conn.start(call, request: engine.request)
    }

    /// Fails queued RPCs whose deadline passed.
    func expireQueued(now: UInt64) {
        guard !queue.isEmpty else { return }
        var kept = CircularBuffer<RPCCall>()
        while let call = queue.popFirst() {
            if call.deadlineNanos <= now {
                engine.finish(call, on: self, code: 4, message: "deadline exceeded while queued for a stream")
            } else {
                kept.append(call)
            }
        }
        queue = kept
    }

    private func handBackQueue() {
        while let call = queue.popFirst() { engine.repick(call) }
    }

    // MARK: - state machine actions

    private func perform(_ output: SubchannelStateMachine.Output) {
        if let t = output.transition {
            engine.emit(.subchannel(id, .stateChanged(to: t.to, reason: t.reason, backoffMs: t.backoffMs)))
        }
        for action in output.actions {
            switch action {
            case .startConnect(let address, let timeoutMs):
                startConnect(address, timeoutMs: timeoutMs)
            case .scheduleBackoff(let delayMs):
                backoffTask?.cancel()
                backoffTask = engine.loop.scheduleTask(in: .milliseconds(delayMs)) { [weak self] in
                    guard let self, !self.isShutDown else { return }
                    self.perform(self.machine.backoffElapsed(now: self.engine.nowMs))
                }
            case .drainConnection:
                if let conn = current {
                    current = nil
                    draining[ObjectIdentifier(conn)] = conn
                    conn.drain()
                }
                handBackQueue()
            case .closeConnection:
                current?.close(reason: "subchannel shutdown")
            }
        }
    }

    private func startConnect(_ address: EndpointAddress, timeoutMs: Int64) {
        attempt += 1
        let thisAttempt = attempt
        connectStarted = NIODeadline.now().uptimeNanoseconds
        let handler = ClientConnectionHandler(
            keepalive: engine.config.keepaliveMs.map { .milliseconds($0) },
            keepaliveTimeout: .milliseconds(engine.config.keepaliveTimeoutMs))
        handler.pendingIdentityHeader = engine.config.identityHeader
        handler.usesTLS = engine.tlsContext != nil
        handler.spokeHTTP2Before = spokeHTTP2
        handler.maxReceiveBytes = engine.config.maxReceiveBytes
        handler.delegate = self
        let serverName = engine.config.tlsServerName ?? Self.serverName(for: address)
        let future = HTTP2ClientConnection.connect(
            to: address, group: engine.loop, timeout: .milliseconds(timeoutMs), tls: engine.tlsContext, serverName: serverName
        ) { sync in
            try sync.addHandler(ServerPrefaceSniffer())
            try sync.addHandler(NIOHTTP2Handler(mode: .client, connectionConfiguration: Engine.http2Connection, streamConfiguration: Engine.http2Stream))
            try sync.addHandler(handler)
        }
        future.whenComplete { [weak self] result in
            guard let self else { return }
            guard thisAttempt == self.attempt, !self.isShutDown else {
                if case .success(let ch) = result { ch.close(promise: nil) }
                return
            }
            switch result {
            case .success(let channel):
                self.current = handler
                let ms = Int64((NIODeadline.now().uptimeNanoseconds - self.connectStarted) / 1_000_000)
                self.engine.emit(.subchannel(self.id, .connected(
                    local: channel.localAddress.map(Self.describe) ?? "?",
                    remote: channel.remoteAddress.map(Self.describe) ?? address.description,
                    connectMs: ms)))
                // The server must speak HTTP/2: without its SETTINGS the attempt fails.
                let remaining = max(1000, timeoutMs - ms)
                channel.eventLoop.scheduleTask(in: .milliseconds(remaining)) { [weak self, weak handler] in
                    guard let self, let handler, handler === self.current, !handler.settingsReceived else { return }
                    handler.close(reason: "no HTTP/2 SETTINGS from the server within \(remaining)ms (not an h2c/gRPC port? try --tls)")
                }
            case .failure(let error):
                self.perform(self.machine.connectFailed(reason: Self.describeConnectError(error), now: self.engine.nowMs, unitRandom: { Double.random(in: 0..<1) }))
            }
        }
    }

    static func serverName(for address: EndpointAddress) -> String? {
        switch address {
        case .tcp(let host, _):
            return HTTP2ClientConnection.serverName(for: host)
        case .unix:
            return nil
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4, .v6:
            if let ip = address.ipAddress, let port = address.port { return HostPort(host: ip, port: port).description }
            return address.description
        case .unixDomainSocket:
            return "unix:\(address.pathname ?? "?")"
        }
    }

    static func describeConnectError(_ error: Error) -> String {
        if error is ChannelError, case ChannelError.connectTimeout = error { return "connection timed out" }
        if let e = error as? NIOConnectionError {
            if let first = e.connectionErrors.first { return describeConnectError(first.error) }
            if e.dnsAError != nil || e.dnsAAAAError != nil { return "DNS lookup failed for \(e.host)" }
            return "connection failed"
        }
        return ClientConnectionHandler.describe(error)
    }

    // MARK: - ClientConnectionDelegate

    func connectionReceivedSettings(_ connection: ClientConnectionHandler, maxConcurrentStreams: Int?) {
        guard connection === current else { return }
        spokeHTTP2 = true
        engine.emit(.subchannel(id, .settingsReceived(maxConcurrentStreams: maxConcurrentStreams)))
        perform(machine.connectionReady(now: engine.nowMs))
        engine.subchannelBecameUsable(self)
    }

    func connectionReceivedGoAway(_ connection: ClientConnectionHandler, code: String, lastStreamID: Int, debug: String) {
        engine.emit(.subchannel(id, .goAwayReceived(code: code, lastStreamID: lastStreamID, debug: debug)))
        if connection === current {
            if connection.settingsReceived {
                perform(machine.goAwayReceived(code: code, now: engine.nowMs, unitRandom: { Double.random(in: 0..<1) }))
            } else {
                current = nil
                draining[ObjectIdentifier(connection)] = connection
                perform(machine.connectFailed(reason: "GOAWAY \(code)", now: engine.nowMs, unitRandom: { Double.random(in: 0..<1) }))
            }
        }
    }

    func connection(_ connection: ClientConnectionHandler, finished call: RPCCall, outcome: RPCOutcome) {
        switch outcome {
        case .status(let code, let message):
            if connection === current { machine.connectionUsed() }
            engine.finish(call, on: self, code: code, message: message)
        case .refused:
            engine.retryTransparently(call, from: self)
        case .cancelled(let code, let message):
            engine.finish(call, on: self, code: code, message: message)
        case .transportFailure(let reason):
            engine.finish(call, on: self, code: 14, message: reason)
        }
    }

    func connectionHasCapacity(_ connection: ClientConnectionHandler) {
        guard connection === current else { return }
        while !queue.isEmpty && connection.canOpenStream {
            startStream(queue.removeFirst(), on: connection)
        }
    }

    func connection(_ connection: ClientConnectionHandler, healthAnswered status: UInt64) {
        guard connection === current, healthWanted else { return }
        healthAnswered = true
        healthBackoff.reset()
        // HealthCheckResponse.ServingStatus; a value it does not define reads as UNKNOWN.
        let words = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
        let word = status < UInt64(words.count) ? words[Int(status)] : "UNKNOWN"
        engine.emit(.subchannel(id, .health(.answered(word))))
    }

    func connection(_ connection: ClientConnectionHandler, healthEnded code: Int?, message: String) {
        guard connection === current, healthWanted, !isShutDown else { return }
        if code == 12 {
            engine.emit(.subchannel(id, .health(.unimplemented(message))))
            return
        }
        let why = code.map { "\(GRPCStatusName.name($0)): \(message)" } ?? message
        // A17: after an answer the next attempt starts at once; otherwise after backoff.
        if healthAnswered {
            healthAnswered = false
            engine.emit(.subchannel(id, .health(.failed(why, retryMs: nil))))
            retryHealth()
            return
        }
        let delay = healthBackoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
        engine.emit(.subchannel(id, .health(.failed(why, retryMs: delay))))
        healthRetry?.cancel()
        healthRetry = engine.loop.scheduleTask(in: .milliseconds(delay)) { [weak self] in self?.retryHealth() }
    }

    private func retryHealth() {
        guard healthWanted, !isShutDown, let conn = current, let request = engine.healthRequest, case .ready = machine.state else { return }
        engine.emit(.subchannel(id, .health(.watching)))
        conn.startHealthWatch(request)
    }

    func connectionMeasuredRTT(_ connection: ClientConnectionHandler, micros: Int64) {
        engine.emit(.subchannel(id, .pingRTT(micros: micros)))
    }

    /// This address answered with HTTP/2 SETTINGS once: a later connection closed before them is
    /// a server going away, not a TLS port (the error wording depends on it).
    private var spokeHTTP2 = false

    func connectionClosed(_ connection: ClientConnectionHandler, reason: String) {
        if draining.removeValue(forKey: ObjectIdentifier(connection)) != nil {
            engine.subchannelMayBeFinished(self)
            return
        }
        guard connection === current else { return }
        current = nil
        handBackQueue()
        if connection.settingsReceived {
            perform(machine.connectionClosed(reason: reason, now: engine.nowMs, unitRandom: { Double.random(in: 0..<1) }))
        } else {
            perform(machine.connectFailed(reason: reason, now: engine.nowMs, unitRandom: { Double.random(in: 0..<1) }))
        }
        engine.subchannelMayBeFinished(self)
    }
}
