import Foundation
import GRPCWire
import NIOSSL
import TopologyCore
import XDSAPI

/// `xds:///NAME`: the endpoints a control plane gives a proxyless gRPC client, over one ADS stream
/// (state of the world) to the first server of the xDS bootstrap. `XDSState` follows the
/// listener → routes → clusters → assignments chain and ACKs or NACKs each response; this class
/// is its I/O: the connection, the stream, the backoff (1 s doubling to 30 s, reset once a
/// response arrives) and the events. A lost control plane keeps everything (endpoints,
/// connections, versions) and the stream is opened again with every subscription and the
/// versions in use.
///
/// Events: `.xdsStatus` on every change of the stream or a resource's version / ACK / NACK;
/// `.resolverUpdated` with the endpoints (`lbTree: "xds"`: the model balances them with the
/// xDS policy tree) when they change; `.resolverFailed` while the chain leads nowhere (no
/// listener, no route for the RPC, a cluster that does not exist); a notice per accepted update.
public final class XDSResolver: EndpointResolver, @unchecked Sendable {
    public let name = "xds"
    public let listenerName: String
    public let bootstrap: XDSBootstrap
    private let rpcPath: String
    private let tls: NIOSSLContext?
    private let loop = WatchLoop(maxBackoffMs: 30_000)
    private let lock = NSLock()
    private var connection: GRPCConnection?

    public init(listenerName: String, bootstrap: XDSBootstrap, rpcPath: String) throws {
        self.listenerName = listenerName
        self.bootstrap = bootstrap
        self.rpcPath = rpcPath
        switch bootstrap.credentials {
        case .insecure:
            tls = nil
        case .tls(let ca, let cert, let key):
            tls = try TLSOptions(caCertPath: ca, certPath: cert, keyPath: key, insecure: false).makeContext()
        }
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        loop.start(sink) { [self] in await run() }
    }

    /// The control plane pushes; a disconnect of a backend says nothing new. `r` re-opens the
    /// stream (every resource is sent again).
    public func requestResolution(_ request: ResolutionRequest) {
        guard request == .user else { return }
        lock.withLock { connection }?.close()
    }

    public func stop() {
        loop.stop()
        lock.withLock { connection }?.close()
    }

    private func push(_ e: Event) { loop.push(e) }

    /// What the stream delivers to the loop.
    private enum Item: Sendable {
        case response([UInt8])
        case end(GRPCStatus)
    }

    private func run() async {
        var node = XDS.Node()
        node.id = bootstrap.nodeID
        node.cluster = bootstrap.nodeCluster
        var locality = XDS.Locality()
        (locality.region, locality.zone, locality.subZone) = bootstrap.locality
        node.locality = locality
        node.userAgentName = "grpctop"
        node.userAgentVersion = "1"
        node.clientFeatures = ["envoy.lb.does_not_support_overprovisioning"]
        var state = XDSState(listenerName: listenerName, rpcPath: rpcPath, node: node)
        let server = bootstrap.server
        var lastEndpoints: [Endpoint]?
        var lastProblem: String?
        var connectionText = "connecting"
        var since = Date().timeIntervalSince1970

        func status(_ text: String) {
            if text != connectionText { since = Date().timeIntervalSince1970 }
            connectionText = text
            push(.xdsStatus(state.status(server: server, connection: text, since: since)))
        }
        func publish() {
            if let problem = state.problem {
                if problem != lastProblem {
                    // Still fetching: RPCs wait (the channel is not failed); broken: the resolver failed.
                    if state.waiting {
                        push(.resolverStatus(["xds": problem]))
                    } else {
                        push(.resolverFailed(ResolverFailure(message: "xds: \(problem)", info: ["xds": "\(server) \(connectionText)"])))
                    }
                }
                lastProblem = problem
                return
            }
            lastProblem = nil
            let endpoints = state.endpoints()
            guard endpoints != lastEndpoints else { return }
            lastEndpoints = endpoints
            let clusters = state.routeClusters?.map { $0.weight > 1 ? "\($0.name) \($0.weight)" : $0.name }.joined(separator: ", ") ?? "-"
            push(.resolverUpdated(ResolverResult(endpoints: endpoints, info: ["xds": "\(server) \(connectionText)", "clusters": clusters], lbTree: "xds")))
        }

        status("connecting")
        publish()
        while !Task.isCancelled {
            var answered = false
            do {
                let conn = try await GRPCConnection.connect(host: bootstrap.serverHost, port: bootstrap.serverPort, tls: tls,
                                                            serverName: nil, timeoutMs: 10_000)
                lock.withLock { connection = conn }
                let (stream, continuation) = AsyncStream<Item>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
                let call = try await conn.openCall(
                    path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources", metadata: [],
                    onMessage: { continuation.yield(.response($0)) },
                    onEnd: { continuation.yield(.end($0)); continuation.finish() })
                loop.watching(cancel: { [weak conn] in conn?.close() })
                for r in state.streamStarted() { call.send(r.serialized()) }
                status("connected")
                var ended: GRPCStatus?
                for await item in stream {
                    switch item {
                    case .response(let bytes):
                        guard let response = try? XDS.DiscoveryResponse(serialized: bytes) else {
                            push(.notice(Notice(.warning, "xDS: a malformed DiscoveryResponse from \(server) (\(bytes.count) bytes), ignored")))
                            continue
                        }
                        if !answered {
                            answered = true
                            if loop.up() { push(.notice(Notice(.info, "xDS: stream to \(server) up again"))) }
                        }
                        let outcome = state.handle(response, now: Date().timeIntervalSince1970)
                        for r in outcome.requests { call.send(r.serialized()) }
                        for n in outcome.notices { push(.notice(n)) }
                        status("connected")
                        if outcome.changed { publish() }
                    case .end(let s):
                        ended = s
                    }
                }
                loop.watching(cancel: nil)
                conn.close()
                lock.withLock { connection = nil }
                if Task.isCancelled { return }
                // A stream that answered is opened again at once (100 ms, so a control plane that
                // answers and hangs up cannot make this spin); one that did not, after backoff.
                let delay: Int64 = answered ? 100 : loop.failed()
                let why = ended.map { $0.message.isEmpty ? "status \($0.code)" : $0.message } ?? "stream ended"
                status("down: \(why); retry in \(formatDuration(delay))")
                guard await loop.sleep(ms: delay) else { return }
            } catch {
                lock.withLock { connection = nil }
                if Task.isCancelled { return }
                let delay = loop.failed()
                status("down: \(error); retry in \(formatDuration(delay))")
                guard await loop.sleep(ms: delay) else { return }
            }
        }
    }
}
