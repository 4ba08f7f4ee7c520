import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TopologyCore

/// A layer-4 TCP proxy that plays kube-proxy for a ClusterIP Service: one virtual address, and
/// for each *connection* a backend picked at random (iptables mode), then bytes copied both ways
/// until either side closes. It knows nothing of HTTP/2, so every RPC on a connection goes to the
/// pod that connection landed on — the trap grpctop exists to show.
public final class TCPProxy: @unchecked Sendable {
    private let group: EventLoopGroup
    private let lock = NIOLock()
    private var backends: [String: (host: String, port: Int)] = [:]
    private var channel: Channel?
    private var rng: any RandomNumberGenerator
    private var picks: [String] = []
    /// Which backend each accepted connection went to, in order.
    public var assignments: [String] { lock.withLock { picks } }
    public private(set) var boundHost = ""
    public private(set) var boundPort = 0
    public var boundAddress: String { "\(boundHost):\(boundPort)" }

    public init(group: EventLoopGroup, rng: any RandomNumberGenerator = SystemRandomNumberGenerator()) {
        self.group = group
        self.rng = rng
    }

    /// The pods behind the Service (its endpoints): name → host:port. New connections only.
    public func setBackends(_ list: [(name: String, host: String, port: Int)]) {
        lock.withLock {
            backends = Dictionary(list.map { ($0.name, (host: $0.host, port: $0.port)) }, uniquingKeysWith: { a, _ in a })
        }
    }

    private func pick() -> (String, String, Int)? {
        lock.withLock {
            let names = backends.keys.sorted()
            guard !names.isEmpty else { return nil }
            let name = names[Int.random(in: 0..<names.count, using: &rng)]
            picks.append(name)
            let b = backends[name]!
            return (name, b.host, b.port)
        }
    }

    /// Binds 127.0.0.1 on a free port; returns `host:port`.
    public func start(host: String = "127.0.0.1") throws -> String {
        let group = self.group
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.autoRead, value: false)
            // FIN travels as FIN (as through kube-proxy's NAT): a side that stops sending is not
            // a reason to cut the other direction.
            .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [weak self] inbound in
                guard let self, let (_, host, port) = self.pick() else { return inbound.close() }
                return ClientBootstrap(group: inbound.eventLoop)
                    .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                    .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                    .connect(host: host, port: port)
                    .flatMap { outbound in
                        let (a, b) = GlueHandler.matchedPair()
                        do {
                            try inbound.pipeline.syncOperations.addHandler(a)
                            try outbound.pipeline.syncOperations.addHandler(b)
                        } catch {
                            outbound.close(promise: nil)
                            return inbound.eventLoop.makeFailedFuture(error)
                        }
                        // The client's bytes flow once the backend side is glued.
                        return inbound.setOption(ChannelOptions.autoRead, value: true)
                    }
                    // A backend that refuses (the chosen pod is gone): close the client's connection.
                    .flatMapError { _ in inbound.close() }
            }
        let ch = try bootstrap.bind(host: host, port: 0).wait()
        lock.withLock { channel = ch }
        boundHost = host
        boundPort = ch.localAddress?.port ?? 0
        return boundAddress
    }

    public func stop() {
        let ch = lock.withLock { channel }
        try? ch?.close().wait()
    }
}

/// Copies bytes between two channels with backpressure (swift-nio's NIOConnectProxy example).
final class GlueHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: GlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (GlueHandler, GlueHandler) {
        let a = GlueHandler()
        let b = GlueHandler()
        a.partner = b
        b.partner = a
        return (a, b)
    }

    // The two channels share one event loop (the outbound one connects on the inbound's loop).
    private func partnerWrite(_ data: NIOAny) { context?.write(data, promise: nil) }
    private func partnerFlush() { context?.flush() }
    private var outputClosed = false
    private var inputClosed = false

    /// The partner will send no more: pass the FIN on once everything before it is written
    /// (a close would drop queued bytes, and a full close while this peer is still sending
    /// makes its kernel answer with RST, which discards what it has not read yet).
    private func partnerWriteEOF() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { [weak self] _ in
            guard let self, let ctx = self.context else { return }
            if self.inputClosed {
                ctx.close(promise: nil)
            } else {
                ctx.close(mode: .output, promise: nil)
            }
        }
    }

    /// The partner's connection is gone: FIN this side, and close it fully if its peer has not
    /// closed within 10 s.
    private func partnerGone() {
        partnerWriteEOF()
        context?.eventLoop.scheduleTask(in: .seconds(10)) { [weak self] in self?.context?.close(promise: nil) }
    }

    private func partnerBecameWritable() {
        if pendingRead {
            pendingRead = false
            context?.read()
        }
    }
    private var partnerWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { partner?.partnerWrite(data) }
    func channelReadComplete(context: ChannelHandlerContext) { partner?.partnerFlush() }
    func channelInactive(context: ChannelHandlerContext) { partner?.partnerGone() }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let e = event as? ChannelEvent, case .inputClosed = e else { return }
        inputClosed = true
        partner?.partnerWriteEOF()
        // Both directions done: nothing more will move here.
        if outputClosed { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
    }

    func read(context: ChannelHandlerContext) {
        if let partner, partner.partnerWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
