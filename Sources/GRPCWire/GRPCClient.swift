import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import TopologyCore

/// How a call ended: a gRPC status (0 OK) and its message.
public struct GRPCStatus: Error, CustomStringConvertible, Sendable, Equatable {
    public var code: Int
    public var message: String
    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }
    public static let unavailable = 14
    public static let unauthenticated = 16
    public var description: String {
        message.isEmpty ? GRPCStatusName.name(code) : "\(GRPCStatusName.name(code)): \(message)"
    }
}

/// Just enough of a gRPC client for the APIs grpctop reads (etcd, channelz; xDS to come): one
/// HTTP/2 connection (h2c or TLS), unary calls and bidirectional streams, protobuf bytes in and
/// out (framed with gRPC's 5-byte prefix). The data plane (`TopologyTransport`) has its own,
/// leaner connection handler; both set up connections with `HTTP2ClientConnection`.
public final class GRPCConnection: @unchecked Sendable {
    public let authority: String
    /// `https` over TLS, `http` for h2c (etcd's Go server checks it against the connection).
    public let scheme: String
    private let channel: Channel
    private let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    private init(authority: String, scheme: String, channel: Channel, multiplexer: NIOHTTP2Handler.StreamMultiplexer) {
        self.authority = authority
        self.scheme = scheme
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Connects (TCP, TLS when `tls` is set, HTTP/2 prior knowledge) within `timeoutMs`.
    public static func connect(host: String, port: Int, tls: NIOSSLContext?, serverName: String?, timeoutMs: Int64,
                               group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> GRPCConnection {
        try await connect(to: .tcp(host: host, port: port), tls: tls, serverName: serverName, timeoutMs: timeoutMs, group: group)
    }

    /// Connects to a TCP or Unix-socket address (`:authority` is `localhost` for a socket).
    public static func connect(to address: EndpointAddress, tls: NIOSSLContext?, serverName: String?, timeoutMs: Int64,
                               group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> GRPCConnection {
        let authority: String
        var sni: String?
        switch address {
        case .tcp(let host, let port):
            authority = HostPort(host: host, port: port).description
            sni = HTTP2ClientConnection.serverName(for: serverName ?? host)
        case .unix:
            authority = "localhost"
            sni = serverName.flatMap(HTTP2ClientConnection.serverName(for:))
        }
        let channel = try await HTTP2ClientConnection.connect(
            to: address, group: group, timeout: .milliseconds(timeoutMs), tls: tls, serverName: sni
        ) { sync in
            _ = try sync.configureHTTP2Pipeline(
                mode: .client, connectionConfiguration: HTTP2ClientConnection.connectionConfiguration, streamConfiguration: .init()
            ) { stream in stream.close() }
        }.get()
        let mux = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
        }.get()
        return GRPCConnection(authority: authority, scheme: tls == nil ? "http" : "https", channel: channel, multiplexer: mux)
    }

    /// Fires when the connection closes (the server went away, or `close`).
    public var closeFuture: EventLoopFuture<Void> { channel.closeFuture }
    public var isActive: Bool { channel.isActive }

    public func close() { channel.close(promise: nil) }

    /// Opens a stream for `path` (`/etcdserverpb.Watch/Watch`): `onMessage` gets each response,
    /// `onEnd` the status once (the server's, or UNAVAILABLE when the connection went away).
    public func openCall(path: String, metadata: [(String, String)],
                         onMessage: @escaping @Sendable ([UInt8]) -> Void,
                         onEnd: @escaping @Sendable (GRPCStatus) -> Void) async throws -> GRPCCall {
        let handler = GRPCStreamHandler(onMessage: onMessage, onEnd: onEnd)
        let stream = try await multiplexer.createStreamChannel { stream in
            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(handler) }
        }.get()
        var headers = HPACKHeaders([
            (":method", "POST"), (":scheme", scheme), (":path", path), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "grpctop"),
        ])
        for (k, v) in metadata { headers.add(name: k, value: v) }
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers))).get()
        return GRPCCall(stream: stream)
    }

    /// One request, one response.
    public func unary(path: String, request: [UInt8], metadata: [(String, String)] = [], timeoutMs: Int64 = 5000) async throws -> [UInt8] {
        let box = UnaryResult()
        return try await withCheckedThrowingContinuation { (cont: CheckedContinuation<[UInt8], Error>) in
            box.set(cont)
            let work = Task { () -> GRPCCall? in
                do {
                    let call = try await openCall(path: path, metadata: metadata + [("grpc-timeout", grpcTimeoutHeader(ms: timeoutMs))],
                                                  onMessage: { box.message($0) }, onEnd: { box.end($0) })
                    call.send(request, end: true)
                    return call
                } catch {
                    box.fail(error)
                    return nil
                }
            }
            // The server enforces grpc-timeout; this covers a connection that went silent.
            Task {
                try? await Task.sleep(for: .milliseconds(timeoutMs + 1000))
                if box.fail(GRPCStatus(code: 4, message: "no answer to \(path) within \(timeoutMs) ms")) { await work.value?.cancel() }
            }
        }
    }
}

/// The continuation of a unary call, resumed once.
private final class UnaryResult: @unchecked Sendable {
    private let lock = NSLock()
    private var cont: CheckedContinuation<[UInt8], Error>?
    private var response: [UInt8]?
    func set(_ c: CheckedContinuation<[UInt8], Error>) { lock.withLock { cont = c } }
    func message(_ m: [UInt8]) { lock.withLock { if response == nil { response = m } } }
    func end(_ status: GRPCStatus) {
        let (c, r) = lock.withLock { () -> (CheckedContinuation<[UInt8], Error>?, [UInt8]?) in
            defer { cont = nil }
            return (cont, response)
        }
        guard let c else { return }
        if status.code != 0 { c.resume(throwing: status) } else if let r { c.resume(returning: r) } else {
            c.resume(throwing: GRPCStatus(code: 13, message: "the server sent no response message"))
        }
    }
    /// True if this ended the call.
    @discardableResult
    func fail(_ e: Error) -> Bool {
        let c = lock.withLock { () -> CheckedContinuation<[UInt8], Error>? in
            defer { cont = nil }
            return cont
        }
        c?.resume(throwing: e)
        return c != nil
    }
}

/// The client side of one open stream.
public final class GRPCCall: @unchecked Sendable {
    private let stream: Channel
    init(stream: Channel) { self.stream = stream }

    /// Sends one request message (framed); `end` half-closes the stream after it.
    public func send(_ message: [UInt8], end: Bool = false) {
        let buf = GRPCFrame.buffer(message, allocator: stream.allocator)
        stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(buf), endStream: end)), promise: nil)
    }

    /// Resets the stream (the server sees CANCEL).
    public func cancel() { stream.close(promise: nil) }
}

/// Reassembles gRPC messages from DATA frames and reads the status from the trailers.
final class GRPCStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let onMessage: @Sendable ([UInt8]) -> Void
    private let onEnd: @Sendable (GRPCStatus) -> Void
    private var reader = GRPCMessageReader(limit: GRPCStreamHandler.maxMessageBytes)
    private var ended = false
    /// The largest response message accepted (etcd's own client allows up to 2 GiB; a range of
    /// thousands of keys stays far below this).
    static let maxMessageBytes = 64 << 20

    init(onMessage: @escaping @Sendable ([UInt8]) -> Void, onEnd: @escaping @Sendable (GRPCStatus) -> Void) {
        self.onMessage = onMessage
        self.onEnd = onEnd
    }

    /// Reports the end once. A stream the server ended (trailers with END_STREAM) closes by
    /// itself; any other end (an error, the connection) closes it here.
    private func finish(_ s: GRPCStatus, _ context: ChannelHandlerContext, endedByServer: Bool = false) {
        guard !ended else { return }
        ended = true
        onEnd(s)
        if !endedByServer { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let h):
            let fields = GRPCResponseHeaders(h.headers)
            if let status = fields.status, status != "200" {
                finish(GRPCStatus(code: GRPCStatus.unavailable, message: "HTTP status \(status)"), context)
                return
            }
            if fields.grpcStatus != nil {
                let (code, message) = fields.outcome(sawHeaders: true)
                finish(GRPCStatus(code: code, message: message ?? ""), context, endedByServer: h.endStream)
            } else if h.endStream {
                finish(GRPCStatus(code: 13, message: "the stream ended without a grpc-status"), context, endedByServer: true)
            }
        case .data(let d):
            if case .byteBuffer(let b) = d.data {
                do {
                    for message in try reader.read(b) { onMessage(message) }
                } catch let e as GRPCMessageReader.TooLarge {
                    finish(GRPCStatus(code: 8, message: "received a message of \(e.length) bytes (at most \(e.limit))"), context)
                    return
                } catch {}
            }
            if d.endStream { finish(GRPCStatus(code: 13, message: "the stream ended without trailers"), context, endedByServer: true) }
        case .rstStream(let code):
            finish(GRPCStatus(code: GRPCStatus.unavailable, message: "stream reset (\(code))"), context)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(GRPCStatus(code: GRPCStatus.unavailable, message: "connection closed"), context)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(GRPCStatus(code: GRPCStatus.unavailable, message: "\(error)"), context)
    }
}
