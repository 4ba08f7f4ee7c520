import Foundation
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
import TopologyCore
@testable import TopologyTransport

/// The client connection handler on NIO's embedded channel: frames in, frames out, virtual time,
/// no sockets. What the subchannel would be told is recorded by a delegate.
final class RecordingDelegate: ClientConnectionDelegate {
    var log: [String] = []
    var outcomes: [(streamID: Int32, outcome: String)] = []

    func connectionReceivedSettings(_ c: ClientConnectionHandler, maxConcurrentStreams: Int?) {
        log.append("settings \(maxConcurrentStreams.map(String.init) ?? "none")")
    }
    func connectionReceivedGoAway(_ c: ClientConnectionHandler, code: String, lastStreamID: Int, debug: String) {
        log.append("goaway \(code) \(lastStreamID)")
    }
    func connection(_ c: ClientConnectionHandler, finished call: RPCCall, outcome: RPCOutcome) {
        let text: String = switch outcome {
        case .status(let code, let message): "status \(code)\(message.map { " \($0)" } ?? "")"
        case .refused: "refused"
        case .transportFailure(let reason): "transport \(reason)"
        case .cancelled(let code, let message): "cancelled \(code) \(message)"
        }
        outcomes.append((call.streamID, text))
    }
    func connectionMeasuredRTT(_ c: ClientConnectionHandler, micros: Int64) { log.append("rtt") }
    func connectionHasCapacity(_ c: ClientConnectionHandler) { log.append("capacity") }
    func connectionClosed(_ c: ClientConnectionHandler, reason: String) { log.append("closed \(reason)") }
    func connection(_ c: ClientConnectionHandler, healthAnswered status: UInt64) { log.append("health \(status)") }
    func connection(_ c: ClientConnectionHandler, healthEnded code: Int?, message: String) {
        log.append("health ended \(code.map(String.init) ?? "-") \(message)")
    }
}

final class Connection {
    let channel = EmbeddedChannel()
    let handler: ClientConnectionHandler
    let delegate = RecordingDelegate()
    let request: RequestTemplate
    private var nextCall: UInt64 = 0

    init(keepalive: TimeAmount? = nil, keepaliveTimeout: TimeAmount = .seconds(20)) throws {
        handler = ClientConnectionHandler(keepalive: keepalive, keepaliveTimeout: keepaliveTimeout)
        handler.delegate = delegate
        var config = EngineConfig(target: "127.0.0.1:1", resolverName: "static", authority: "127.0.0.1:1")
        config.rpc = .greeter(name: "t")
        request = Engine.makeRequest(config)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func receive(_ payload: HTTP2Frame.FramePayload, stream: Int32 = 0) throws {
        try channel.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(stream), payload: payload))
        channel.pipeline.fireChannelReadComplete()
    }

    func settings(maxConcurrentStreams: Int?) throws {
        try receive(.settings(.settings(maxConcurrentStreams.map { [HTTP2Setting(parameter: .maxConcurrentStreams, value: $0)] } ?? [])))
    }

    /// Starts an RPC (deadline far away); returns its stream id.
    @discardableResult
    func start() -> Int32 {
        nextCall += 1
        let now = NIODeadline.now().uptimeNanoseconds
        let call = RPCCall(id: nextCall, startNanos: now, deadlineNanos: now + 600_000_000_000)
        handler.start(call, request: request)
        channel.embeddedEventLoop.run()
        return call.streamID
    }

    /// A whole OK answer on a stream: headers, one message, trailers.
    func answer(_ stream: Int32, status: String = "0") throws {
        try receive(.headers(.init(headers: HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")]))), stream: stream)
        var body = ByteBuffer()
        body.writeBytes([0, 0, 0, 0, 2, 0x0a, 0x00])
        try receive(.data(.init(data: .byteBuffer(body))), stream: stream)
        try receive(.headers(.init(headers: HPACKHeaders([("grpc-status", status)]), endStream: true)), stream: stream)
    }

    /// Frames the handler wrote since the last call.
    func written() throws -> [HTTP2Frame.FramePayload] {
        channel.embeddedEventLoop.run()
        var out: [HTTP2Frame.FramePayload] = []
        while let f = try channel.readOutbound(as: HTTP2Frame.self) { out.append(f.payload) }
        return out
    }

    func outcome(_ stream: Int32) -> String? { delegate.outcomes.first { $0.streamID == stream }?.outcome }
}

@Suite struct ConnectionHandlerTests {
    /// gRFC A17's Watch stream: a HEADERS + DATA(HealthCheckRequest) with END_STREAM to
    /// /grpc.health.v1.Health/Watch and no deadline; its answers reach the subchannel; it holds a
    /// stream slot (MAX_CONCURRENT_STREAMS 1 leaves none for RPCs); GOAWAY cancels it (RST_STREAM
    /// CANCEL) and frees the slot.
    @Test func healthWatchStream() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: 1)
        _ = try c.written()
        var config = EngineConfig(target: "127.0.0.1:1", resolverName: "static", authority: "127.0.0.1:1")
        config.timeoutMs = 5000
        c.handler.startHealthWatch(Engine.makeHealthRequest(config, service: "helloworld.Greeter"))
        let frames = try c.written()
        guard frames.count == 2, case .headers(let h) = frames[0], case .data(let d) = frames[1] else { Issue.record("\(frames)"); return }
        #expect(h.headers.first(name: ":path") == "/grpc.health.v1.Health/Watch" && h.headers.first(name: "grpc-timeout") == nil)
        guard case .byteBuffer(let body) = d.data else { Issue.record("body"); return }
        #expect(Array(body.readableBytesView) == [0, 0, 0, 0, 20, 0x0a, 18] + Array("helloworld.Greeter".utf8) && d.endStream)
        #expect(c.handler.healthStreamID == 1 && !c.handler.canOpenStream && c.handler.heldStreams == 1, "the Watch takes the only slot")
        try c.receive(.headers(.init(headers: HPACKHeaders([(":status", "200"), ("content-type", "application/grpc")]))), stream: 1)
        var answer = ByteBuffer()
        answer.writeBytes([0, 0, 0, 0, 2, 0x08, 0x02, 0, 0, 0, 0, 2, 0x08, 0x01])  // NOT_SERVING, SERVING
        try c.receive(.data(.init(data: .byteBuffer(answer))), stream: 1)
        #expect(c.delegate.log.suffix(2) == ["health 2", "health 1"])
        try c.settings(maxConcurrentStreams: 2)
        #expect(c.handler.canOpenStream)
        try c.receive(.goAway(lastStreamID: 1, errorCode: .noError, opaqueData: nil))
        let after = try c.written()
        #expect(after.contains { if case .rstStream(.cancel) = $0 { true } else { false } }, "\(after)")
        #expect(c.handler.healthStreamID == nil && c.handler.heldStreams == 0)
    }

    /// UNIMPLEMENTED as trailers-only, and a reset: the stream's end reaches the subchannel.
    @Test func healthWatchEnds() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: nil)
        let config = EngineConfig(target: "127.0.0.1:1", resolverName: "static", authority: "127.0.0.1:1")
        c.handler.startHealthWatch(Engine.makeHealthRequest(config, service: ""))
        try c.receive(.headers(.init(headers: HPACKHeaders([(":status", "200"), ("grpc-status", "12"), ("grpc-message", "Method not found")]), endStream: true)), stream: 1)
        #expect(c.delegate.log.contains("health ended 12 Method not found"), "\(c.delegate.log)")
        c.handler.startHealthWatch(Engine.makeHealthRequest(config, service: ""))
        #expect(c.handler.healthStreamID == 3)
        try c.receive(.rstStream(.internalError), stream: 3)
        #expect(c.delegate.log.contains { $0.hasPrefix("health ended - the Watch stream was reset") }, "\(c.delegate.log)")
        #expect(c.handler.healthStreamID == nil)
    }

    /// No stream before the server's SETTINGS; then its MAX_CONCURRENT_STREAMS is the limit, a
    /// finished stream frees a slot (capacity), and a later SETTINGS frame changes the limit.
    @Test func streamLimitFollowsThePeersSettings() throws {
        let c = try Connection()
        #expect(!c.handler.canOpenStream)
        try c.settings(maxConcurrentStreams: 2)
        #expect(c.delegate.log.first == "settings 2")
        #expect(c.handler.canOpenStream)
        let a = c.start(), b = c.start()
        #expect((a, b) == (1, 3))
        #expect(!c.handler.canOpenStream)
        try c.answer(a)
        #expect(c.outcome(a) == "status 0")
        #expect(c.delegate.log.last == "capacity")
        #expect(c.handler.canOpenStream)
        try c.settings(maxConcurrentStreams: 1)
        #expect(c.delegate.log.last == "settings 1")
        #expect(!c.handler.canOpenStream)
        try c.answer(b)
        #expect(c.handler.canOpenStream)
    }

    /// Each RPC is HEADERS then DATA with END_STREAM; the connection window is raised once to
    /// 16 MiB and replenished after half of it was consumed.
    @Test func requestFramesAndFlowControlWindow() throws {
        let c = try Connection()
        let opening = try c.written()
        let raises = opening.compactMap { if case .windowUpdate(let n) = $0 { n } else { nil } }
        #expect(raises == [ClientConnectionHandler.connectionWindowTarget - 65_535])
        try c.settings(maxConcurrentStreams: nil)
        _ = try c.written()  // the first PING (RTT)
        let s = c.start()
        let frames = try c.written()
        #expect(frames.count == 2)
        if case .headers(let h) = frames[0] {
            #expect(h.headers.first(name: ":path") == "/helloworld.Greeter/SayHello")
            #expect(h.headers.first(name: "te") == "trailers")
        } else { Issue.record("first frame: \(frames[0])") }
        if case .data(let d) = frames[1] { #expect(d.endStream) } else { Issue.record("second frame: \(frames[1])") }
        // 9 MiB of DATA on the stream: one WINDOW_UPDATE for the connection.
        for _ in 0..<9 {
            try c.receive(.data(.init(data: .byteBuffer(ByteBuffer(repeating: 0, count: 1 << 20)))), stream: s)
        }
        let updates = try c.written().compactMap { if case .windowUpdate(let n) = $0 { n } else { nil } }
        #expect(updates == [8 << 20])
    }

    /// GOAWAY: streams above last-stream-id were never seen by the server and are handed back for
    /// a transparent retry; the ones below finish normally; no new stream opens; the connection
    /// closes once the last one is done.
    @Test func goAwayRefusesOnlyStreamsAboveTheLastID() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: nil)
        let ids = (0..<3).map { _ in c.start() }
        try c.receive(.goAway(lastStreamID: HTTP2StreamID(3), errorCode: .noError, opaqueData: nil))
        #expect(c.outcome(ids[2]) == "refused")
        #expect(c.outcome(ids[0]) == nil && c.outcome(ids[1]) == nil)
        #expect(c.delegate.log.contains("goaway NO_ERROR 3"))
        #expect(!c.handler.canOpenStream)
        try c.answer(ids[0])
        #expect(c.channel.isActive)
        try c.answer(ids[1])
        #expect(c.outcome(ids[1]) == "status 0")
        c.channel.embeddedEventLoop.run()
        #expect(!c.channel.isActive)
        #expect(c.delegate.log.last == "closed GOAWAY drained")
    }

    /// RST_STREAM codes as gRPC maps them: REFUSED_STREAM is retried, CANCEL is CANCELLED, the
    /// rest INTERNAL; other streams are untouched.
    @Test func rstStreamCodes() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: nil)
        let ids = (0..<4).map { _ in c.start() }
        try c.receive(.rstStream(.refusedStream), stream: ids[0])
        try c.receive(.rstStream(.cancel), stream: ids[1])
        try c.receive(.rstStream(.protocolError), stream: ids[2])
        #expect(c.outcome(ids[0]) == "refused")
        #expect(c.outcome(ids[1]) == "status 1 stream cancelled by the server")
        #expect(c.outcome(ids[2]) == "status 13 RST_STREAM PROTOCOL_ERROR")
        #expect(c.outcome(ids[3]) == nil)
        #expect(c.handler.activeStreams == 1)
    }

    /// Trailers-only errors, HTTP errors from a non-gRPC peer, and a response cut inside a message.
    @Test func statusesFromTheResponse() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: nil)
        let a = c.start(), b = c.start(), d = c.start()
        try c.receive(.headers(.init(headers: HPACKHeaders([(":status", "200"), ("grpc-status", "14"), ("grpc-message", "pod%20draining")]), endStream: true)), stream: a)
        try c.receive(.headers(.init(headers: HPACKHeaders([(":status", "503")]))), stream: b)
        try c.receive(.headers(.init(headers: HPACKHeaders([(":status", "200")]))), stream: d)
        try c.receive(.data(.init(data: .byteBuffer(ByteBuffer(bytes: [0, 0, 0, 0, 9, 1])))), stream: d)
        try c.receive(.headers(.init(headers: HPACKHeaders([("grpc-status", "0")]), endStream: true)), stream: d)
        #expect(c.outcome(a) == "status 14 pod draining")
        #expect(c.outcome(b) == "status 14 HTTP status 503")
        #expect(c.outcome(d)?.hasPrefix("status 13 the response ended inside a message") == true)
        #expect(try c.written().contains { if case .rstStream(.cancel) = $0 { true } else { false } })
    }

    /// Keepalive (virtual time): a PING every interval; an answered one measures the RTT; one
    /// unanswered past the timeout closes the connection, failing what was in flight.
    @Test func keepaliveTimeoutClosesTheConnection() throws {
        let c = try Connection(keepalive: .seconds(10), keepaliveTimeout: .seconds(2))
        try c.settings(maxConcurrentStreams: nil)
        let first = try c.written().compactMap { if case .ping(let d, false) = $0 { d } else { nil } }
        #expect(first.count == 1)
        try c.receive(.ping(first[0], ack: true))
        #expect(c.delegate.log.contains("rtt"))
        let s = c.start()
        c.channel.embeddedEventLoop.advanceTime(by: .seconds(10))
        let pings = try c.written().compactMap { if case .ping(_, false) = $0 { 1 } else { nil } }
        #expect(pings.count == 1)
        c.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(c.channel.isActive)
        c.channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!c.channel.isActive)
        #expect(c.outcome(s) == "transport keepalive timeout")
        #expect(c.delegate.log.last == "closed keepalive timeout")
    }

    /// Draining (a subchannel shut down or renewed): no new streams, in-flight ones finish, then
    /// the connection closes by itself.
    @Test func drainFinishesInFlightStreamsThenCloses() throws {
        let c = try Connection()
        try c.settings(maxConcurrentStreams: nil)
        let s = c.start()
        c.handler.drain()
        #expect(!c.handler.canOpenStream)
        #expect(c.channel.isActive)
        try c.answer(s)
        c.channel.embeddedEventLoop.run()
        #expect(c.outcome(s) == "status 0")
        #expect(!c.channel.isActive)
        #expect(c.delegate.log.last == "closed subchannel shutdown")
    }
}

/// The lifecycle alone: which transitions exist and what each reports.
@Suite struct ConnectionLifecycleTests {
    @Test func openOnlyAfterSettings() {
        var l = ConnectionLifecycle()
        #expect(!l.acceptsStreams)
        let r1 = l.receivedSettings()
        #expect(r1)
        #expect(l.acceptsStreams && l.phase == .open)
        let again = l.receivedSettings()
        #expect(!again)  // a later SETTINGS frame changes nothing here
    }

    @Test func goAwayAndDrainCombine() {
        var l = ConnectionLifecycle()
        _ = l.receivedSettings()
        let r2 = l.receivedGoAway()
        #expect(r2)
        let r3 = l.receivedGoAway()
        #expect(!r3)
        let r4 = l.drain()
        #expect(r4)
        let r5 = l.drain()
        #expect(!r5)
        #expect(l.phase == .goingAway(peer: true, local: true))
        #expect(!l.acceptsStreams && l.isGoingAway)
        #expect(l.idleCloseReason(streamsEmpty: false) == nil)
        #expect(l.idleCloseReason(streamsEmpty: true) == "GOAWAY drained")
    }

    @Test func theFirstReasonWinsUnlessATimeoutOverrides() {
        var l = ConnectionLifecycle()
        _ = l.receivedSettings()
        l.closing(because: "GOAWAY drained")
        l.closing(because: "connection reset")
        #expect(l.closeReason == "GOAWAY drained")
        l.closing(because: "keepalive timeout", overriding: true)
        let r6 = l.closed(streamsEmpty: true, beforeSettingsHint: "")
        #expect(r6 == "keepalive timeout")
        let twice = l.closed(streamsEmpty: true, beforeSettingsHint: "")
        #expect(twice == nil)  // reported once
        #expect(l.isClosed && l.isGoingAway && !l.acceptsStreams)
    }

    @Test func closedWithoutAReason() {
        var before = ConnectionLifecycle()
        let r7 = before.closed(streamsEmpty: true, beforeSettingsHint: " (a TLS port? try --tls)")
        #expect(r7 == "connection closed before the server's HTTP/2 SETTINGS (a TLS port? try --tls)")
        var busy = ConnectionLifecycle()
        _ = busy.receivedSettings()
        let r8 = busy.closed(streamsEmpty: false, beforeSettingsHint: "")
        #expect(r8 == "connection reset")
        var drained = ConnectionLifecycle()
        _ = drained.receivedSettings()
        _ = drained.drain()
        let r9 = drained.closed(streamsEmpty: true, beforeSettingsHint: "")
        #expect(r9 == "connection closed")
        var drainedEarly = ConnectionLifecycle()
        let r10 = drainedEarly.drain()
        #expect(r10)
        #expect(drainedEarly.idleCloseReason(streamsEmpty: true) == "subchannel shutdown")
    }
}
