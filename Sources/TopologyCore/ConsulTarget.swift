import Foundation

/// What a `consul://` target asks the agent for: `GET /v1/health/service/SERVICE` with these
/// parameters (go-zero's and grpc-consul-resolver's query names).
public struct ConsulQuery: Hashable, Sendable, Codable {
    /// `tag=T`: only instances with this tag.
    public var tag: String?
    /// `passing=true` (or go-zero's `healthy=true`): only instances whose checks all pass; a
    /// warning then means not ready too. Default false: every instance is shown, critical ones
    /// as not ready.
    public var passingOnly = false
    /// `dc=DC`: another datacenter than the agent's.
    public var datacenter: String?
    /// `near=NODE` (or `_agent`): sort by round-trip time from that node.
    public var near: String?
    /// `wait=5m`: the blocking query's longest wait (Consul caps it at 10 minutes).
    public var waitMs: Int64 = ConsulQuery.defaultWaitMs

    public static let defaultWaitMs: Int64 = 300_000
    public static let maxWaitMs: Int64 = 600_000

    public init(tag: String? = nil, passingOnly: Bool = false, datacenter: String? = nil, near: String? = nil, waitMs: Int64 = ConsulQuery.defaultWaitMs) {
        self.tag = tag
        self.passingOnly = passingOnly
        self.datacenter = datacenter
        self.near = near
        self.waitMs = waitMs
    }

    /// The query string of the health request (without `index` and `wait`), percent-encoded.
    public var parameters: [(String, String)] {
        var out: [(String, String)] = []
        if passingOnly { out.append(("passing", "true")) }
        if let tag { out.append(("tag", tag)) }
        if let datacenter { out.append(("dc", datacenter)) }
        if let near { out.append(("near", near)) }
        return out
    }
}

extension Target {
    static let consulHint = "write consul:///service or consul://host:8500/service[?tag=T&passing=true&dc=DC&near=NODE&wait=5m]"

    /// `consul://[HOST:PORT]/SERVICE[?query]`. A token in the query is refused: a target is shown
    /// and recorded, a token never is.
    static func parseConsul(_ rest: String, whole: String) throws(TargetError) -> Target {
        guard rest.hasPrefix("//") else { throw TargetError("target '\(whole)': \(consulHint)") }
        let after = rest.dropFirst(2)
        guard let slash = after.firstIndex(of: "/") else { throw TargetError("target '\(whole)' has no service: \(consulHint)") }
        let authority = String(after[..<slash])
        var path = String(after[after.index(after: slash)...])
        var queryText: String?
        if let q = path.firstIndex(of: "?") {
            queryText = String(path[path.index(after: q)...])
            path = String(path[..<q])
        }
        var agent: HostPort?
        if !authority.isEmpty {
            if authority.contains("@") {
                throw TargetError("target '\(whole)': credentials in the target are not supported: give the token with $CONSUL_HTTP_TOKEN or --consul-token-file")
            }
            agent = try splitHostPort(authority, whole: whole, bareIPv6: false, defaultPort: 8500)
            guard let agent, !agent.host.isEmpty else { throw TargetError("target '\(whole)' has an empty agent host: \(consulHint)") }
            if !IPAddressText.isIPv4(agent.host) && !IPAddressText.isIPv6(agent.host) { try validateHostName(agent.host, whole: whole) }
        }
        let service = path.removingPercentEncoding ?? path
        guard !service.isEmpty else { throw TargetError("target '\(whole)' has no service: \(consulHint)") }
        guard isConsulName(service) else {
            throw TargetError("'\(service)' in target '\(whole)' is not a Consul service name (letters, digits, '-', '_' and '.', at most 255)")
        }
        var query = ConsulQuery()
        var seen: Set<String> = []
        for pair in (queryText ?? "").split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).lowercased()
            let raw = parts.count > 1 ? String(parts[1]) : ""
            let value = raw.removingPercentEncoding ?? raw
            guard seen.insert(key).inserted else { throw TargetError("target '\(whole)' gives '\(key)' twice") }
            switch key {
            case "tag":
                guard !value.isEmpty, value.count <= 255, value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                    throw TargetError("target '\(whole)': tag '\(value)' must be 1-255 printable characters")
                }
                query.tag = value
            case "passing", "healthy":
                switch value.lowercased() {
                case "", "true", "1": query.passingOnly = true
                case "false", "0": query.passingOnly = false
                default: throw TargetError("target '\(whole)': \(key)=\(value) must be true or false")
                }
            case "dc":
                guard isConsulName(value) else { throw TargetError("target '\(whole)': dc '\(value)' is not a datacenter name") }
                query.datacenter = value
            case "near":
                guard isConsulName(value) else { throw TargetError("target '\(whole)': near '\(value)' is not a node name (or _agent)") }
                query.near = value
            case "wait":
                guard case .success(let ms) = DurationText.parse(value) else {
                    throw TargetError("target '\(whole)': wait '\(value)' is not a duration (write 30s or 5m)")
                }
                guard (1000...ConsulQuery.maxWaitMs).contains(ms) else {
                    throw TargetError("target '\(whole)': wait \(value) is out of range (1s to 10m, Consul's limit)")
                }
                query.waitMs = ms
            case "token":
                // Not even this message repeats it.
                throw TargetError("consul target for '\(service)': a token in the target (token=…) would be shown and recorded: give it with $CONSUL_HTTP_TOKEN or --consul-token-file")
            default:
                throw TargetError("target '\(whole)': unknown parameter '\(key)' (use tag, passing, dc, near or wait)")
            }
        }
        return .consul(agent: agent, service: service, query: query)
    }

    /// Service, datacenter and node names as Consul's DNS interface can carry them (and a bit more).
    static func isConsulName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 255 && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}
