import GRPCWire
import Foundation
import TopologyCore

/// `grpctop serve --register etcd://…/PREFIX`: puts the server's address under the prefix with a
/// lease and keeps the lease alive (a keep-alive every TTL/3). When etcd goes away it retries
/// with backoff (across the endpoints); back, it keeps the same lease if etcd still has it, or
/// grants a new one and puts the key again. `deregister` (SIGTERM) deletes the key and revokes
/// the lease; after a SIGKILL the key goes when the lease expires.
public final class EtcdRegistrar: @unchecked Sendable {
    public enum Format: String, Sendable, CaseIterable {
        case etcd, gozero, kratos, plain
    }

    public let prefix: String
    public let address: HostPort
    public let id: String
    public let format: Format
    public let ttl: Int64
    private let client: EtcdClient
    private let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    private var lease: Int64 = 0
    private var key: String?
    private var backoff = ConnectionBackoff(initialMs: 500, multiplier: 2, jitter: 0.2, maxMs: 5000, minConnectTimeoutMs: 0)

    public init(config: EtcdConfig, prefix: String, address: HostPort, id: String, format: Format, ttl: Int64,
                log: @escaping @Sendable (String) -> Void) throws {
        self.prefix = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        self.address = address
        self.id = id
        self.format = format
        self.ttl = ttl
        self.log = log
        client = try EtcdClient(config: config)
    }

    /// The key for a lease (go-zero names its key after the lease).
    public func key(lease: Int64) -> String {
        switch format {
        case .etcd, .plain: "\(prefix)/\(address)"
        case .gozero: "\(prefix)/\(lease)"
        case .kratos: "\(prefix)/\(id)"
        }
    }

    public var value: String {
        switch format {
        case .etcd: #"{"Op":0,"Addr":"\#(address)","Metadata":null}"#
        case .gozero, .plain: address.description
        case .kratos: #"{"id":"\#(id)","name":"\#(prefix.split(separator: "/").last ?? "")","version":"","metadata":null,"endpoints":["grpc://\#(address)"]}"#
        }
    }

    public func start() {
        let t = Task { [self] in await run() }
        lock.withLock { task = t }
    }

    private func run() async {
        while !Task.isCancelled {
            do {
                if !client.isConnected { try await client.connect() }
                let current = lock.withLock { lease }
                let left = current == 0 ? -1 : try await client.timeToLive(current)
                if left <= 0 {
                    let granted = try await client.grantLease(ttl: ttl)
                    let k = key(lease: granted.id)
                    try await client.put(key: k, value: value, lease: granted.id)
                    lock.withLock {
                        lease = granted.id
                        key = k
                    }
                    log("registered \(k) in etcd \(client.current?.description ?? "") with lease \(String(granted.id, radix: 16)) (ttl \(granted.ttl)s)")
                } else {
                    log("etcd \(client.current?.description ?? "") is back; lease \(String(current, radix: 16)) still holds \(lock.withLock { key } ?? "")")
                }
                backoff.reset()
                try await keepAlive(lock.withLock { lease })
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                client.disconnect()
                let delay = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
                log("\((error as? EtcdError)?.description ?? "etcd: \(EtcdError.describe(error))"); retry in \(formatDuration(delay))")
                do { try await Task.sleep(for: .milliseconds(delay)) } catch { return }
            }
        }
    }

    private enum KeepAlive: Sendable {
        case ttl(Int64)
        case end(GRPCStatus)
        case tick
    }

    /// Sends a keep-alive every TTL/3 until the stream or the lease ends.
    private func keepAlive(_ id: Int64) async throws {
        let (stream, cont) = AsyncStream<KeepAlive>.makeStream()
        let call = try await client.keepAliveStream(onTTL: { cont.yield(.ttl($0)) }, onEnd: { cont.yield(.end($0)); cont.finish() })
        let every = max(1000, ttl * 1000 / 3)
        let ticker = Task {
            while !Task.isCancelled {
                cont.yield(.tick)
                try? await Task.sleep(for: .milliseconds(every))
            }
        }
        defer {
            ticker.cancel()
            call.cancel()
        }
        for await m in stream {
            if Task.isCancelled { throw CancellationError() }
            switch m {
            case .tick: call.send(EtcdClient.keepAliveRequest(id))
            case .ttl(let t):
                if t <= 0 {
                    lock.withLock { lease = 0 }
                    throw GRPCStatus(code: 5, message: "lease \(String(id, radix: 16)) expired; registering again")
                }
            case .end(let s): throw s
            }
        }
        throw GRPCStatus(code: GRPCStatus.unavailable, message: "the keep-alive stream ended")
    }

    /// Stops keeping the lease alive, deletes the key and revokes the lease (within `timeoutMs`).
    public func deregister(timeoutMs: Int64 = 2000) async {
        let t = lock.withLock { task }
        t?.cancel()
        await t?.value
        let (k, l) = lock.withLock { (key, lease) }
        guard let k else { return }
        let client = self.client
        let log = self.log
        let work = Task {
            do {
                if !client.isConnected { try await client.connect() }
                try await client.delete(key: k)
                if l != 0 { try await client.revokeLease(l) }
                log("deregistered \(k) from etcd")
            } catch {
                log("etcd: could not deregister \(k): \(EtcdError.describe(error)) (it goes when lease \(String(l, radix: 16)) expires)")
            }
        }
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(timeoutMs))
            work.cancel()
        }
        await work.value
        timer.cancel()
        client.disconnect()
    }
}
