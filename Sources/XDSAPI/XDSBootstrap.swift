import Foundation

/// gRPC's xDS bootstrap (gRFC A27): where the control plane is and who this client is. Read
/// from `--xds-bootstrap FILE`, `GRPC_XDS_BOOTSTRAP` (a file) or `GRPC_XDS_BOOTSTRAP_CONFIG`
/// (the JSON itself), in that order. Only the first `xds_servers` entry is used, with the first
/// channel credentials grpctop supports (`insecure`, `tls`).
public struct XDSBootstrap: Sendable, Equatable {
    public enum Credentials: Sendable, Equatable {
        case insecure
        /// TLS; the CA, certificate and key files when the bootstrap names them
        /// (`config.ca_certificate_file`, `certificate_file`, `private_key_file`).
        case tls(caFile: String?, certFile: String?, keyFile: String?)
    }

    /// `host:port` of the control plane (a `dns:///` prefix is removed).
    public var serverHost: String
    public var serverPort: Int
    public var credentials: Credentials
    public var serverFeatures: [String]
    public var nodeID: String
    public var nodeCluster: String
    public var locality: (region: String, zone: String, subZone: String)

    public var server: String { serverHost.contains(":") ? "[\(serverHost)]:\(serverPort)" : "\(serverHost):\(serverPort)" }

    public static func == (a: XDSBootstrap, b: XDSBootstrap) -> Bool {
        a.serverHost == b.serverHost && a.serverPort == b.serverPort && a.credentials == b.credentials && a.serverFeatures == b.serverFeatures
            && a.nodeID == b.nodeID && a.nodeCluster == b.nodeCluster && a.locality == b.locality
    }

    /// Why a bootstrap cannot be used, in one line that says what to fix.
    public struct Problem: Error, CustomStringConvertible, Equatable {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// The bootstrap from the flag or the environment; where it came from is in every problem.
    public static func load(flag: String?, environment: [String: String]) throws(Problem) -> XDSBootstrap {
        if let path = flag { return try read(file: path, source: "--xds-bootstrap \(path)") }
        if let path = environment["GRPC_XDS_BOOTSTRAP"], !path.isEmpty { return try read(file: path, source: "GRPC_XDS_BOOTSTRAP=\(path)") }
        if let json = environment["GRPC_XDS_BOOTSTRAP_CONFIG"], !json.isEmpty {
            return try parse(Array(json.utf8), source: "GRPC_XDS_BOOTSTRAP_CONFIG")
        }
        throw Problem("xds:/// needs a bootstrap: set GRPC_XDS_BOOTSTRAP to a file, GRPC_XDS_BOOTSTRAP_CONFIG to its JSON, or pass --xds-bootstrap FILE (gRFC A27)")
    }

    static func read(file path: String, source: String) throws(Problem) -> XDSBootstrap {
        guard let data = FileManager.default.contents(atPath: path) else { throw Problem("\(source): no such file (or not readable)") }
        guard data.count <= 1 << 20 else { throw Problem("\(source): larger than 1 MiB; is it a bootstrap?") }
        return try parse([UInt8](data), source: source)
    }

    /// Parses bootstrap JSON; `source` names it in problems.
    public static func parse(_ bytes: [UInt8], source: String) throws(Problem) -> XDSBootstrap {
        guard bytes.count <= 1 << 20 else { throw Problem("\(source): larger than 1 MiB") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else {
            throw Problem("\(source): not JSON")
        }
        guard let root = object as? [String: Any] else { throw Problem("\(source): not a JSON object") }
        guard let servers = root["xds_servers"] as? [Any], let first = servers.first else {
            throw Problem("\(source): no xds_servers (add {\"xds_servers\": [{\"server_uri\": \"HOST:PORT\", \"channel_creds\": [{\"type\": \"insecure\"}]}]})")
        }
        guard let server = first as? [String: Any] else { throw Problem("\(source): xds_servers[0] is not an object") }
        guard var uri = server["server_uri"] as? String, !uri.isEmpty else { throw Problem("\(source): xds_servers[0] has no server_uri") }
        for prefix in ["dns:///", "dns:", "ipv4:", "ipv6:"] where uri.hasPrefix(prefix) { uri.removeFirst(prefix.count) }
        guard let (host, port) = hostPort(uri) else {
            throw Problem("\(source): server_uri '\(String(uri.prefix(100)))' is not HOST:PORT (e.g. 127.0.0.1:18000 or xds.example.com:443)")
        }
        var credentials: Credentials?
        var seen: [String] = []
        for c in server["channel_creds"] as? [Any] ?? [] {
            guard let c = c as? [String: Any], let type = c["type"] as? String else { continue }
            seen.append(type)
            if type == "insecure" { credentials = .insecure; break }
            if type == "tls" {
                let cfg = c["config"] as? [String: Any] ?? [:]
                credentials = .tls(caFile: cfg["ca_certificate_file"] as? String, certFile: cfg["certificate_file"] as? String,
                                   keyFile: cfg["private_key_file"] as? String)
                break
            }
        }
        guard let credentials else {
            if seen.isEmpty { throw Problem("\(source): xds_servers[0] has no channel_creds (use [{\"type\": \"insecure\"}] or [{\"type\": \"tls\"}])") }
            throw Problem("\(source): channel_creds \(seen.map { "'\(String($0.prefix(40)))'" }.joined(separator: ", ")) not supported by grpctop: use insecure or tls")
        }
        let features = (server["server_features"] as? [Any] ?? []).compactMap { $0 as? String }.prefix(32).map { String($0.prefix(100)) }
        let node = root["node"] as? [String: Any] ?? [:]
        let locality = node["locality"] as? [String: Any] ?? [:]
        return XDSBootstrap(serverHost: host, serverPort: port, credentials: credentials, serverFeatures: Array(features),
                            nodeID: String((node["id"] as? String ?? "grpctop").prefix(1000)),
                            nodeCluster: String((node["cluster"] as? String ?? "").prefix(1000)),
                            locality: (String((locality["region"] as? String ?? "").prefix(200)), String((locality["zone"] as? String ?? "").prefix(200)),
                                       String((locality["sub_zone"] as? String ?? "").prefix(200))))
    }

    /// `host:port`, `[v6]:port`.
    static func hostPort(_ s: String) -> (String, Int)? {
        var host: Substring
        var portText: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]"), s[s.index(after: close)...].hasPrefix(":") else { return nil }
            host = s[s.index(after: s.startIndex)..<close]
            portText = s[s.index(close, offsetBy: 2)...]
        } else {
            guard let colon = s.lastIndex(of: ":"), !s[..<colon].contains(":") else { return nil }
            host = s[..<colon]
            portText = s[s.index(after: colon)...]
        }
        guard !host.isEmpty, host.count <= 253, let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }
}
