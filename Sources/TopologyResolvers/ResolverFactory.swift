import EtcdAPI
import XDSAPI
import Foundation
import TopologyCore

/// Which resolver serves a target — the one place a scheme maps to its resolver, as gRPC's
/// resolver registry does. `watch` builds its resolver here; a new scheme (consul://, xds:///)
/// adds a case here and its settings below.
public enum ResolverFactory {
    /// What the resolvers need from the command line, already parsed and range-checked.
    public struct Settings: Sendable {
        /// `--dns-refresh`: grpc, ttl or an interval; `--dns-min-interval` for grpc's rate limit.
        public var dnsRefresh: DNSRefresh = .grpc(minIntervalMs: 30_000)
        public var dnsTimeoutMs: Int64 = 10_000
        public var srv = false
        public var kubeAPI: String?
        public var kubeconfig: String?
        public var kubeContext: String?
        /// The etcd client configuration for an `etcd://[HOST:PORT]/PREFIX` target.
        public var etcdConfig: @Sendable (HostPort?) throws -> EtcdConfig = { ep in
            EtcdConfig(endpoints: [EtcdConfig.Endpoint(tls: false, host: ep?.host ?? "127.0.0.1", port: ep?.port ?? 2379)])
        }
        /// `--consul-token-file FILE` (else CONSUL_HTTP_TOKEN_FILE / CONSUL_HTTP_TOKEN).
        public var consulTokenFile: String?
        /// `--xds-bootstrap FILE` (else GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG).
        public var xdsBootstrap: String?
        public var environment: [String: String] = ProcessInfo.processInfo.environment
        /// The RPC's path, which an xDS route is chosen for.
        public var rpcPath = "/grpc.health.v1.Health/Check"
        public init() {}
    }

    /// A target that names no resolver's input, or a resolver that cannot be set up: the message
    /// says what to fix.
    public struct SetupError: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// The resolver for `target` (`text` is the target as the user wrote it, for messages).
    public static func make(_ target: Target, text: String, settings: Settings) throws -> any EndpointResolver {
        if let addresses = target.staticAddresses { return StaticResolver(addresses: addresses) }
        switch target {
        case .file(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw SetupError("target '\(text)': \(path): no such file (create it with one host:port a line)")
            }
            return FileResolver(path: path)
        case .dns(let server, let host, let port):
            if let server, !IPAddressText.isIPv4(server.host) && !IPAddressText.isIPv6(server.host) {
                throw SetupError("target '\(text)': the DNS server '\(server.host)' must be an IP address, e.g. dns://10.96.0.10/\(host):\(port)")
            }
            return DNSResolver(host: host, port: port, server: server?.description, srv: settings.srv,
                               refresh: settings.dnsRefresh, timeoutMs: Int(settings.dnsTimeoutMs))
        case .kubernetes(let ns, let service, let port):
            do {
                let api = try KubeAPIConfig.load(kubeAPI: settings.kubeAPI, kubeconfig: settings.kubeconfig, context: settings.kubeContext)
                return try KubernetesResolver(namespace: ns ?? api.namespace ?? "default", service: service, port: port, config: api)
            } catch {
                throw SetupError("target '\(text)': \(error)")
            }
        case .etcd(let endpoint, let prefix):
            let config = try settings.etcdConfig(endpoint)
            do { return try EtcdResolver(prefix: prefix.hasSuffix("/") ? prefix : prefix + "/", config: config) } catch {
                throw SetupError("target '\(text)': cannot set up TLS for etcd: \(error)")
            }
        case .xds(let name):
            let bootstrap: XDSBootstrap
            do { bootstrap = try XDSBootstrap.load(flag: settings.xdsBootstrap, environment: settings.environment) } catch {
                throw SetupError("target '\(text)': \(error)")
            }
            do { return try XDSResolver(listenerName: name, bootstrap: bootstrap, rpcPath: settings.rpcPath) } catch {
                throw SetupError("target '\(text)': the bootstrap's TLS files cannot be used: \(error)")
            }
        case .consul(let agent, let service, let query):
            do {
                let config = try ConsulConfig.resolve(agent: agent, environment: settings.environment, tokenFile: settings.consulTokenFile)
                return try ConsulResolver(service: service, query: query, config: config)
            } catch {
                throw SetupError("target '\(text)': \(error)")
            }
        case .ipv4, .ipv6, .unix:
            throw SetupError("target '\(text)' has no addresses")
        }
    }
}
