import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import TopologyCore

/// What `grpctop serve` does.
public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 0
    /// Listen on this Unix domain socket instead of TCP.
    public var unixPath: String?
    public var name: String
    public var delayMs: Int64 = 0
    public var jitterMs: Int64 = 0
    public var failRate: Double = 0
    public var failCode = 14
    /// While NOT_SERVING (SIGUSR1), SayHello fails UNAVAILABLE ("not serving") — a pod whose
    /// dependency is down; health checks keep answering NOT_SERVING.
    public var failWhileNotServing = false
    public var maxConcurrentStreams: Int?
    /// gRFC A9: MAX_CONNECTION_AGE (±10 % jitter) and MAX_CONNECTION_AGE_GRACE.
    public var maxConnectionAgeMs: Int64?
    public var maxConnectionAgeGraceMs: Int64 = 30_000
    public var drainGraceMs: Int64 = 30_000
    public var tlsCertPath: String?
    public var tlsKeyPath: String?

    public init(name: String) { self.name = name }
}

/// Per-method counts of the RPCs the server answered.
public struct ServedCounts: Sendable, Codable, Equatable {
    public var ok = 0
    public var failed = 0
    public var total: Int { ok + failed }
}

/// A real gRPC server on swift-nio-http2 (h2c, or TLS with ALPN h2): `helloworld.Greeter/SayHello`
/// and `grpc.health.v1.Health` (Check and Watch). Every response carries `x-served-by: NAME`, so a
/// client behind a proxy or a ClusterIP can tell pods apart.
///
/// Graceful shutdown and max connection age both drain a connection the way gRPC servers do:
/// GOAWAY(last-stream-id 2³¹−1, NO_ERROR) + PING, then after the PING ACK a GOAWAY with the real
/// last stream id; in-flight RPCs finish, then the connection closes.
public final class TestServer: @unchecked Sendable {
    public let config: ServerConfig
    private let group: EventLoopGroup
    private var serverChannel: Channel?
    private let lock = NIOLock()
    private var counts: [String: ServedCounts] = [:]
    private var serving = true
    private var connections: [ObjectIdentifier: ServerConnectionHandler] = [:]
    private var draining = false
    private let tls: NIOSSLContext?
    public private(set) var boundAddress: String = ""

    public init(config: ServerConfig, group: EventLoopGroup) throws {
        self.config = config
        self.group = group
        if let cert = config.tlsCertPath, let key = config.tlsKeyPath {
            var c = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            c.applicationProtocols = ["h2"]
            tls = try NIOSSLContext(configuration: c)
        } else {
            tls = nil
        }
    }

    /// Binds and starts serving; returns the bound address (`host:port`).
    public func start() throws -> String {
        var settings: HTTP2Settings = [
            HTTP2Setting(parameter: .initialWindowSize, value: 4 * 1024 * 1024),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),
        ]
        if let m = config.maxConcurrentStreams {
            settings.append(HTTP2Setting(parameter: .maxConcurrentStreams, value: m))
        }
        var connConfig = NIOHTTP2Handler.ConnectionConfiguration()
        connConfig.initialSettings = settings
        connConfig.controlFrameRateLimit.maximumCount = 100_000
        connConfig.maximumConnectionGlitches = 100_000
        var streamConfig = NIOHTTP2Handler.StreamConfiguration()
        streamConfig.streamResetFrameRateLimit.maximumCount = 100_000
        streamConfig.streamErrorRateLimit.maximumCount = 100_000
        let frozenConn = connConfig
        let frozenStream = streamConfig
        let tls = self.tls
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [weak self] channel in
                guard let self else { return channel.eventLoop.makeSucceededVoidFuture() }
                // A draining server takes no new connections (the listener may still accept a
                // few before it closes): the client sees a refused attempt and picks another.
                if self.isDraining {
                    return channel.close()
                }
                do {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    let raw = RawFrameWriter()
                    try sync.addHandler(raw)
                    try sync.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: frozenConn, streamConfiguration: frozenStream))
                    let handler = ServerConnectionHandler(server: self, rawWriter: raw)
                    // Counted from accept time, so a drain never exits under a new connection.
                    self.register(handler)
                    try sync.addHandler(handler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        if let path = config.unixPath {
            let channel = try bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
            serverChannel = channel
            boundAddress = "unix:\(path)"
            return boundAddress
        }
        let channel = try bootstrap.bind(host: config.host, port: config.port).wait()
        serverChannel = channel
        let addr = channel.localAddress
        boundAddress = HostPort(host: addr?.ipAddress ?? config.host, port: addr?.port ?? config.port).description
        return boundAddress
    }

    public var isServing: Bool { lock.withLock { serving } }

    /// SIGUSR1 / SIGUSR2: NOT_SERVING / SERVING; Watch streams get the new status.
    public func setServing(_ value: Bool) {
        let handlers: [ServerConnectionHandler] = lock.withLock {
            serving = value
            return Array(connections.values)
        }
        for h in handlers { h.eventLoop?.execute { h.healthChanged(serving: value) } }
    }

    public func snapshotCounts() -> [String: ServedCounts] { lock.withLock { counts } }

    func count(path: String, ok: Bool) {
        lock.withLock {
            if ok { counts[path, default: ServedCounts()].ok += 1 } else { counts[path, default: ServedCounts()].failed += 1 }
        }
    }

    var isDraining: Bool { lock.withLock { draining } }

    func register(_ h: ServerConnectionHandler) {
        lock.withLock { connections[ObjectIdentifier(h)] = h }
    }

    func unregister(_ h: ServerConnectionHandler) {
        lock.withLock { _ = connections.removeValue(forKey: ObjectIdentifier(h)) }
    }

    /// Graceful drain (SIGTERM): stop accepting, GOAWAY every connection, let in-flight RPCs
    /// finish, then complete (or after the drain grace).
    public func drain() -> EventLoopFuture<Void> {
        let loop = group.next()
        let handlers: [ServerConnectionHandler] = lock.withLock {
            draining = true
            return Array(connections.values)
        }
        let closeListener = serverChannel?.close() ?? loop.makeSucceededVoidFuture()
        for h in handlers { h.eventLoop?.execute { h.startGracefulClose(reason: "server shutting down") } }
        let promise = loop.makePromise(of: Void.self)
        let deadline = NIODeadline.now() + .milliseconds(config.drainGraceMs)
        func poll() {
            let remaining = lock.withLock { connections.count }
            if remaining == 0 || NIODeadline.now() >= deadline {
                promise.succeed(())
            } else {
                loop.scheduleTask(in: .milliseconds(20)) { poll() }
            }
        }
        closeListener.whenComplete { _ in poll() }
        return promise.futureResult
    }

    /// An abrupt kill (SIGKILL, OOM, node loss): the listener closes and every connection is
    /// reset (SO_LINGER 0, so the peer gets RST, not FIN); in-flight RPCs are lost.
    public func kill() {
        let handlers: [ServerConnectionHandler] = lock.withLock {
            draining = true
            return Array(connections.values)
        }
        try? serverChannel?.close().wait()
        for h in handlers { h.eventLoop?.execute { h.abort() } }
    }

    /// The JSON printed on exit (and written to `--stats-file`).
    public func statsJSON() -> String {
        struct Report: Codable {
            var name: String
            var address: String
            var served: [String: ServedCounts]
            var total: Int
        }
        let c = snapshotCounts()
        let r = Report(name: config.name, address: boundAddress, served: c, total: c.values.reduce(0) { $0 + $1.total })
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(r)) ?? Data(), as: UTF8.self)
    }
}
