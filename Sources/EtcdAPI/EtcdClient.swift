import GRPCWire
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import TopologyCore

/// Where etcd is and how to log in: `--etcd URL[,URL…]`, user/password, TLS files.
public struct EtcdConfig: Sendable, Equatable {
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var tls: Bool
        public var host: String
        public var port: Int
        public var description: String { "\(tls ? "https" : "http")://\(HostPort(host: host, port: port))" }
        public init(tls: Bool, host: String, port: Int) {
            self.tls = tls
            self.host = host
            self.port = port
        }
    }
    public var endpoints: [Endpoint]
    public var user: String?
    public var password: String?
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var dialTimeoutMs: Int64 = 2000

    public init(endpoints: [Endpoint], user: String? = nil, password: String? = nil) {
        self.endpoints = endpoints
        self.user = user
        self.password = password
    }

    /// `http://127.0.0.1:2379,https://etcd-0:2379`, or bare `host:port` (http).
    public static func parseEndpoints(_ text: String) throws(TargetError) -> [Endpoint] {
        var out: [Endpoint] = []
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            var rest = Substring(part)
            var tls = false
            if rest.hasPrefix("https://") {
                tls = true
                rest = rest.dropFirst(8)
            } else if rest.hasPrefix("http://") {
                rest = rest.dropFirst(7)
            } else if rest.contains("://") {
                throw TargetError("--etcd '\(part)': use http://host:port or https://host:port")
            }
            if rest.hasSuffix("/") { rest = rest.dropLast() }
            let hp = try Target.splitHostPort(String(rest), whole: part, bareIPv6: false, defaultPort: 2379)
            guard !hp.host.isEmpty else { throw TargetError("--etcd '\(part)' has no host") }
            out.append(Endpoint(tls: tls, host: hp.host, port: hp.port))
        }
        guard !out.isEmpty else { throw TargetError("--etcd '\(text)' names no endpoint: e.g. http://127.0.0.1:2379") }
        return out
    }

    /// The TLS context for https endpoints (nil when none is https).
    public func tlsContext() throws -> NIOSSLContext? {
        guard endpoints.contains(where: \.tls) || caFile != nil || certFile != nil else { return nil }
        var c = TLSConfiguration.makeClientConfiguration()
        // gRPC over TLS is HTTP/2 by ALPN: Go's server (etcd) speaks HTTP/1.1 without it.
        c.applicationProtocols = ["h2"]
        if let caFile { c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
        if let certFile { c.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) } }
        if let keyFile { c.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem)) }
        return try NIOSSLContext(configuration: c)
    }
}

/// The end of the key range holding every key that starts with `prefix` (etcd's
/// `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented.
public func etcdPrefixRangeEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xff {
            end[end.count - 1] = last + 1
            return end
        }
        end.removeLast()
    }
    return [0]  // every key
}

/// etcd's v3 API over one connection, moving to the next endpoint when it fails. Not for
/// concurrent `connect`s: one owner (a resolver loop, a registrar loop) drives it.
public final class EtcdClient: @unchecked Sendable {
    public let config: EtcdConfig
    private let tls: NIOSSLContext?
    private let lock = NSLock()
    private var connection: GRPCConnection?
    private var token: String?
    private var next = 0
    /// The endpoint of the current connection.
    public private(set) var current: EtcdConfig.Endpoint?

    public init(config: EtcdConfig) throws {
        self.config = config
        tls = try config.tlsContext()
    }

    /// Connects to the next endpoint that answers (each tried once, in turn), and logs in.
    public func connect() async throws {
        disconnect()
        var lastError: Error = GRPCStatus(code: GRPCStatus.unavailable, message: "no etcd endpoint")
        for _ in config.endpoints {
            let ep = lock.withLock {
                defer { next = (next + 1) % config.endpoints.count }
                return config.endpoints[next]
            }
            do {
                let conn = try await GRPCConnection.connect(host: ep.host, port: ep.port, tls: ep.tls ? tls : nil, serverName: nil,
                                                            timeoutMs: config.dialTimeoutMs)
                lock.withLock {
                    connection = conn
                    current = ep
                    token = nil
                }
                if let user = config.user {
                    var req = AuthenticateRequest()
                    req.name = user
                    req.password = config.password ?? ""
                    let resp = try AuthenticateResponse(serialized: try await conn.unary(path: "/etcdserverpb.Auth/Authenticate", request: req.serialized()))
                    lock.withLock { token = resp.token }
                }
                return
            } catch {
                lastError = EtcdError(endpoint: ep, error)
            }
        }
        throw lastError
    }

    public func disconnect() {
        let c = lock.withLock {
            defer { connection = nil }
            return connection
        }
        c?.close()
    }

    public var isConnected: Bool { lock.withLock { connection?.isActive ?? false } }

    private func conn() throws -> (GRPCConnection, [(String, String)]) {
        try lock.withLock {
            guard let c = connection else { throw GRPCStatus(code: GRPCStatus.unavailable, message: "not connected to etcd") }
            return (c, token.map { [("token", $0)] } ?? [])
        }
    }

    /// Fires when the connection closes.
    public func closeFuture() throws -> EventLoopFuture<Void> { try conn().0.closeFuture }

    private func unary(_ path: String, _ request: [UInt8]) async throws -> [UInt8] {
        let (c, md) = try conn()
        return try await c.unary(path: path, request: request, metadata: md)
    }

    /// Every key under `prefix` and the store's revision.
    public func range(prefix: String) async throws -> (kvs: [KeyValue], revision: Int64) {
        var req = RangeRequest()
        req.key = Array(prefix.utf8)
        req.rangeEnd = etcdPrefixRangeEnd(req.key)
        let resp = try RangeResponse(serialized: try await unary("/etcdserverpb.KV/Range", req.serialized()))
        return (resp.kvs, resp.header?.revision ?? 0)
    }

    @discardableResult
    public func put(key: String, value: String, lease: Int64 = 0) async throws -> Int64 {
        var req = PutRequest()
        req.key = Array(key.utf8)
        req.value = Array(value.utf8)
        req.lease = lease
        return try PutResponse(serialized: try await unary("/etcdserverpb.KV/Put", req.serialized())).header?.revision ?? 0
    }

    @discardableResult
    public func delete(key: String) async throws -> Int64 {
        var req = DeleteRangeRequest()
        req.key = Array(key.utf8)
        return try DeleteRangeResponse(serialized: try await unary("/etcdserverpb.KV/DeleteRange", req.serialized())).deleted
    }

    /// A new lease of `ttl` seconds: its id and the TTL granted.
    public func grantLease(ttl: Int64) async throws -> (id: Int64, ttl: Int64) {
        var req = LeaseGrantRequest()
        req.ttl = ttl
        let resp = try LeaseGrantResponse(serialized: try await unary("/etcdserverpb.Lease/LeaseGrant", req.serialized()))
        guard resp.error.isEmpty else { throw GRPCStatus(code: 9, message: resp.error) }
        return (resp.id, resp.ttl)
    }

    public func revokeLease(_ id: Int64) async throws {
        var req = LeaseRevokeRequest()
        req.id = id
        _ = try await unary("/etcdserverpb.Lease/LeaseRevoke", req.serialized())
    }

    /// Seconds left on a lease; -1 when it has expired or never existed.
    public func timeToLive(_ id: Int64) async throws -> Int64 {
        var req = LeaseTimeToLiveRequest()
        req.id = id
        return try LeaseTimeToLiveResponse(serialized: try await unary("/etcdserverpb.Lease/LeaseTimeToLive", req.serialized())).ttl
    }

    /// Watches every key under `prefix` from `revision`; each response goes to `onResponse`, the
    /// end of the stream (a cancel, a compaction, the connection) to `onEnd`.
    public func watch(prefix: String, fromRevision revision: Int64,
                      onResponse: @escaping @Sendable (WatchResponse) -> Void,
                      onEnd: @escaping @Sendable (GRPCStatus) -> Void) async throws -> GRPCCall {
        let (c, md) = try conn()
        let call = try await c.openCall(path: "/etcdserverpb.Watch/Watch", metadata: md, onMessage: { bytes in
            guard let r = try? WatchResponse(serialized: bytes) else { return }
            onResponse(r)
        }, onEnd: onEnd)
        var create = WatchCreateRequest()
        create.key = Array(prefix.utf8)
        create.rangeEnd = etcdPrefixRangeEnd(create.key)
        create.startRevision = revision
        create.progressNotify = true
        var req = WatchRequest()
        req.createRequest = create
        call.send(req.serialized())
        return call
    }

    /// A keep-alive stream for one lease: send `keepAliveRequest(id)` on it; each answer's TTL
    /// goes to `onTTL` (0 or less: the lease is gone).
    public func keepAliveStream(onTTL: @escaping @Sendable (Int64) -> Void,
                                onEnd: @escaping @Sendable (GRPCStatus) -> Void) async throws -> GRPCCall {
        let (c, md) = try conn()
        return try await c.openCall(path: "/etcdserverpb.Lease/LeaseKeepAlive", metadata: md, onMessage: { bytes in
            guard let r = try? LeaseKeepAliveResponse(serialized: bytes) else { return }
            onTTL(r.ttl)
        }, onEnd: onEnd)
    }

    public static func keepAliveRequest(_ id: Int64) -> [UInt8] {
        var req = LeaseKeepAliveRequest()
        req.id = id
        return req.serialized()
    }
}

/// A failure talking to one etcd endpoint, worded for the user.
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(endpoint: EtcdConfig.Endpoint, _ error: Error) {
        description = "etcd \(endpoint): \(Self.describe(error))"
    }

    /// One short phrase: "connection refused", "connection timed out", a gRPC status…
    public static func describe(_ error: Error) -> String {
        switch error {
        case let s as GRPCStatus:
            if s.code == GRPCStatus.unauthenticated || s.code == 7 || s.message.contains("authentication failed") {
                return "\(s.message) (check --etcd-user and the password)"
            }
            return s.description
        case let e as NIOConnectionError:
            if let first = e.connectionErrors.first { return describe(first.error) }
            return e.dnsAAAAError.map { "cannot resolve the host (\($0))" } ?? "cannot connect"
        case let e as IOError:
            switch e.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case ETIMEDOUT: return "connection timed out"
            case ECONNRESET: return "connection reset"
            default: return String(cString: strerror(e.errnoCode))
            }
        case ChannelError.connectTimeout: return "connection timed out"
        case let e as ChannelError: return "\(e)"
        default: return "\(error)"
        }
    }
}
