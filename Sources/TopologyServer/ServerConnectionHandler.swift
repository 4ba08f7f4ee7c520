#if canImport(Glibc)
import Glibc
#endif
import GRPCWire
import NIOCore
import NIOHPACK
import NIOHTTP2
import TopologyCore

/// One server-side HTTP/2 connection: a single handler after `NIOHTTP2Handler`, no multiplexer.
/// Event-loop confined.
final class ServerConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private struct Stream {
        var path = ""
        var body: ByteBuffer?
        var responding = false
        var watch = false
    }

    // Strong: a killed server may be dropped by its owner before its connections finish closing
    // (the cycle ends when the connection unregisters).
    private let server: TestServer
    private var context: ChannelHandlerContext?
    private(set) var eventLoop: EventLoop?
    private var streams: [Int32: Stream] = [:]
    private var highestStream: Int32 = 0
    private var closing = false
    private var finalGoAwaySent = false
    private var consumed = 0
    private var inRead = false
    private var flushPending = false
    private var localAddress = "?"
    private static let drainPing = HTTP2PingData(withInteger: 0x6772_7063_746f_7021)

    /// The pass-through beneath NIO's HTTP/2 handler that writes the first GOAWAY.
    let rawWriter: RawFrameWriter?

    init(server: TestServer, rawWriter: RawFrameWriter? = nil) {
        self.server = server
        self.rawWriter = rawWriter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
        if let a = context.channel.localAddress, let ip = a.ipAddress, let port = a.port {
            localAddress = HostPort(host: ip, port: port).description
        } else if let path = server.config.unixPath {
            localAddress = "unix:\(path)"
        }
        if context.channel.isActive { raiseConnectionWindow(context: context) }
        if let age = server.config.maxConnectionAgeMs {
            // gRFC A9: ±10 % jitter so connections made together do not all close together.
            let jittered = Int64(Double(age) * Double.random(in: 0.9...1.1))
            context.eventLoop.scheduleTask(in: .milliseconds(jittered)) { [weak self] in
                self?.startGracefulClose(reason: "max_age")
            }
        }
    }

    private var windowRaised = false

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        raiseConnectionWindow(context: context)
    }

    private func raiseConnectionWindow(context: ChannelHandlerContext) {
        guard !windowRaised else { return }
        windowRaised = true
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: 16 * 1024 * 1024 - 65_535))), promise: nil)
        context.flush()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        server.unregister(self)
    }

    func channelInactive(context: ChannelHandlerContext) {
        server.unregister(self)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Stream-scoped errors leave the connection up: after our GOAWAY, NIO refuses streams
        // the client opened before it saw it (CreatedStreamAfterGoaway) and then reports their
        // DATA as NoSuchStream. Closing here would cut the RPCs still being answered.
        if error is NIOHTTP2Errors.StreamError || error is NIOHTTP2Errors.NoSuchStream { return }
        // Writes after our half-close (PING ACKs for a client still sending): nothing to close.
        if let e = error as? ChannelError, e == .outputClosed { return }
        context.close(promise: nil)
    }

    /// Reset the connection: SO_LINGER 0 then close, so the peer sees ECONNRESET.
    func abort() {
        guard let channel = context?.channel else { return }
        closing = true
        if let provider = channel as? SocketOptionProvider {
            provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }

    // MARK: - graceful close (GOAWAY, PING, GOAWAY, drain)

    func startGracefulClose(reason: String) {
        guard !closing, let context else { return }
        closing = true
        // The first GOAWAY (last stream ID 2^31-1) changes nothing for NIO's state machine to
        // enforce, and must not pass through it: NIO would call the connection fully quiesced
        // whenever no stream happens to be open at that instant, refuse the streams the client
        // opens before it reads the GOAWAY, then take their DATA as a protocol error and fail
        // every RPC on the connection. So it is written beneath NIO's HTTP/2 handler.
        if let raw = rawWriter {
            raw.writeGoAway(lastStreamID: Int32.max, debug: Array(reason.utf8))
        } else {
            let debug = context.channel.allocator.buffer(string: reason)
            context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: debug))), promise: nil)
        }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(Self.drainPing, ack: false))), promise: nil)
        context.flush()
        // If the PING ACK never comes, send the final GOAWAY anyway.
        context.eventLoop.scheduleTask(in: .seconds(1)) { [weak self] in self?.sendFinalGoAway() }
        let grace = server.config.maxConnectionAgeMs != nil && reason == "max_age" ? server.config.maxConnectionAgeGraceMs : server.config.drainGraceMs
        context.eventLoop.scheduleTask(in: .milliseconds(grace)) { [weak self] in self?.context?.close(promise: nil) }
    }

    private func sendFinalGoAway() {
        guard closing, !finalGoAwaySent, let context else { return }
        finalGoAwaySent = true
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: HTTP2StreamID(highestStream), errorCode: .noError, opaqueData: nil))), promise: nil)
        context.flush()
        // Watch streams never end on their own: finish them now.
        for (id, s) in streams where s.watch { sendTrailers(id, status: 0, message: nil) }
        closeIfDone()
    }

    private var closeScheduled = false

    /// After the final GOAWAY, once every stream is answered, the client closes the connection
    /// (gRPC clients do when a GOAWAY'd connection has no streams left). Closing from this side
    /// at once would race with frames the client is still sending (WINDOW_UPDATE, PING ACK): a
    /// socket closed with its peer still sending answers with RST, and an RST makes the
    /// client's kernel drop the responses it has not read yet — a busy client would lose RPCs
    /// that had succeeded. So wait for the client; if it has not closed within a second, close
    /// only our sending side (FIN: it still reads every response, and what it sends is read and
    /// dropped), and close fully 10 s later. (TLS connections close fully after the second.)
    private func closeIfDone() {
        guard closing && finalGoAwaySent && streams.isEmpty && !closeScheduled, let context else { return }
        closeScheduled = true
        context.flush()
        let tls = server.config.tlsCertPath != nil
        context.eventLoop.scheduleTask(in: .seconds(1)) { [weak self] in
            guard let self, let ctx = self.context else { return }
            if tls {
                ctx.close(promise: nil)
                return
            }
            ctx.close(mode: .output, promise: nil)
            ctx.eventLoop.scheduleTask(in: .seconds(10)) { [weak self] in self?.context?.close(promise: nil) }
        }
    }

    // MARK: - inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inRead = true
        let frame = unwrapInboundIn(data)
        let sid = Int32(frame.streamID)
        switch frame.payload {
        case .headers(let h):
            if streams[sid] == nil {
                guard !(finalGoAwaySent && sid > highestStream) else { break }
                highestStream = max(highestStream, sid)
                var s = Stream()
                s.path = h.headers.first(name: ":path") ?? ""
                streams[sid] = s
            }
            if h.endStream { dispatch(sid) }
        case .data(let d):
            consumed += d.data.readableBytes
            if consumed >= 8 * 1024 * 1024 {
                context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: consumed))), promise: nil)
                consumed = 0
                flushPending = true
            }
            guard var s = streams[sid], case .byteBuffer(var buf) = d.data else { break }
            if s.body == nil {
                s.body = buf
            } else {
                s.body!.writeBuffer(&buf)
            }
            streams[sid] = s
            if d.endStream { dispatch(sid) }
        case .rstStream:
            streams[sid] = nil
            closeIfDone()
        case .ping(let data, let ack):
            if ack && data == Self.drainPing { sendFinalGoAway() }
        case .goAway:
            closing = true
            finalGoAwaySent = true
            closeIfDone()
        case .settings, .windowUpdate, .priority, .pushPromise, .alternativeService, .origin:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent {
            streams[Int32(closed.streamID)] = nil
            closeIfDone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func flush() {
        if inRead { flushPending = true } else { context?.flush() }
    }

    // MARK: - methods

    private func dispatch(_ sid: Int32) {
        guard var s = streams[sid], !s.responding, let context else { return }
        s.responding = true
        streams[sid] = s
        let message = Self.unframe(s.body)
        switch s.path {
        case "/helloworld.Greeter/SayHello", "/grpc.health.v1.Health/Check":
            let config = server.config
            var delay = config.delayMs
            if config.jitterMs > 0 { delay += Int64.random(in: 0...config.jitterMs) }
            let respond = { [weak self] in self?.respondUnary(sid, path: s.path, request: message) }
            if delay > 0 {
                context.eventLoop.scheduleTask(in: .milliseconds(delay)) { respond() }
            } else {
                respond()
            }
        case "/grpc.health.v1.Health/Watch":
            guard let request = message, let service = ProtoWire.string(in: request) else {
                return sendTrailersOnly(sid, status: 13, message: "malformed HealthCheckRequest")
            }
            guard Self.knownServices.contains(service) else {
                return sendTrailersOnly(sid, status: 5, message: "unknown service \(service)")
            }
            streams[sid]?.watch = true
            sendHeaders(sid)
            sendMessage(sid, Self.healthResponse(serving: server.isServing))
            flush()
        default:
            sendTrailersOnly(sid, status: 12, message: "unknown method \(s.path)")
        }
    }

    static let knownServices: Set<String> = ["", "helloworld.Greeter", "grpc.health.v1.Health"]

    private func respondUnary(_ sid: Int32, path: String, request: [UInt8]?) {
        guard streams[sid] != nil else { return }  // cancelled meanwhile
        let config = server.config
        if config.failRate > 0 && Double.random(in: 0..<1) < config.failRate {
            return sendTrailersOnly(sid, status: config.failCode, message: "injected failure (--fail-rate)")
        }
        if config.failWhileNotServing && path == "/helloworld.Greeter/SayHello" && !server.isServing {
            return sendTrailersOnly(sid, status: 14, message: "not serving (--fail-while-not-serving)")
        }
        guard let request else { return sendTrailersOnly(sid, status: 13, message: "malformed request framing") }
        let reply: [UInt8]
        if path == "/helloworld.Greeter/SayHello" {
            guard let name = ProtoWire.string(in: request) else {
                return sendTrailersOnly(sid, status: 13, message: "malformed HelloRequest")
            }
            reply = ProtoWire.stringMessage("Hello, \(name)! I am \(config.name) (\(localAddress))")
        } else {
            guard let service = ProtoWire.string(in: request) else {
                return sendTrailersOnly(sid, status: 13, message: "malformed HealthCheckRequest")
            }
            guard Self.knownServices.contains(service) else {
                return sendTrailersOnly(sid, status: 5, message: "unknown service \(service)")
            }
            reply = Self.healthResponse(serving: server.isServing)
        }
        sendHeaders(sid)
        sendMessage(sid, reply)
        sendTrailers(sid, status: 0, message: nil)
    }

    func healthChanged(serving: Bool) {
        for (id, s) in streams where s.watch { sendMessage(id, Self.healthResponse(serving: serving)) }
        flush()
    }

    static func healthResponse(serving: Bool) -> [UInt8] {
        var out: [UInt8] = []
        ProtoWire.appendVarintField(field: 1, serving ? 1 : 2, to: &out)  // SERVING = 1, NOT_SERVING = 2
        return out
    }

    static func unframe(_ body: ByteBuffer?) -> [UInt8]? {
        guard let body else { return [] }  // no DATA: an empty message
        var reader = GRPCMessageReader(limit: Int(UInt32.max))
        return (try? reader.read(body))?.first
    }

    // MARK: - writing

    private func responseHeaders() -> HPACKHeaders {
        HPACKHeaders([(":status", "200"), ("content-type", "application/grpc"), ("x-served-by", server.config.name)])
    }

    private func sendHeaders(_ sid: Int32) {
        context?.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(sid), payload: .headers(.init(headers: responseHeaders())))), promise: nil)
    }

    private func sendMessage(_ sid: Int32, _ bytes: [UInt8]) {
        guard let context else { return }
        let buf = GRPCFrame.buffer(bytes, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(sid), payload: .data(.init(data: .byteBuffer(buf))))), promise: nil)
    }

    private func sendTrailers(_ sid: Int32, status: Int, message: String?) {
        guard let context, let s = streams.removeValue(forKey: sid) else { return }
        var t = HPACKHeaders([("grpc-status", "\(status)")])
        if let message { t.add(name: "grpc-message", value: GRPCStatusText.encodeMessage(message)) }
        context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(sid), payload: .headers(.init(headers: t, endStream: true)))), promise: nil)
        flush()
        server.count(path: s.path, ok: status == 0)
        closeIfDone()
    }

    /// A response with no body: one HEADERS frame with :status, grpc-status and END_STREAM.
    private func sendTrailersOnly(_ sid: Int32, status: Int, message: String) {
        guard let context, let s = streams.removeValue(forKey: sid) else { return }
        var h = responseHeaders()
        h.add(name: "grpc-status", value: "\(status)")
        h.add(name: "grpc-message", value: GRPCStatusText.encodeMessage(message))
        context.write(wrapOutboundOut(HTTP2Frame(streamID: HTTP2StreamID(sid), payload: .headers(.init(headers: h, endStream: true)))), promise: nil)
        flush()
        server.count(path: s.path, ok: status == 0)
        closeIfDone()
    }
}

/// A pass-through handler just beneath NIO's HTTP/2 handler (above TLS), through which a frame
/// can be written without NIO's connection state machine seeing it.
final class RawFrameWriter: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// GOAWAY (RFC 9113 §6.8) with NO_ERROR, written and flushed at once.
    func writeGoAway(lastStreamID: Int32, debug: [UInt8]) {
        guard let context else { return }
        let payload = 8 + debug.count
        var b = context.channel.allocator.buffer(capacity: 9 + payload)
        b.writeInteger(UInt8((payload >> 16) & 0xFF))
        b.writeInteger(UInt16(payload & 0xFFFF))
        b.writeInteger(UInt8(0x7))  // GOAWAY
        b.writeInteger(UInt8(0))    // flags
        b.writeInteger(UInt32(0))   // stream 0
        b.writeInteger(UInt32(UInt32(bitPattern: lastStreamID) & 0x7FFF_FFFF))
        b.writeInteger(UInt32(0))   // NO_ERROR
        b.writeBytes(debug)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(b)), promise: nil)
    }
}
