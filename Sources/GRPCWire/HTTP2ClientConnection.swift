import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import TopologyCore

/// How every gRPC client connection of grpctop is set up (the engine's subchannels, the etcd
/// client, and the channelz and xDS clients to come): TCP with NODELAY or a Unix socket, TLS
/// with ALPN `h2` and SNI when a context is given, then the caller's HTTP/2 handlers.
public enum HTTP2ClientConnection {
    /// The HTTP/2 connection settings every client uses. Go servers (etcd, grpc-go) send a BDP
    /// PING after most responses; NIO's default DoS limit (200 control frames in 30 s) would
    /// turn a busy connection into errors.
    public static let connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration = {
        var c = NIOHTTP2Handler.ConnectionConfiguration()
        c.controlFrameRateLimit.maximumCount = 100_000
        return c
    }()

    /// The SNI name for a host: none for an IP literal (RFC 6066 forbids it).
    public static func serverName(for host: String) -> String? {
        IPAddressText.isIPv4(host) || IPAddressText.isIPv6(host) ? nil : host
    }

    /// Connects to `address` within `timeout`; `configure` adds the HTTP/2 handlers after TLS.
    public static func connect(
        to address: EndpointAddress, group: EventLoopGroup, timeout: TimeAmount,
        tls: NIOSSLContext?, serverName: String?,
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<Channel> {
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(try NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try configure(sync)
                }
            }
        switch address {
        case .tcp(let host, let port): return bootstrap.connect(host: host, port: port)
        case .unix(let path): return bootstrap.connect(unixDomainSocketPath: path)
        }
    }
}
