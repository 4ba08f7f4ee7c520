#if canImport(Glibc)
import Glibc
#endif
import GRPCWire
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import Foundation
import TopologyCore

/// One in-flight (or queued) unary RPC. Event-loop confined, like everything in the engine.
final class RPCCall {
    let id: UInt64
    let startNanos: UInt64
    let deadlineNanos: UInt64
    /// Transparent retries so far (streams refused by GOAWAY or REFUSED_STREAM).
    var retries = 0
    var streamID: Int32 = 0
    var identity: String?
    var sawHeaders = false
    /// Counts the response's messages (gRPC framing, TopologyCore's `GRPCMessageFramer`).
    var framer = GRPCMessageFramer()
    var messagesReceived: Int { framer.messages }
    var oversized: UInt32? { framer.oversized }
    var insideMessage: Bool { framer.insideMessage }

    init(id: UInt64, startNanos: UInt64, deadlineNanos: UInt64) {
        self.id = id
        self.startNanos = startNanos
        self.deadlineNanos = deadlineNanos
    }

    /// Counts complete gRPC messages in a response DATA frame; a prefix over `limit` sets
    /// `oversized` (the caller ends the RPC with RESOURCE_EXHAUSTED) and nothing is buffered.
    func consume(_ buffer: ByteBuffer, limit: Int) {
        buffer.withUnsafeReadableBytes { framer.consume($0, limit: limit) }
    }
}

/// How an RPC ended, as the connection saw it.
enum RPCOutcome {
    /// The server answered with this grpc-status.
    case status(Int, message: String?)
    /// The stream never reached the server's application (GOAWAY above last-stream-id,
    /// REFUSED_STREAM): gRPC retries these transparently on another connection.
    case refused
    /// The connection failed underneath the RPC.
    case transportFailure(String)
    /// grpctop ended the RPC itself (deadline, a message over the limit, the run ended): a
    /// status, but not one the server sent.
    case cancelled(Int, message: String)
}

/// What the connection tells its subchannel. All calls happen on the event loop.
protocol ClientConnectionDelegate: AnyObject {
    func connectionReceivedSettings(_ connection: ClientConnectionHandler, maxConcurrentStreams: Int?)
    func connectionReceivedGoAway(_ connection: ClientConnectionHandler, code: String, lastStreamID: Int, debug: String)
    func connection(_ connection: ClientConnectionHandler, finished call: RPCCall, outcome: RPCOutcome)
    func connectionMeasuredRTT(_ connection: ClientConnectionHandler, micros: Int64)
    func connectionHasCapacity(_ connection: ClientConnectionHandler)
    func connectionClosed(_ connection: ClientConnectionHandler, reason: String)
    /// gRFC A17: the Watch stream's answer (HealthCheckResponse.status: 0 UNKNOWN, 1 SERVING,
    /// 2 NOT_SERVING, 3 SERVICE_UNKNOWN).
    func connection(_ connection: ClientConnectionHandler, healthAnswered status: UInt64)
    /// The Watch stream ended: its grpc-status (nil when reset or malformed) and why.
    func connection(_ connection: ClientConnectionHandler, healthEnded code: Int?, message: String)
}

/// The request every RPC of a run sends: headers built once, the framed message built once.
struct RequestTemplate {
    var headers: HPACKHeaders
    var body: ByteBuffer
}

/// One HTTP/2 connection, as a single handler after `NIOHTTP2Handler` with no stream
/// multiplexer: it allocates stream ids itself, writes `HTTP2Frame`s, and sees every frame of
/// every stream (../shared/RECIPES.md: this layout matches h2load's RPS at a third of the CPU of a
/// child channel per RPC). It owns inbound flow control, tracks GOAWAY itself (NIO only fails
/// new streams after one), measures PING round trips and runs keepalive.
///
/// Threading: everything happens on the channel's event loop, which is also the engine's.
final class ClientConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    weak var delegate: (any ClientConnectionDelegate)?
    private var context: ChannelHandlerContext?
    private(set) var streams = StreamTable()
    private var nextStreamID: Int32 = 1
    /// awaitingSettings → open → goingAway → closed (`ConnectionLifecycle`).
    private(set) var lifecycle = ConnectionLifecycle()
    var settingsReceived: Bool { lifecycle.settingsReceived }
    private(set) var peerMaxConcurrentStreams: Int?
    private var inRead = false
    private var flushPending = false
    private var consumedSinceUpdate = 0
    private var pendingPings: [UInt64: UInt64] = [:]
    private var pingCounter: UInt64 = 0
    private var keepaliveTask: RepeatedTask?
    private var keepaliveTimeout: Scheduled<Void>?
    private var deadlineTask: RepeatedTask?

    let keepaliveInterval: TimeAmount?
    let keepaliveTimeoutAmount: TimeAmount
    static let connectionWindowTarget = 16 * 1024 * 1024
    static let initialStreamWindow = 4 * 1024 * 1024

    init(keepalive: TimeAmount?, keepaliveTimeout: TimeAmount = .seconds(20)) {
        self.keepaliveInterval = keepalive
        self.keepaliveTimeoutAmount = keepaliveTimeout
    }

    /// The limit in force: the peer's MAX_CONCURRENT_STREAMS, or NIO's default cap of 100.
    var streamLimit: Int { peerMaxConcurrentStreams ?? 100 }
    var activeStreams: Int { streams.count }
    var canOpenStream: Bool {
        lifecycle.acceptsStreams && streams.count + healthSlots < streamLimit && nextStreamID < Int32.max - 2
    }

    // MARK: - the health-check stream (gRFC A17)

    /// The open `grpc.health.v1.Health/Watch` stream: it holds one of the peer's
    /// MAX_CONCURRENT_STREAMS slots for as long as the connection lives.
    private(set) var healthStreamID: Int32?
    /// A Watch waiting for a free stream slot.
    private var healthPending: RequestTemplate?
    private var healthReader = GRPCMessageReader(limit: 64 * 1024)
    private var healthSawHeaders = false
    private var healthUnacknowledged = 0
    private var healthSlots: Int { healthStreamID == nil && healthPending == nil ? 0 : 1 }
    /// Streams held now, the health-check stream included.
    var heldStreams: Int { streams.count + (healthStreamID == nil ? 0 : 1) }

    /// Opens the Watch stream (now, or as soon as a slot frees up).
    func startHealthWatch(_ request: RequestTemplate) {
        guard healthStreamID == nil, lifecycle.acceptsStreams else { return }
        guard let context, streams.count < streamLimit, nextStreamID < Int32.max - 2 else {
            healthPending = request
            return
        }
        healthPending = nil
        let id = nextStreamID
        nextStreamID += 2
        healthStreamID = id
        healthReader = GRPCMessageReader(limit: 64 * 1024)
        healthSawHeaders = false
        healthUnacknowledged = 0
        let sid = HTTP2StreamID(id)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: sid, payload: .headers(.init(headers: request.headers)))), promise: nil)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: sid, payload: .data(.init(data: .byteBuffer(request.body), endStream: true)))), promise: nil)
        scheduleFlush()
    }

    /// Cancels the Watch stream (GOAWAY, shutdown, health checking turned off): no report.
    func stopHealthWatch() {
        healthPending = nil
        guard let id = healthStreamID else { return }
        healthStreamID = nil
        if let context {
            context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .rstStream(.cancel))), promise: nil)
            scheduleFlush()
        }
    }

    private func healthEnded(code: Int?, message: String) {
        healthStreamID = nil
        delegate?.connection(self, healthEnded: code, message: message)
        afterStreamEnded()
    }

    /// A frame on the Watch stream.
    private func healthFrame(_ payload: HTTP2Frame.FramePayload, context: ChannelHandlerContext) {
        switch payload {
        case .headers(let h):
            let fields = GRPCResponseHeaders(h.headers, identityHeader: nil)
            if h.endStream {
                let (code, message) = fields.outcome(sawHeaders: healthSawHeaders)
                healthEnded(code: code, message: message ?? GRPCStatusName.name(code))
            } else {
                healthSawHeaders = true
                if let status = fields.status, status != "200" {
                    stopHealthWatch()
                    healthEnded(code: GRPCResponseHeaders.statusFromHTTP(status), message: "HTTP status \(status)")
                }
            }
        case .data(let d):
            guard case .byteBuffer(let buf) = d.data else { break }
            healthUnacknowledged += buf.readableBytes
            if healthUnacknowledged >= Self.initialStreamWindow / 2, let id = healthStreamID {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(id), payload: .windowUpdate(windowSizeIncrement: healthUnacknowledged))), promise: nil)
                healthUnacknowledged = 0
                flushPending = true
            }
            do {
                for message in try healthReader.read(buf.readableBytesView) {
                    // HealthCheckResponse { ServingStatus status = 1; } — absent is UNKNOWN (0).
                    guard ProtoWire.fields(message) != nil else {
                        stopHealthWatch()
                        return healthEnded(code: nil, message: "a malformed HealthCheckResponse")
                    }
                    delegate?.connection(self, healthAnswered: ProtoWire.varint(field: 1, in: message) ?? 0)
                }
            } catch {
                stopHealthWatch()
                return healthEnded(code: nil, message: "a HealthCheckResponse over 64 KiB")
            }
            if d.endStream { healthEnded(code: nil, message: "the server closed the Watch stream without trailers") }
        case .rstStream(let code):
            healthEnded(code: nil, message: "the Watch stream was reset (\(HTTP2ErrorText.name(code)))")
        default:
            break
        }
    }

    // MARK: - lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { raiseConnectionWindow(context: context) }
        deadlineTask = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { [weak self] _ in
            self?.expireDeadlines()
        }
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()  // NIOHTTP2Handler has sent the preface and SETTINGS by now
        raiseConnectionWindow(context: context)
    }

    private var windowRaised = false

    /// Raises the connection window so responses never stall on it (we own flow control).
    private func raiseConnectionWindow(context: ChannelHandlerContext) {
        guard !windowRaised else { return }
        windowRaised = true
        let increment = Self.connectionWindowTarget - 65_535
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: increment))), promise: nil)
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    private func stopTimers() {
        keepaliveTask?.cancel()
        keepaliveTask = nil
        keepaliveTimeout?.cancel()
        keepaliveTimeout = nil
        deadlineTask?.cancel()
        deadlineTask = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Closed before SETTINGS: plaintext HTTP/2 to a TLS port (the server drops the connection
        // on our preface) — or, at an address that spoke HTTP/2 before, a server going away (a
        // killed pod whose kernel still accepted the connection).
        if let reason = lifecycle.closed(streamsEmpty: streams.isEmpty, beforeSettingsHint: tlsHint) {
            finishClosed(reason: reason)
        }
        context.fireChannelInactive()
    }

    /// Set by the subchannel when the connection runs over TLS.
    var usesTLS = false
    /// Set by the subchannel when this address has answered with HTTP/2 SETTINGS before.
    var spokeHTTP2Before = false
    private var tlsHint: String { usesTLS || spokeHTTP2Before ? "" : " (a TLS port? try --tls)" }
    /// The largest response message accepted (gRPC's default receive limit: 4 MiB).
    var maxReceiveBytes = 4 * 1024 * 1024

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if lifecycle.closeReason == nil {
            if let sniffed = error as? ServerPrefaceSniffer.NotHTTP2 {
                lifecycle.closing(because: sniffed.reason)
            } else if !settingsReceived && Self.isFramingError(error) {
                lifecycle.closing(because: "the server does not speak HTTP/2 (an HTTP/1.1 port?)")
            } else if !settingsReceived, let io = error as? IOError, io.errnoCode == ECONNRESET {
                lifecycle.closing(because: "connection reset before the server's HTTP/2 SETTINGS" + tlsHint)
            } else {
                lifecycle.closing(because: Self.describe(error))
            }
        }
        // Stream-level errors (e.g. a stream created after GOAWAY) are handled by the stream logic;
        // connection-level ones close the channel.
        if error is NIOHTTP2Errors.StreamError || error is NIOHTTP2Errors.NoSuchStream { return }
        context.close(promise: nil)
    }



    private func finishClosed(reason: String) {
        stopTimers()
        healthStreamID = nil
        healthPending = nil
        let calls = streams.removeAll()
        for call in calls {
            delegate?.connection(self, finished: call, outcome: .transportFailure(reason))
        }
        delegate?.connectionClosed(self, reason: reason)
    }

    /// Stops opening streams; closes once in-flight ones finish (or after `grace`).
    func drain(grace: TimeAmount = .seconds(30)) {
        stopHealthWatch()
        guard let context, lifecycle.drain() else { return }
        if streams.isEmpty {
            lifecycle.closing(because: "subchannel shutdown")
            context.close(promise: nil)
            return
        }
        context.eventLoop.scheduleTask(in: grace) { [weak self] in
            guard let self, let ctx = self.context, !self.lifecycle.isClosed else { return }
            self.lifecycle.closing(because: "subchannel shutdown (drain timeout)", overriding: true)
            ctx.close(promise: nil)
        }
    }

    func close(reason: String) {
        lifecycle.closing(because: reason)
        context?.close(promise: nil)
    }

    // MARK: - streams

    /// Opens a stream and writes the whole request (HEADERS + DATA with END_STREAM).
    func start(_ call: RPCCall, request: RequestTemplate) {
        guard let context else { return }
        let id = nextStreamID
        nextStreamID += 2
        call.streamID = id
        streams[id] = call
        let streamID = HTTP2StreamID(id)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .headers(.init(headers: request.headers)))), promise: nil)
        context.write(
            wrapOutboundOut(HTTP2Frame(streamID: streamID, payload: .data(.init(data: .byteBuffer(request.body), endStream: true)))),
            promise: nil)
        scheduleFlush()
    }

    /// Cancels a stream (deadline, end of the run, a message over the size limit): RST_STREAM
    /// CANCEL, and the RPC ends with `code`.
    private func cancel(_ call: RPCCall, code: Int = 4, message: String = "deadline exceeded") {
        guard let context, streams.removeValue(forKey: call.streamID) != nil else { return }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(call.streamID), payload: .rstStream(.cancel))), promise: nil)
        scheduleFlush()
        delegate?.connection(self, finished: call, outcome: .cancelled(code, message: message))
        afterStreamEnded()
    }

    /// Cancels every stream in flight, ending each RPC with `code`.
    func cancelAll(code: Int, message: String) {
        var calls: [RPCCall] = []
        streams.forEach { calls.append($0) }
        for call in calls.sorted(by: { $0.streamID < $1.streamID }) { cancel(call, code: code, message: message) }
    }

    private func scheduleFlush() {
        if inRead { flushPending = true; return }
        guard !flushPending, let context else { return }
        flushPending = true
        context.eventLoop.execute { [weak self] in
            guard let self, self.flushPending else { return }
            self.flushPending = false
            self.context?.flush()
        }
    }

    private func expireDeadlines() {
        guard !streams.isEmpty else { return }
        let now = NIODeadline.now().uptimeNanoseconds
        var expired: [RPCCall] = []
        streams.forEach { call in if call.deadlineNanos <= now { expired.append(call) } }
        for call in expired.sorted(by: { $0.streamID < $1.streamID }) { cancel(call) }
    }

    private func afterStreamEnded() {
        if let reason = lifecycle.idleCloseReason(streamsEmpty: streams.isEmpty), let context {
            lifecycle.closing(because: reason)
            context.close(promise: nil)
            return
        }
        if let pending = healthPending, streams.count < streamLimit { startHealthWatch(pending) }
        if canOpenStream { delegate?.connectionHasCapacity(self) }
    }

    // MARK: - inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inRead = true
        let frame = unwrapInboundIn(data)
        let sid = Int32(frame.streamID)
        if sid != 0 && sid == healthStreamID {
            if case .data(let d) = frame.payload {
                consumedSinceUpdate += d.data.readableBytes
            }
            healthFrame(frame.payload, context: context)
            return
        }
        switch frame.payload {
        case .headers(let h):
            guard let call = streams[sid] else { break }
            let fields = GRPCResponseHeaders(h.headers, identityHeader: pendingIdentityHeader)
            if call.identity == nil, let v = fields.identity { call.identity = v }
            if h.endStream {
                streams[sid] = nil
                var outcome = Self.outcome(fields, sawHeaders: call.sawHeaders)
                if case .status(0, _) = outcome, call.insideMessage {
                    // OK trailers after a message that never arrived whole: not a success.
                    outcome = .status(13, message: "the response ended inside a message (its length prefix claims more bytes than were sent)")
                }
                delegate?.connection(self, finished: call, outcome: outcome)
                afterStreamEnded()
            } else {
                call.sawHeaders = true
                if let status = fields.status, status != "200" {
                    streams[sid] = nil
                    context.write(wrapOutboundOut(HTTP2Frame(streamID: frame.streamID, payload: .rstStream(.cancel))), promise: nil)
                    flushPending = true
                    delegate?.connection(self, finished: call, outcome: .status(GRPCResponseHeaders.statusFromHTTP(status), message: "HTTP status \(status)"))
                    afterStreamEnded()
                }
            }
        case .data(let d):
            let length = d.data.readableBytes
            consumedSinceUpdate += length
            if consumedSinceUpdate >= Self.connectionWindowTarget / 2 {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: consumedSinceUpdate))), promise: nil)
                consumedSinceUpdate = 0
                flushPending = true
            }
            guard let call = streams[sid] else { break }
            if case .byteBuffer(let buf) = d.data { call.consume(buf, limit: maxReceiveBytes) }
            if let size = call.oversized {
                cancel(call, code: 8, message: "received a message larger than the limit (\(size) vs. \(maxReceiveBytes) bytes; --max-recv-size)")
                break
            }
            if d.endStream {
                streams[sid] = nil
                delegate?.connection(self, finished: call, outcome: .status(13, message: "server closed the stream without trailers"))
                afterStreamEnded()
            }
        case .rstStream(let code):
            guard let call = streams.removeValue(forKey: sid) else { break }
            delegate?.connection(self, finished: call, outcome: Self.outcome(rst: code))
            afterStreamEnded()
        case .settings(.settings(let settings)):
            var max: Int?
            for s in settings where s.parameter == .maxConcurrentStreams { max = s.value }
            if lifecycle.receivedSettings() {
                peerMaxConcurrentStreams = max
                delegate?.connectionReceivedSettings(self, maxConcurrentStreams: max)
                sendPing()
                startKeepalive(context: context)
            } else if let max {
                peerMaxConcurrentStreams = max
                delegate?.connectionReceivedSettings(self, maxConcurrentStreams: max)
            }
        case .ping(let data, let ack):
            if ack { pingAcked(data) }
        case .goAway(let lastStreamID, let errorCode, let opaque):
            handleGoAway(lastStreamID: Int32(lastStreamID), code: errorCode, debug: opaque.map { String(buffer: $0) } ?? "")
        case .windowUpdate, .priority, .pushPromise, .alternativeService, .origin, .settings(.ack):
            break
        }
    }

    /// Set by the subchannel: the response header that names the backend.
    var pendingIdentityHeader: String?

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closedEvent = event as? StreamClosedEvent {
            // A stream NIO closed under us (protocol error, created after GOAWAY…).
            let sid = Int32(closedEvent.streamID)
            if sid == healthStreamID {
                healthEnded(code: nil, message: "the Watch stream was closed (\(closedEvent.reason.map { HTTP2ErrorText.name($0) } ?? "no reason"))")
            } else if let call = streams.removeValue(forKey: sid) {
                let outcome: RPCOutcome = closedEvent.reason == .refusedStream || lifecycle.goAwayReceived
                    ? .refused : Self.outcome(rst: closedEvent.reason ?? .cancel)
                delegate?.connection(self, finished: call, outcome: outcome)
                afterStreamEnded()
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func handleGoAway(lastStreamID: Int32, code: HTTP2ErrorCode, debug: String) {
        let first = lifecycle.receivedGoAway()
        // Streams the server never processed are retried elsewhere (transparent retry).
        var refused: [RPCCall] = []
        streams.forEach { if $0.streamID > lastStreamID { refused.append($0) } }
        refused.sort { $0.streamID < $1.streamID }
        for call in refused {
            streams[call.streamID] = nil
            delegate?.connection(self, finished: call, outcome: .refused)
        }
        // A17: the Watch call is cancelled on GOAWAY (the next connection starts its own).
        stopHealthWatch()
        if first || !refused.isEmpty {
            delegate?.connectionReceivedGoAway(self, code: HTTP2ErrorText.name(code), lastStreamID: Int(lastStreamID), debug: debug)
        }
        afterStreamEnded()
    }

    // MARK: - PING, keepalive

    private func sendPing() {
        guard let context else { return }
        pingCounter += 1
        pendingPings[pingCounter] = NIODeadline.now().uptimeNanoseconds
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(HTTP2PingData(withInteger: pingCounter), ack: false))), promise: nil)
        scheduleFlush()
    }

    private func pingAcked(_ data: HTTP2PingData) {
        guard let sent = pendingPings.removeValue(forKey: data.integer) else { return }
        let micros = Int64((NIODeadline.now().uptimeNanoseconds - sent) / 1000)
        keepaliveTimeout?.cancel()
        keepaliveTimeout = nil
        delegate?.connectionMeasuredRTT(self, micros: micros)
    }

    private func startKeepalive(context: ChannelHandlerContext) {
        guard let interval = keepaliveInterval else { return }
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            guard let self, !self.lifecycle.isClosed else { return }
            self.sendPing()
            if self.keepaliveTimeout == nil, let ctx = self.context {
                self.keepaliveTimeout = ctx.eventLoop.scheduleTask(in: self.keepaliveTimeoutAmount) { [weak self] in
                    guard let self else { return }
                    self.lifecycle.closing(because: "keepalive timeout", overriding: true)
                    self.context?.close(promise: nil)
                }
            }
        }
    }

    // MARK: - helpers

    static func outcome(_ trailers: GRPCResponseHeaders, sawHeaders: Bool) -> RPCOutcome {
        let (code, message) = trailers.outcome(sawHeaders: sawHeaders)
        return .status(code, message: message)
    }

    /// gRPC's mapping of HTTP/2 RST_STREAM codes to statuses (`HTTP2ErrorText`).
    static func outcome(rst code: HTTP2ErrorCode) -> RPCOutcome {
        guard let (code, message) = HTTP2ErrorText.status(rst: code) else { return .refused }
        return .status(code, message: message)
    }
}
