import GRPCWire
import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import TopologyCore

/// How the engine runs: what to send, how often, how to connect.
public struct EngineConfig: Sendable {
    public var target: String
    public var resolverName: String
    public var policy: LBPolicy = .roundRobin
    public var rpc: RPCKind = .health(service: "")
    public var traffic: TrafficSetting = .rate(20)
    public var timeoutMs: Int64 = 10_000
    /// `-H key:value` metadata, sent on every RPC.
    public var metadata: [(String, String)] = []
    public var authority: String
    public var identityHeader: String?
    public var tls: TLSOptions?
    /// TLS server name (SNI and verification); default: the address's host name, if not an IP.
    public var tlsServerName: String?
    public var keepaliveMs: Int64?
    public var keepaliveTimeoutMs: Int64 = 20_000
    public var tickMs = 250
    /// The largest response message accepted (`--max-recv-size`, gRPC's default 4 MiB).
    public var maxReceiveBytes = 4 * 1024 * 1024
    public var backoff = ConnectionBackoff()
    public var version = "0.1.0"
    /// gRFC A17: health-check every READY subchannel with this service name ("" = the server).
    public var healthCheckService: String?
    /// gRFC A50: outlier detection around the policy.
    public var outlierDetection: OutlierDetectionConfig?

    public init(target: String, resolverName: String, authority: String) {
        self.target = target
        self.resolverName = resolverName
        self.authority = authority
    }
}

/// The engine: one event loop that owns the model, the subchannels, the picker, the traffic
/// driver and the statistics collector. Every input becomes an `Event`, stamped and queued; the
/// `Model` applies them one at a time in arrival order, and the effects `apply` returns are carried
/// out before the next event (`EventPump`).
///
/// ```
///  resolver ──submit──┐                       ┌─► observers (batch printer, recorder, UI)
///  user     ──submit──┼─► loop: emit(event) ──┤
///  subchannels ─emit──┤     model.apply       └─► effects: create/connect/shut down subchannels,
///  stats tick ──emit──┘                                     new picker, re-resolution, traffic
/// ```
/// Threading: all state is confined to `loop`; `submit` and `withModel` may be called from any
/// thread. RPCs are picked, started and recorded on the same loop without locks.
public final class Engine: @unchecked Sendable {
    public let config: EngineConfig
    public let loop: EventLoop
    let resolver: any EndpointResolver
    let tlsContext: NIOSSLContext?
    let request: RequestTemplate
    /// The Watch call of health checks (A17), for the service the session checks now.
    var healthRequest: RequestTemplate? {
        guard let service = model.session?.healthCheckService else { return nil }
        if let r = healthRequests[service] { return r }
        let r = Self.makeHealthRequest(config, service: service)
        healthRequests[service] = r
        return r
    }
    private var healthRequests: [String: RequestTemplate] = [:]

    private let startNanos: UInt64
    private(set) var model = Model()
    private var observers: [(TimedEvent, Model) -> Void] = []
    private var subchannels: [SubchannelID: Subchannel] = [:]
    private var picker = Picker(spec: PickerSpec(node: NoPick(), channelState: .idle), randomStart: 0)
    private var channelQueue = CircularBuffer<RPCCall>()
    /// Which backend each RPC is credited to (the one place that decides it).
    let attribution: BackendAttribution
    private var traffic: TrafficSetting
    private var trafficTimer: Scheduled<Void>?
    private var rateBaseNanos: UInt64 = 0
    private var rateIssued: Int = 0
    private var inFlight = 0
    private var nextCallID: UInt64 = 0
    private var stopping = false
    private var running = false
    private var tickTask: RepeatedTask?
    private var sweepTask: RepeatedTask?
    static let debug = ProcessInfo.processInfo.environment["GRPCTOP_DEBUG"] != nil
    /// The most RPCs that wait in one queue (the channel's, waiting for a pick, or a
    /// subchannel's, waiting for a stream slot); more fail at once with RESOURCE_EXHAUSTED, so
    /// a high --rps against a server that never answers cannot grow without bound.
    static let maxQueuedCalls = 100_000
    /// Closed-loop workers whose last RPC failed fast (no READY subchannel). gRPC's clients
    /// wait for a state change or back off here; so do we: they start again when the picker
    /// changes or after `parkMs`, never in a loop (issue 15: a tight loop ate 100 % CPU and GBs).
    private var parkedWorkers = 0
    private var parkTimer: Scheduled<Void>?
    static let parkMs: Int64 = 1_000
    /// Counts for `--fail-on-error` and the exit summary.
    public private(set) var totalFailed = 0

    static let http2Connection: NIOHTTP2Handler.ConnectionConfiguration = {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 100),
            HTTP2Setting(parameter: .initialWindowSize, value: ClientConnectionHandler.initialStreamWindow),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        c.controlFrameRateLimit.maximumCount = 100_000
        c.maximumConnectionGlitches = 100_000
        // Responses can still arrive for streams we reset (deadlines, cancellations); NIO
        // forgets all but the last 32 reset streams and then calls such a frame a connection
        // error (STREAM_CLOSED), failing every RPC in flight. Remember many more.
        c.maximumRecentlyResetStreams = 4096
        // We read the few headers we need ourselves; NIO's per-header validation costs ~5 % of
        // the client's CPU at 100 streams in flight (perf, `grpctop bench`).
        c.headerBlockValidation = .disabled
        c.contentLengthValidation = .disabled
        return c
    }()

    static let http2Stream: NIOHTTP2Handler.StreamConfiguration = {
        var s = NIOHTTP2Handler.StreamConfiguration()
        s.streamResetFrameRateLimit.maximumCount = 100_000
        s.streamErrorRateLimit.maximumCount = 100_000
        return s
    }()

    public init(config: EngineConfig, resolver: any EndpointResolver, loop: EventLoop) throws {
        self.config = config
        self.resolver = resolver
        self.loop = loop
        self.tlsContext = try config.tls?.makeContext()
        self.traffic = config.traffic
        self.startNanos = NIODeadline.now().uptimeNanoseconds
        self.request = Self.makeRequest(config)
        self.attribution = BackendAttribution(identityHeader: config.identityHeader)
    }

    static func makeRequest(_ config: EngineConfig) -> RequestTemplate {
        let body = GRPCFrame.buffer(config.rpc.payload, allocator: ByteBufferAllocator())
        return RequestTemplate(headers: headers(config, path: config.rpc.path, timeoutMs: config.timeoutMs), body: body)
    }

    /// A call's request headers: pseudo-headers, gRPC's, the deadline when there is one, and
    /// the channel's `-H` metadata.
    static func headers(_ config: EngineConfig, path: String, timeoutMs: Int64?) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":method", value: "POST")
        headers.add(name: ":scheme", value: config.tls == nil ? "http" : "https")
        headers.add(name: ":path", value: path)
        headers.add(name: ":authority", value: config.authority)
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "te", value: "trailers")
        headers.add(name: "user-agent", value: "grpctop/\(config.version)")
        if let t = timeoutMs { headers.add(name: "grpc-timeout", value: grpcTimeoutHeader(ms: t)) }
        for (k, v) in config.metadata { headers.add(name: k.lowercased(), value: v) }
        return headers
    }

    /// `grpc.health.v1.Health/Watch` with `HealthCheckRequest{service}`: no deadline (it lives as
    /// long as the connection), the channel's metadata (A17: call credentials go with it).
    static func makeHealthRequest(_ config: EngineConfig, service: String) -> RequestTemplate {
        let body = GRPCFrame.buffer(service.isEmpty ? [] : ProtoWire.stringMessage(service), allocator: ByteBufferAllocator())
        return RequestTemplate(headers: headers(config, path: "/grpc.health.v1.Health/Watch", timeoutMs: nil), body: body)
    }

    /// Milliseconds since the engine was created: the time stamped on events.
    var nowMs: Millis { Millis((NIODeadline.now().uptimeNanoseconds - startNanos) / 1_000_000) }

    // MARK: - public API

    /// Adds an observer called on the loop after each event is applied. Call before `start`.
    public func observe(_ body: @escaping (TimedEvent, Model) -> Void) {
        loop.execute { self.observers.append(body) }
    }

    /// Starts the session: emits `sessionStarted`, starts the resolver, the stats tick and traffic.
    public func start(host: String = ProcessInfo.processInfo.hostName) -> EventLoopFuture<Void> {
        loop.submit {
            guard !self.running else { return }
            self.running = true
            self.emit(.sessionStarted(SessionInfo(
                target: self.config.target, resolver: self.config.resolverName, policy: self.config.policy,
                rpc: self.config.rpc.description, identityHeader: self.config.identityHeader,
                traffic: self.config.traffic, tickMs: self.config.tickMs,
                startedAt: Date().timeIntervalSince1970, host: host, version: self.config.version,
                healthCheckService: self.config.healthCheckService, outlierDetection: self.config.outlierDetection)))
            self.tickTask = self.loop.scheduleRepeatedTask(
                initialDelay: .milliseconds(Int64(self.config.tickMs)), delay: .milliseconds(Int64(self.config.tickMs))
            ) { [weak self] _ in self?.tick() }
            self.sweepTask = self.loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [weak self] _ in
                self?.sweepDeadlines()
            }
            self.resolver.start { [weak self] event in self?.submit(event) }
            self.startTraffic()
        }
    }

    /// Feeds an event into the stream from any thread.
    public func submit(_ event: Event) {
        loop.execute { self.emit(event) }
    }

    /// Runs `body` with the current model on the loop.
    public func withModel<T: Sendable>(_ body: @escaping @Sendable (Model) -> T) -> EventLoopFuture<T> {
        loop.submit { body(self.model) }
    }

    /// Stops traffic, lets in-flight RPCs finish (up to `grace`), emits a final stats tick and
    /// closes every connection. The model stays readable.
    /// RPCs still in flight or queued after the grace are cancelled and counted as
    /// UNFINISHED (a failure: a gate must not pass on RPCs that never completed).
    public func stop(grace: TimeAmount = .seconds(3)) -> EventLoopFuture<Model> {
        loop.flatSubmit {
            self.stopping = true
            self.trafficTimer?.cancel()
            self.parkTimer?.cancel()
            self.resolver.stop()
            let promise = self.loop.makePromise(of: Model.self)
            let deadline = NIODeadline.now() + grace
            func finish() {
                let message = "unfinished when the run ended"
                while let call = self.channelQueue.popFirst() { self.finishUnassigned(call, code: GRPCStatusName.unfinished, message: message) }
                for sc in self.subchannels.values.sorted(by: { $0.id < $1.id }) { sc.abandonAll(code: GRPCStatusName.unfinished, message: message) }
                self.tick()
                self.tickTask?.cancel()
                self.sweepTask?.cancel()
                for sc in self.subchannels.values { sc.shutDown() }
                promise.succeed(self.model)
            }
            func poll() {
                if self.inFlight - self.channelQueue.count <= 0 || NIODeadline.now() >= deadline {
                    finish()
                } else {
                    self.loop.scheduleTask(in: .milliseconds(20)) { poll() }
                }
            }
            poll()
            return promise.futureResult
        }
    }

    // MARK: - the event loop

    /// Stamps one event and queues it; it is applied and published, and its effects carried
    /// out, after every event before it (`EventPump`: never nested in another event's effects).
    /// On the loop.
    func emit(_ event: Event) {
        pump.emit(TimedEvent(at: nowMs, event))
    }

    private lazy var pump = EventPump<TimedEvent, Effect>(
        apply: { [unowned self] timed in
            let effects = self.model.apply(timed)
            for o in self.observers { o(timed, self.model) }
            return effects
        },
        perform: { [unowned self] effect in self.perform(effect) })

    private func perform(_ effect: Effect) {
        switch effect {
        case .createSubchannel(let id, let endpoint):
            let sc = Subchannel(id: id, endpoint: endpoint, engine: self)
            sc.backendSlot = attribution.slot(forSubchannelOf: endpoint)
            subchannels[id] = sc
        case .connect(let id):
            subchannels[id]?.connect()
        case .shutDown(let id):
            subchannels[id]?.shutDown()
            if let sc = subchannels[id] { subchannelMayBeFinished(sc) }
        case .updatePicker(let spec):
            picker = Picker(spec: spec, randomStart: Int.random(in: 0..<Int.max))
            drainChannelQueue()
            if parkedWorkers > 0 && !(spec.channelState == .transientFailure && spec.ready.isEmpty) { unpark() }
        case .requestResolution(let request):
            resolver.requestResolution(request)
        case .setTraffic(let t):
            traffic = t
            if !stopping { startTraffic() }
        case .reconnect(let id):
            subchannels[id]?.reconnect()
        case .watchChannel:
            break  // only an observed session has channels to choose from
        case .startHealthCheck(let id):
            subchannels[id]?.startHealthCheck()
        case .stopHealthCheck(let id):
            subchannels[id]?.stopHealthCheck()
        }
    }

    func subchannelBecameUsable(_ sc: Subchannel) {
        drainChannelQueue()
    }

    func subchannelMayBeFinished(_ sc: Subchannel) {
        // Keep it until its last counters are reported by a tick.
        guard sc.isFinished, !sc.stats.isDirty else { return }
        if subchannels[sc.id] === sc { subchannels[sc.id] = nil }
    }

    // MARK: - statistics

    private func tick() {
        var tick = StatsTick()
        // Only subchannels with something new: the model keeps the last gauges of the others.
        for (id, sc) in subchannels.sorted(by: { $0.key < $1.key }) {
            let gauges = (sc.activeStreams, sc.queue.count)
            if sc.stats.isDirty || gauges != sc.reportedGauges {
                tick.subchannels.append(SubchannelTick(id: id, activeStreams: gauges.0, queued: gauges.1, delta: sc.stats.take()))
                sc.reportedGauges = gauges
            }
            if sc.isFinished { subchannels[id] = nil }
        }
        tick.backends = attribution.tickRows()
        tick.unassigned = attribution.unassigned.take()
        tick.channelQueued = channelQueue.count
        emit(.stats(tick))
    }

    // MARK: - traffic

    private func startTraffic() {
        trafficTimer?.cancel()
        trafficTimer = nil
        switch traffic {
        case .rate:
            rateBaseNanos = NIODeadline.now().uptimeNanoseconds
            rateIssued = 0
            scheduleRateTimer()
        case .concurrency:
            parkedWorkers = 0
            refillClosedLoop()
        }
    }

    private func scheduleRateTimer() {
        guard case .rate(let r) = traffic, r > 0, !stopping else { return }
        let intervalNanos = max(2_000_000, Int64(1e9 / r))
        trafficTimer = loop.scheduleTask(in: .nanoseconds(intervalNanos)) { [weak self] in
            guard let self, !self.stopping, case .rate(let rate) = self.traffic else { return }
            let elapsed = Double(NIODeadline.now().uptimeNanoseconds - self.rateBaseNanos) / 1e9
            let due = Int(elapsed * rate) - self.rateIssued
            for _ in 0..<max(0, min(due, 100_000)) { self.issue() }
            self.rateIssued += max(0, due)
            self.scheduleRateTimer()
        }
    }

    private func issue() {
        nextCallID &+= 1
        let now = NIODeadline.now().uptimeNanoseconds
        let call = RPCCall(id: nextCallID, startNanos: now, deadlineNanos: now + UInt64(config.timeoutMs) * 1_000_000)
        inFlight += 1
        dispatch(call)
    }

    /// Picks a subchannel for an RPC; waits for one while the channel is connecting, fails fast
    /// while it is in TRANSIENT_FAILURE (gRPC's behaviour for RPCs without wait-for-ready).
    private func dispatch(_ call: RPCCall) {
        var tries = 0
        while tries < 4, let id = picker.pick(outstanding: { [subchannels] in subchannels[$0]?.outstanding ?? 0 }, random: { Int.random(in: 0..<Int.max) }) {
            tries += 1
            if let sc = subchannels[id], sc.accept(call) { return }
        }
        if picker.spec.channelState == .transientFailure && picker.spec.ready.isEmpty {
            finishUnassigned(call, code: 14, message: model.resolver.endpoints.isEmpty ? "no endpoints" : "all subchannels in TRANSIENT_FAILURE")
        } else if channelQueue.count >= Self.maxQueuedCalls {
            finishUnassigned(call, code: 8, message: "more than \(Self.maxQueuedCalls) RPCs waiting for a READY subchannel")
        } else {
            channelQueue.append(call)
        }
    }

    private func drainChannelQueue() {
        guard !channelQueue.isEmpty else { return }
        let waiting = channelQueue
        channelQueue.removeAll()
        for call in waiting { dispatch(call) }
    }

    private func sweepDeadlines() {
        let now = NIODeadline.now().uptimeNanoseconds
        if !channelQueue.isEmpty {
            var kept = CircularBuffer<RPCCall>()
            while let call = channelQueue.popFirst() {
                if call.deadlineNanos <= now {
                    finishUnassigned(call, code: 4, message: "deadline exceeded waiting for a READY subchannel")
                } else {
                    kept.append(call)
                }
            }
            channelQueue = kept
        }
        for sc in subchannels.values { sc.expireQueued(now: now) }
        refillClosedLoop()
    }

    /// An RPC handed back by a subchannel that can no longer carry it (not sent yet).
    func repick(_ call: RPCCall) {
        dispatch(call)
    }

    /// gRPC retries RPCs the server never saw (above GOAWAY's last-stream-id, REFUSED_STREAM).
    func retryTransparently(_ call: RPCCall, from sc: Subchannel) {
        call.retries += 1
        if call.retries > 3 {
            finish(call, on: sc, code: 14, message: "stream refused \(call.retries) times")
        } else {
            dispatch(call)
        }
    }

    func finish(_ call: RPCCall, on sc: Subchannel, code: Int, message: String?) {
        if Self.debug && code != 0 { FileHandle.standardError.write(Data("rpc \(call.id) stream \(call.streamID) on #\(sc.id): \(code) \(message ?? "")\n".utf8)) }
        let micros = (NIODeadline.now().uptimeNanoseconds - call.startNanos) / 1000
        sc.stats.recordFinished(code: code, micros: micros, messages: call.messagesReceived)
        attribution.finished(call, on: sc, code: code, micros: micros)
        completed(code: code)
    }

    private func finishUnassigned(_ call: RPCCall, code: Int, message: String) {
        let micros = (NIODeadline.now().uptimeNanoseconds - call.startNanos) / 1000
        attribution.finishedUnassigned(code: code, micros: micros)
        completed(code: code, refill: false)
        // With no READY subchannel a closed loop would spin: this worker waits for the picker
        // to change, or `parkMs`.
        if case .concurrency = traffic, !stopping {
            parkedWorkers += 1
            if parkTimer == nil {
                parkTimer = loop.scheduleTask(in: .milliseconds(Self.parkMs)) { [weak self] in
                    self?.parkTimer = nil
                    self?.unpark()
                }
            }
        }
    }

    private func unpark() {
        parkTimer?.cancel()
        parkTimer = nil
        parkedWorkers = 0
        refillClosedLoop()
    }

    /// RPCs finished so far (any status), for benchmarks.
    public func finishedRPCs() -> EventLoopFuture<Int> { loop.submit { self.finishedCount } }
    private var finishedCount = 0

    private func completed(code: Int, refill: Bool = true) {
        finishedCount += 1
        inFlight -= 1
        if code != 0 { totalFailed += 1 }
        if refill { refillClosedLoop() }
    }

    /// Tops the closed loop up to its concurrency. Bounded: an RPC that fails at once inside
    /// `issue()` parks its worker instead of being issued again here.
    private func refillClosedLoop() {
        guard case .concurrency(let n) = traffic, !stopping else { return }
        let missing = n - inFlight - parkedWorkers
        guard missing > 0 else { return }
        for _ in 0..<missing where !stopping { issue() }
    }
}
