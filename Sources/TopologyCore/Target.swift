import Foundation

/// A gRPC target name, parsed as grpc/grpc `doc/naming.md` describes, plus grpctop's `file:`
/// scheme and the registry schemes (`kubernetes:`, `k8s:`, `etcd:`).
///
/// ```
/// dns:[//dns-server[:port]/]host[:port]     host:port (no scheme) means dns
/// ipv4:a[:port][,b[:port]…]                  ipv6:[a]:port[,…]  (or a bare ::1 without port)
/// unix:path   unix:///absolute/path          file:PATH (one endpoint a line, watched)
/// kubernetes:///svc.ns:port  kubernetes://ns/svc:port  k8s:…   etcd:///PREFIX  etcd://host:port/PREFIX
/// consul://[agent-host:port]/SERVICE[?tag=T&passing=true&dc=DC&near=NODE&wait=5m]   xds:///NAME
/// ```
/// The default port is 443, as in gRPC.
public enum Target: Hashable, Sendable, Codable {
    /// `server` is the DNS server named by the authority, if any (default port 53).
    case dns(server: HostPort?, host: String, port: Int)
    case ipv4([HostPort])
    case ipv6([HostPort])
    case unix(path: String)
    case file(path: String)
    case kubernetes(namespace: String?, service: String, port: String)
    case etcd(endpoint: HostPort?, prefix: String)
    /// `xds:///NAME`: the listener NAME from the control plane in the xDS bootstrap.
    case xds(name: String)
    /// `consul://[HOST:PORT]/SERVICE?…`: the service's instances from a Consul agent's health API.
    case consul(agent: HostPort?, service: String, query: ConsulQuery)

    public static let defaultPort = 443

    /// The scheme as the user would write it.
    public var scheme: String {
        switch self {
        case .dns: "dns"
        case .ipv4: "ipv4"
        case .ipv6: "ipv6"
        case .unix: "unix"
        case .file: "file"
        case .kubernetes: "kubernetes"
        case .etcd: "etcd"
        case .xds: "xds"
        case .consul: "consul"
        }
    }

    /// If the target needs no lookup (IP literals and unix paths), its addresses.
    /// IP literals under `dns:` resolve without a lookup, as gRPC does.
    public var staticAddresses: [EndpointAddress]? {
        switch self {
        case .ipv4(let list), .ipv6(let list):
            return list.map { .tcp(host: $0.host, port: $0.port) }
        case .unix(let path):
            return [.unix(path: path)]
        case .dns(_, let host, let port):
            if IPAddressText.isIPv4(host) || IPAddressText.isIPv6(host) {
                return [.tcp(host: host, port: port)]
            }
            return nil
        case .file, .kubernetes, .etcd, .xds, .consul:
            return nil
        }
    }

    /// The `:authority` the channel sends by default (gRPC: the target's host[:port]).
    public var defaultAuthority: String {
        switch self {
        case .dns(_, let host, let port):
            return HostPort(host: host, port: port).description
        case .ipv4(let list), .ipv6(let list):
            return list.first?.description ?? "localhost"
        case .unix:
            return "localhost"
        case .file(let path):
            return path
        case .kubernetes(let ns, let svc, let port):
            return ns.map { "\(svc).\($0):\(port)" } ?? "\(svc):\(port)"
        case .etcd(_, let prefix):
            return prefix
        case .xds(let name):
            return name
        case .consul(_, let service, _):
            return service
        }
    }
}

/// A host (name or IP literal, without brackets) and a port.
public struct HostPort: Hashable, Sendable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around IPv6 literals.
    public var description: String {
        host.utf8.contains(UInt8(ascii: ":")) ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Why a target string was refused. The message is one line that names what was wrong and how
/// to write it instead.
public struct TargetError: Error, Equatable, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension Target {
    static let knownSchemes = ["dns", "ipv4", "ipv6", "unix", "file", "kubernetes", "k8s", "etcd", "xds", "consul"]
    static let schemeHint = "use dns:///host:port, host:port, ipv4:a:port,b:port, ipv6:[a]:port, unix:/path, file:PATH, kubernetes:///svc.ns:port, etcd:///prefix, consul:///service or xds:///name"

    /// Parses a target string; throws a `TargetError` whose message names the problem.
    public static func parse(_ text: String) throws(TargetError) -> Target {
        let input = text.trimmingCharacters(in: .whitespaces)
        guard !input.isEmpty else { throw TargetError("empty target: \(schemeHint)") }
        if input.contains(where: { $0 == " " || $0 == "\t" }) {
            throw TargetError("target '\(input)' contains a space: \(schemeHint)")
        }

        // Split off a scheme: letters, digits, '+', '-', '.', starting with a letter, then ':'.
        if let colon = input.firstIndex(of: ":") {
            let scheme = String(input[..<colon])
            let rest = String(input[input.index(after: colon)...])
            let looksLikeScheme = scheme.first?.isLetter == true
                && scheme.allSatisfy { $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }
            if looksLikeScheme {
                let lower = scheme.lowercased()
                if knownSchemes.contains(lower) {
                    return try parse(scheme: lower, rest: rest, whole: input)
                }
                // `name:port` (gRPC prepends dns:/// to targets whose scheme it does not know).
                if !rest.hasPrefix("//"), rest.allSatisfy(\.isNumber), !rest.isEmpty {
                    return try parseDNS(authority: nil, hostPort: input, whole: input)
                }
                if scheme.allSatisfy(\.isHexDigit) && input.filter({ $0 == ":" }).count >= 2 {
                    throw TargetError("target '\(input)' looks like an IPv6 address: put it in brackets, as [::1]:50051")
                }
                throw TargetError("unknown scheme '\(scheme)' in target '\(input)': \(schemeHint)")
            }
        }
        // No scheme: `host`, `host:port`, `[v6]:port`.
        return try parseDNS(authority: nil, hostPort: input, whole: input)
    }

    private static func parse(scheme: String, rest: String, whole: String) throws(TargetError) -> Target {
        switch scheme {
        case "dns":
            // dns:host[:port] or dns://[authority]/host[:port]
            if rest.hasPrefix("//") {
                let afterSlashes = rest.dropFirst(2)
                guard let slash = afterSlashes.firstIndex(of: "/") else {
                    throw TargetError("target '\(whole)' has no host: write dns:///host:port (or dns://dns-server/host:port)")
                }
                let authority = String(afterSlashes[..<slash])
                let hostPort = String(afterSlashes[afterSlashes.index(after: slash)...])
                return try parseDNS(authority: authority.isEmpty ? nil : authority, hostPort: hostPort, whole: whole)
            }
            return try parseDNS(authority: nil, hostPort: rest, whole: whole)
        case "ipv4", "ipv6":
            let v6 = scheme == "ipv6"
            let list = rest.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            var out: [HostPort] = []
            for item in list {
                guard !item.isEmpty else {
                    throw TargetError("target '\(whole)' has an empty address in its list")
                }
                let hp = try splitHostPort(item, whole: whole, bareIPv6: v6)
                if v6 {
                    guard IPAddressText.isIPv6(hp.host) else {
                        throw TargetError("'\(hp.host)' in target '\(whole)' is not an IPv6 address (write ipv6:[::1]:50051)")
                    }
                } else {
                    guard IPAddressText.isIPv4(hp.host) else {
                        throw TargetError("'\(hp.host)' in target '\(whole)' is not an IPv4 address (write ipv4:127.0.0.1:50051)")
                    }
                }
                out.append(hp)
            }
            return v6 ? .ipv6(out) : .ipv4(out)
        case "unix":
            var path = rest
            if path.hasPrefix("//") {
                path = String(path.dropFirst(2))
                guard path.hasPrefix("/") else {
                    throw TargetError("target '\(whole)': unix:// needs an absolute path (unix:///tmp/sock) or write unix:relative/path")
                }
            }
            guard !path.isEmpty else { throw TargetError("target '\(whole)' has no socket path: write unix:/path/to/socket") }
            return .unix(path: path)
        case "file":
            var path = rest
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw TargetError("target '\(whole)' has no path: write file:endpoints.txt") }
            return .file(path: path)
        case "kubernetes", "k8s":
            return try parseKubernetes(rest, whole: whole)
        case "etcd":
            return try parseEtcd(rest, whole: whole)
        case "xds":
            return try parseXDS(rest, whole: whole)
        case "consul":
            return try parseConsul(rest, whole: whole)
        default:
            throw TargetError("unknown scheme '\(scheme)' in target '\(whole)': \(schemeHint)")
        }
    }

    private static func parseDNS(authority: String?, hostPort: String, whole: String) throws(TargetError) -> Target {
        guard !hostPort.isEmpty else { throw TargetError("target '\(whole)' has no host") }
        let hp = try splitHostPort(hostPort, whole: whole, bareIPv6: false, defaultPort: defaultPort)
        guard !hp.host.isEmpty else { throw TargetError("target '\(whole)' has no host") }
        if !IPAddressText.isIPv4(hp.host) && !IPAddressText.isIPv6(hp.host) {
            try validateHostName(hp.host, whole: whole)
        }
        var server: HostPort?
        if let authority {
            server = try splitHostPort(authority, whole: whole, bareIPv6: false, defaultPort: 53)
        }
        return .dns(server: server, host: hp.host, port: hp.port)
    }

    private static func parseKubernetes(_ rest: String, whole: String) throws(TargetError) -> Target {
        // kubernetes:///svc.ns:port | kubernetes:///svc:port | kubernetes://ns/svc:port | kubernetes:svc.ns:port
        var namespace: String?
        var path = rest
        if rest.hasPrefix("//") {
            let after = rest.dropFirst(2)
            guard let slash = after.firstIndex(of: "/") else {
                throw TargetError("target '\(whole)': write kubernetes:///service.namespace:port or kubernetes://namespace/service:port")
            }
            let auth = String(after[..<slash])
            if !auth.isEmpty { namespace = auth }
            path = String(after[after.index(after: slash)...])
        }
        guard let colon = path.lastIndex(of: ":") else {
            throw TargetError("target '\(whole)' has no port: write kubernetes:///service.namespace:port (a number or a port name)")
        }
        let name = String(path[..<colon])
        let port = String(path[path.index(after: colon)...])
        guard !port.isEmpty else { throw TargetError("target '\(whole)' has an empty port") }
        if port.allSatisfy(\.isNumber) { _ = try checkPort(port, whole: whole) }
        var service = name
        if namespace == nil, let dot = name.firstIndex(of: ".") {
            service = String(name[..<dot])
            var ns = String(name[name.index(after: dot)...])
            // svc.ns.svc and svc.ns.svc.cluster.local name the same Service.
            if let d = ns.firstIndex(of: "."), ns[ns.index(after: d)...].hasPrefix("svc") { ns = String(ns[..<d]) }
            namespace = ns
        }
        guard !service.isEmpty else { throw TargetError("target '\(whole)' has no service name") }
        for label in [service] + (namespace.map { [$0] } ?? []) where !isDNS1123Label(label) {
            throw TargetError("'\(label)' in target '\(whole)' is not a valid Kubernetes name (lower-case letters, digits and '-', at most 63)")
        }
        return .kubernetes(namespace: namespace, service: service, port: port)
    }

    private static func parseEtcd(_ rest: String, whole: String) throws(TargetError) -> Target {
        var endpoint: HostPort?
        var prefix = rest
        if rest.hasPrefix("//") {
            let after = rest.dropFirst(2)
            guard let slash = after.firstIndex(of: "/") else {
                throw TargetError("target '\(whole)': write etcd:///prefix or etcd://host:port/prefix")
            }
            let auth = String(after[..<slash])
            if !auth.isEmpty { endpoint = try splitHostPort(auth, whole: whole, bareIPv6: false, defaultPort: 2379) }
            prefix = String(after[after.index(after: slash)...])
        }
        guard !prefix.isEmpty else { throw TargetError("target '\(whole)' has no key prefix: write etcd:///services/greeter") }
        return .etcd(endpoint: endpoint, prefix: prefix)
    }

    /// `xds:///NAME` (an authority, gRFC A47's federation, is not supported).
    private static func parseXDS(_ rest: String, whole: String) throws(TargetError) -> Target {
        guard rest.hasPrefix("///") else {
            if rest.hasPrefix("//") {
                throw TargetError("target '\(whole)': xds:// with an authority (federation, gRFC A47) is not supported: write xds:///NAME")
            }
            throw TargetError("target '\(whole)': write xds:///NAME (the listener's name)")
        }
        let name = String(rest.dropFirst(3))
        guard !name.isEmpty else { throw TargetError("target '\(whole)' has no listener name: write xds:///greeter") }
        guard name.count <= 512, name.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw TargetError("target '\(whole)': the listener name must be printable ASCII, at most 512 characters")
        }
        return .xds(name: name)
    }

    static func checkPort(_ text: String, whole: String) throws(TargetError) -> Int {
        guard !text.isEmpty, text.count <= 6, text.allSatisfy(\.isNumber), let port = Int(text) else {
            throw TargetError("port '\(text)' in target '\(whole)' is not a number")
        }
        guard (1...65535).contains(port) else {
            throw TargetError("port \(port) in target '\(whole)' is out of range (1-65535)")
        }
        return port
    }

    /// `host`, `host:port`, `[v6]`, `[v6]:port`; with `bareIPv6` also an unbracketed v6 literal.
    public static func splitHostPort(_ text: String, whole: String, bareIPv6: Bool, defaultPort: Int = Target.defaultPort)
        throws(TargetError) -> HostPort
    {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw TargetError("target '\(whole)' has '[' without ']'")
            }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            if after.isEmpty { return HostPort(host: host, port: defaultPort) }
            guard after.first == ":" else { throw TargetError("target '\(whole)': expected ':port' after ']'") }
            return HostPort(host: host, port: try checkPort(String(after.dropFirst()), whole: whole))
        }
        let colons = text.filter { $0 == ":" }.count
        if colons == 0 { return HostPort(host: text, port: defaultPort) }
        if colons > 1 {
            if bareIPv6 || IPAddressText.isIPv6(text) { return HostPort(host: text, port: defaultPort) }
            throw TargetError("target '\(whole)': put IPv6 addresses in brackets, as [::1]:50051")
        }
        let colon = text.firstIndex(of: ":")!
        let host = String(text[..<colon])
        return HostPort(host: host, port: try checkPort(String(text[text.index(after: colon)...]), whole: whole))
    }

    static func validateHostName(_ host: String, whole: String) throws(TargetError) {
        guard isHostName(host) else { throw TargetError("'\(host)' in target '\(whole)' is not a valid host name") }
    }

    /// A DNS name: labels of 1–63 letters, digits, '-' or '_', at most 253 characters.
    public static func isHostName(_ host: String) -> Bool {
        host.count <= 253 && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
        }
    }

    public static func isDNS1123Label(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 63, let first = s.first, let last = s.last else { return false }
        let allowed = s.allSatisfy { ($0.isASCII && $0.isLowercase) || $0.isNumber || $0 == "-" }
        return allowed && first != "-" && last != "-"
    }
}

/// IP literal checks without libc, so they behave the same everywhere.
public enum IPAddressText {
    public static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && (Int(p) ?? 256) <= 255
        }
    }

    public static func isIPv6(_ s: String) -> Bool {
        var text = Substring(s)
        if let pct = text.firstIndex(of: "%") { text = text[..<pct] }  // zone id
        guard text.contains(":"), text.count >= 2 else { return false }
        let doubleColons = text.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        var groups = text.split(separator: ":", omittingEmptySubsequences: true).map(String.init)
        var maxGroups = 8
        if let last = groups.last, last.contains(".") {
            guard isIPv4(last) else { return false }
            groups.removeLast()
            maxGroups = 6
        }
        guard groups.allSatisfy({ g in g.count <= 4 && !g.isEmpty && g.allSatisfy(\.isHexDigit) }) else { return false }
        if doubleColons == 1 { return groups.count < maxGroups }
        // Without '::' there must be no empty group at all.
        guard !text.hasPrefix(":"), !text.hasSuffix(":") else { return false }
        return groups.count == maxGroups
    }
}

