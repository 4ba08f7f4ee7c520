import Foundation
import NIOCore
import TopologyCore

/// `grpctop serve --register consul://HOST:PORT/SERVICE`: the go-zero / kratos flow against the
/// agent's API. `PUT /v1/agent/service/register` (ID = the server's name) with one check:
///
/// - `ttl`: a TTL check the server keeps passing (`PUT /v1/agent/check/pass/service:ID` every
///   third of the TTL), or failing while its health is NOT_SERVING (SIGUSR1); after SIGKILL
///   the TTL runs out and Consul marks the instance critical.
/// - `grpc`: Consul's own gRPC health check pointed at the server (`GRPC`, `Interval`).
///
/// Both deregister critical instances after a minute (Consul's minimum). An agent that is down
/// at start, or that forgot the service (restarted), gets the registration again with backoff.
/// `deregister()` (SIGTERM, before draining) removes it.
public final class ConsulRegistrar: @unchecked Sendable {
    public enum CheckKind: String, Sendable { case ttl, grpc }

    public let config: ConsulConfig
    public let service: String
    public let id: String
    public let address: HostPort
    public let tags: [String]
    public let check: CheckKind
    public let ttlSeconds: Int64
    public let tls: Bool

    private let client: ConsulClient
    private let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var serving = true
    private var task: Task<Void, Never>?
    /// Set by a health change: the TTL loop reports it at once.
    private var healthChanged = false

    public var checkID: String { "service:\(id)" }

    public init(config: ConsulConfig, service: String, id: String, address: HostPort, tags: [String], check: CheckKind,
                ttlSeconds: Int64, tls: Bool, log: @escaping @Sendable (String) -> Void) throws(ConsulConfig.Problem) {
        self.config = config
        self.service = service
        self.id = id
        self.address = address
        self.tags = tags
        self.check = check
        self.ttlSeconds = ttlSeconds
        self.tls = tls
        self.log = log
        client = try ConsulClient(config)
    }

    /// The registration body, as Consul's agent API documents it.
    public var registrationJSON: Data {
        var checkBody: [String: Any] = ["CheckID": checkID, "DeregisterCriticalServiceAfter": "1m"]
        switch check {
        case .ttl:
            checkBody["Name"] = "grpctop serve TTL"
            checkBody["TTL"] = "\(ttlSeconds)s"
        case .grpc:
            checkBody["Name"] = "gRPC health"
            checkBody["GRPC"] = address.description
            checkBody["GRPCUseTLS"] = tls
            checkBody["Interval"] = "\(max(1, ttlSeconds / 3))s"
            checkBody["Timeout"] = "\(max(1, ttlSeconds / 3))s"
            if tls { checkBody["TLSSkipVerify"] = true }
        }
        let body: [String: Any] = ["ID": id, "Name": service, "Address": address.host, "Port": address.port,
                                   "Tags": tags, "Meta": ["registered_by": "grpctop serve"], "Check": checkBody]
        return (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data()
    }

    /// Registers, then keeps the TTL check current, until `deregister()`.
    public func start() {
        client.open()
        let t = Task { [self] in await run() }
        lock.withLock { task = t }
    }

    /// SIGUSR1/SIGUSR2: the TTL check follows the server's health at once.
    public func setServing(_ on: Bool) {
        lock.withLock {
            serving = on
            healthChanged = true
        }
    }

    private func run() async {
        var backoff = ConnectionBackoff(initialMs: 1000, multiplier: 2, jitter: 0.2, maxMs: 15_000, minConnectTimeoutMs: 0)
        var registered = false
        var lastReported: Bool?
        while !Task.isCancelled {
            do {
                if !registered {
                    _ = try await client.expectOK(.PUT, "/v1/agent/service/register", body: registrationJSON, timeout: .seconds(10))
                    registered = true
                    lastReported = nil
                    backoff.reset()
                    log("registered \(id) (\(address)) as \(service) in Consul at \(config.base), \(check == .ttl ? "TTL check \(ttlSeconds)s" : "gRPC health check")")
                }
                if check == .ttl {
                    let on = lock.withLock { serving }
                    let path = "/v1/agent/check/\(on ? "pass" : "fail")/\(ConsulClient.encode(checkID))"
                    let note = on ? "SERVING" : "health NOT_SERVING"
                    do {
                        _ = try await client.expectOK(.PUT, path, query: [("note", note)], timeout: .seconds(10))
                    } catch .status(let code, let m) where code == 404 || (code == 500 && m.localizedCaseInsensitiveContains("check")) {
                        // The agent lost the check (restarted): register again.
                        log("Consul no longer knows \(checkID) (\(code) \(m)); registering again")
                        registered = false
                        continue
                    }
                    if lastReported != on {
                        if lastReported != nil { log("Consul check \(checkID) now \(on ? "passing" : "critical (NOT_SERVING)")") }
                        lastReported = on
                    }
                    await pause(ms: max(500, ttlSeconds * 1000 / 3))
                } else {
                    // Consul checks the server itself; look again now and then in case the agent forgot us.
                    await pause(ms: 10_000)
                    let a = try await client.send(.GET, "/v1/agent/service/\(ConsulClient.encode(id))", timeout: .seconds(10))
                    if a.status == 404 {
                        log("Consul no longer knows service \(id); registering again")
                        registered = false
                    }
                }
            } catch {
                if Task.isCancelled { return }
                let delay = backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
                log("Consul \(registered ? "check update" : "registration") failed: \(error); retry in \(formatDuration(delay))")
                if case .status(let code, _) = error, code == 403 {
                    log("the token (\(config.tokenSource)) needs service:write on \"\(service)\"")
                }
                await pause(ms: delay)
            }
        }
    }

    /// Sleeps `ms`, or less when the health changes (looked at every 50 ms).
    private func pause(ms: Int64) async {
        let end = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, ms)) * 1_000_000
        while !Task.isCancelled {
            if lock.withLock({ () -> Bool in defer { healthChanged = false }; return healthChanged }) { return }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < end else { return }
            try? await Task.sleep(for: .milliseconds(min(50, Int64((end - now) / 1_000_000) + 1)))
        }
    }

    /// Removes the registration (SIGTERM, before draining): clients watching Consul drop this
    /// server first. Gives up after 3 s.
    public func deregister() async {
        let t = lock.withLock { task }
        t?.cancel()
        do {
            _ = try await client.expectOK(.PUT, "/v1/agent/service/deregister/\(ConsulClient.encode(id))", timeout: .seconds(3))
            log("deregistered \(id) from Consul")
        } catch {
            log("could not deregister \(id) from Consul: \(error) (it goes critical and is removed after a minute)")
        }
        await client.shutdown()
    }
}
