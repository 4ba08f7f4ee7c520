import ArgumentParser
import EtcdAPI
import Foundation
import NIOCore
import NIOPosix
import TopologyCore
import TopologyResolvers
import TopologyServer

/// `grpctop serve`: the test server — Greeter, standard health, controllable failures, limits
/// and drains — so fleets of real gRPC backends can be started anywhere.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a test gRPC server (Greeter + health) that says who it is in x-served-by.",
        discussion: """
        Prints 'serving NAME on HOST:PORT' once listening. SIGTERM/SIGINT drain gracefully (GOAWAY, \
        in-flight RPCs finish, exit 0); SIGUSR1 sets health NOT_SERVING, SIGUSR2 back to SERVING. \
        On exit prints the RPCs served per method as JSON (also to --stats-file).
        """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0 picks a free one and prints it).") var port = 0
    @Option(help: "Listen on this Unix domain socket instead of TCP.") var unix: String?
    @Option(help: "Name in replies and in the x-served-by header (default: $POD_NAME, else the host name).") var name: String?
    @Option(help: "Delay before each unary reply (e.g. 5ms).") var delay = "0ms"
    @Option(help: "Extra random delay, uniform in [0, jitter].") var jitter = "0ms"
    @Option(name: .customLong("fail-rate"), help: "Fraction of unary RPCs to fail (0..1).") var failRate = 0.0
    @Flag(name: .customLong("fail-while-not-serving"), help: "While NOT_SERVING (SIGUSR1), fail SayHello with UNAVAILABLE (a pod whose dependency is down).")
    var failWhileNotServing = false
    @Option(name: .customLong("fail-code"), help: "grpc-status for injected failures (number or name).") var failCode = "UNAVAILABLE"
    @Option(name: .customLong("max-concurrent-streams"), help: "SETTINGS_MAX_CONCURRENT_STREAMS to announce.") var maxConcurrentStreams: Int?
    @Option(name: .customLong("max-connection-age"), help: "gRFC A9 max connection age (±10% jitter), e.g. 30s.") var maxConnectionAge: String?
    @Option(name: .customLong("max-connection-age-grace"), help: "Time in-flight RPCs get after the age GOAWAY.") var maxConnectionAgeGrace = "30s"
    @Option(name: .customLong("drain-grace"), help: "Longest graceful drain on SIGTERM.") var drainGrace = "30s"
    @Option(name: .customLong("stats-file"), help: "Write the served-RPC counts (JSON) here on exit.") var statsFile: String?
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve TLS with ALPN h2.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(help: "Register in etcd (etcd://host:port/PREFIX, or etcd:///PREFIX with --etcd) or Consul (consul://host:port/SERVICE[?tag=T]); removed on SIGTERM before draining, expires after SIGKILL.")
    var register: String?
    @Option(name: .customLong("lease-ttl"), help: "TTL of the etcd lease or of Consul's TTL check (a gRPC check runs every third of it).") var leaseTTL = "10s"
    @Option(name: .customLong("consul-check"), help: "Consul check with --register consul://: ttl (kept passing by the server; failing while NOT_SERVING) or grpc (Consul calls grpc.health.v1.Health).")
    var consulCheck = "ttl"
    @Option(name: .customLong("consul-token-file"), help: "Consul ACL token file (default: $CONSUL_HTTP_TOKEN_FILE, $CONSUL_HTTP_TOKEN); the token needs service:write.")
    var consulTokenFile: String?
    @Option(name: .customLong("register-format"), help: "Value written: etcd (etcd naming JSON), gozero, kratos or plain.")
    var registerFormat = "etcd"
    @Option(name: .customLong("register-address"), help: "host:port to register (default: the address served on).")
    var registerAddress: String?
    @OptionGroup var etcdOptions: EtcdOptions

    func run() throws {
        guard (0...65535).contains(port) else { throw UsageFailure("--port \(port) is out of range (0-65535)") }
        guard (0...1).contains(failRate) else { throw UsageFailure("--fail-rate \(failRate) must be between 0 and 1") }
        guard let code = GRPCStatusName.code(failCode), (1...16).contains(code) else {
            throw UsageFailure("--fail-code '\(failCode)' is not a gRPC status (1-16 or a name like UNAVAILABLE)")
        }
        if let m = maxConcurrentStreams, !(0...Int(Int32.max)).contains(m) {
            throw UsageFailure("--max-concurrent-streams \(m) is out of range (0-\(Int32.max); 0 lets no RPC start)")
        }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw UsageFailure("--tls-cert and --tls-key go together") }

        let env = ProcessInfo.processInfo.environment
        var config = ServerConfig(name: name ?? env["POD_NAME"] ?? ProcessInfo.processInfo.hostName)
        config.host = host
        config.port = port
        config.unixPath = unix
        config.delayMs = try parseDuration(delay, flag: "--delay")
        config.jitterMs = try parseDuration(jitter, flag: "--jitter")
        config.failRate = failRate
        config.failWhileNotServing = failWhileNotServing
        config.failCode = code
        config.maxConcurrentStreams = maxConcurrentStreams
        config.maxConnectionAgeMs = try maxConnectionAge.map { try parseDuration($0, flag: "--max-connection-age") }
        config.maxConnectionAgeGraceMs = try parseDuration(maxConnectionAgeGrace, flag: "--max-connection-age-grace")
        config.drainGraceMs = try parseDuration(drainGrace, flag: "--drain-grace")
        config.tlsCertPath = tlsCert
        config.tlsKeyPath = tlsKey

        let registration = try registrationConfig()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server: TestServer
        let address: String
        do {
            server = try TestServer(config: config, group: group)
            address = try server.start()
        } catch {
            fail("cannot serve on \(unix.map { "unix:\($0)" } ?? HostPort(host: host, port: port).description): \(error)")
        }
        print("serving \(config.name) on \(address)")
        fflush(nil)
        var registrar: EtcdRegistrar?
        var consulRegistrar: ConsulRegistrar?
        if let registration {
            let advertised: HostPort
            do { advertised = try Target.splitHostPort(registerAddress ?? address, whole: registerAddress ?? address, bareIPv6: false, defaultPort: -1) } catch {
                fail("--register-address '\(registerAddress ?? address)': \(error)")
            }
            if advertised.host == "0.0.0.0" || advertised.host == "::" {
                fail("--register: serving on \(address), which clients cannot dial: give --register-address HOST:PORT")
            }
            let log: @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data("grpctop serve: \(line)\n".utf8)) }
            switch registration {
            case .etcd(let etcdConfig, let prefix, let format, let ttl):
                do {
                    registrar = try EtcdRegistrar(config: etcdConfig, prefix: prefix, address: advertised, id: config.name, format: format, ttl: ttl, log: log)
                } catch {
                    fail("--register: cannot set up TLS for etcd: \(error)")
                }
                registrar?.start()
            case .consul(let consulConfig, let service, let tags, let check, let ttl):
                do {
                    consulRegistrar = try ConsulRegistrar(config: consulConfig, service: service, id: config.name, address: advertised, tags: tags,
                                                          check: check, ttlSeconds: ttl, tls: tlsCert != nil, log: log)
                } catch {
                    fail("--register: \(error)")
                }
                consulRegistrar?.start()
            }
        }

        let done = DispatchSemaphore(value: 0)
        let signals = SignalWatcher()
        signals.on([SIGTERM, SIGINT]) { [registrar, consulRegistrar] _ in
            // Deregister first (clients watching the registry drop this server), then drain.
            let deregistered = DispatchSemaphore(value: 0)
            Task {
                await registrar?.deregister()
                await consulRegistrar?.deregister()
                deregistered.signal()
            }
            deregistered.wait()
            server.drain().whenComplete { _ in done.signal() }
        }
        signals.on([SIGUSR1]) { [consulRegistrar] _ in
            server.setServing(false)
            consulRegistrar?.setServing(false)
        }
        signals.on([SIGUSR2]) { [consulRegistrar] _ in
            server.setServing(true)
            consulRegistrar?.setServing(true)
        }
        done.wait()
        let json = server.statsJSON()
        print(json)
        fflush(nil)
        if let statsFile {
            try? (json + "\n").write(toFile: statsFile, atomically: true, encoding: .utf8)
        }
        try? group.syncShutdownGracefully()
    }
}

extension Serve {
    enum Registration {
        case etcd(EtcdConfig, String, EtcdRegistrar.Format, Int64)
        case consul(ConsulConfig, service: String, tags: [String], check: ConsulRegistrar.CheckKind, ttlSeconds: Int64)
    }

    /// `--register` parsed: etcd (where, the prefix, the value format, the lease TTL) or Consul
    /// (the agent, the service, its tag, the check).
    func registrationConfig() throws -> Registration? {
        guard let register else {
            if etcdOptions.given { throw UsageFailure("--etcd and the other --etcd-… flags go with --register etcd://…/PREFIX") }
            if consulTokenFile != nil || consulCheck != "ttl" { throw UsageFailure("--consul-check and --consul-token-file go with --register consul://HOST:PORT/SERVICE") }
            return nil
        }
        guard unix == nil else { throw UsageFailure("--register needs a TCP address, not --unix") }
        let target: Target
        do { target = try Target.parse(register) } catch { throw UsageFailure("--register: \(error)") }
        let ttlMs = try parseDuration(leaseTTL, flag: "--lease-ttl")
        guard ttlMs >= 1000, ttlMs % 1000 == 0, ttlMs <= 86_400_000 else {
            throw UsageFailure("--lease-ttl \(leaseTTL): whole seconds, from 1s to 24h")
        }
        switch target {
        case .etcd(let endpoint, let prefix):
            guard consulTokenFile == nil, consulCheck == "ttl" else { throw UsageFailure("--consul-check and --consul-token-file go with --register consul://…, not etcd") }
            guard let format = EtcdRegistrar.Format(rawValue: registerFormat) else {
                throw UsageFailure("--register-format '\(registerFormat)': use etcd, gozero, kratos or plain")
            }
            let config = try etcdOptions.config(endpoint: endpoint, what: "--register '\(register)'")
            return .etcd(config, prefix, format, ttlMs / 1000)
        case .consul(let agent, let service, let query):
            if etcdOptions.given { throw UsageFailure("--etcd and the other --etcd-… flags go with --register etcd://…, not consul") }
            guard let check = ConsulRegistrar.CheckKind(rawValue: consulCheck) else {
                throw UsageFailure("--consul-check '\(consulCheck)': use ttl or grpc")
            }
            guard query.datacenter == nil, query.near == nil, !query.passingOnly, query.waitMs == ConsulQuery.defaultWaitMs else {
                throw UsageFailure("--register '\(register)': only ?tag=T applies to a registration")
            }
            do {
                let config = try ConsulConfig.resolve(agent: agent, environment: ProcessInfo.processInfo.environment, tokenFile: consulTokenFile)
                return .consul(config, service: service, tags: query.tag.map { [$0] } ?? [], check: check, ttlSeconds: ttlMs / 1000)
            } catch {
                throw UsageFailure("--register '\(register)': \(error)")
            }
        default:
            throw UsageFailure("--register '\(register)': write etcd://host:port/PREFIX, etcd:///PREFIX or consul://host:port/SERVICE")
        }
    }
}

/// Signal handlers on a dispatch queue (the default action is turned off for the watched signals).
final class SignalWatcher: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let queue = DispatchQueue(label: "grpctop.signals")

    func on(_ signals: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            s.setEventHandler { handler(sig) }
            s.resume()
            sources.append(s)
        }
    }
}
