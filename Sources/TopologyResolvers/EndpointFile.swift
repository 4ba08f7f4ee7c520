import TopologyCore

/// The `file:` target's format: one endpoint a line, `host:port` (or `[v6]:port`, or
/// `unix:/path`) followed by optional `key=value` metadata; `#` starts a comment.
///
/// ```
/// 127.0.0.1:50051 pod=demo-7d9f8c6b5-x2k4q zone=a node=n1
/// 127.0.0.1:50052 pod=demo-7d9f8c6b5-b8h2m zone=b ready=false serving=true terminating=true
/// ```
/// Known keys: `pod`, `node`, `zone`, `hostname`, `ready`, `serving`, `terminating`; any other
/// key goes to the endpoint's metadata (e.g. `revision=v2`).
public enum EndpointFile {
    public struct LineError: Error, Equatable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses the whole text. Bad lines are reported and skipped; the rest is used.
    /// Host names are passed to `lookup` (which returns IPs, or nil when the name is unknown).
    public static func parse(_ text: String, lookup: (String) -> [String]? = { _ in nil })
        -> (endpoints: [Endpoint], errors: [LineError])
    {
        var endpoints: [Endpoint] = []
        var errors: [LineError] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let first = words.first else { continue }
            do {
                let addresses = try parseAddress(String(first), lookup: lookup)
                var e = Endpoint(addresses: addresses)
                var servingSet = false
                for w in words.dropFirst() {
                    guard let eq = w.firstIndex(of: "="), eq != w.startIndex else {
                        throw LineError(line: i + 1, message: "'\(w)' is not key=value")
                    }
                    let key = String(w[..<eq]).lowercased()
                    let value = String(w[w.index(after: eq)...])
                    switch key {
                    case "pod": e.pod = value
                    case "node": e.node = value
                    case "zone": e.zone = value
                    case "hostname": e.hostname = value
                    case "ready": e.ready = try bool(value, key: key, line: i + 1)
                    case "serving": e.serving = try bool(value, key: key, line: i + 1); servingSet = true
                    case "terminating": e.terminating = try bool(value, key: key, line: i + 1)
                    default: e.metadata[key] = value
                    }
                }
                if !servingSet { e.serving = e.ready }
                endpoints.append(e)
            } catch let error as LineError {
                errors.append(LineError(line: i + 1, message: error.message))
            } catch {
                errors.append(LineError(line: i + 1, message: "\(error)"))
            }
        }
        return (endpoints, errors)
    }

    static func bool(_ v: String, key: String, line: Int) throws -> Bool {
        switch v.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw LineError(line: line, message: "\(key)=\(v): expected true or false")
        }
    }

    static func parseAddress(_ text: String, lookup: (String) -> [String]?) throws -> [EndpointAddress] {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw LineError(line: 0, message: "'\(text)' has no socket path") }
            return [.unix(path: path)]
        }
        let hp: HostPort
        do {
            hp = try Target.splitHostPort(text, whole: text, bareIPv6: false, defaultPort: -1)
        } catch {
            throw LineError(line: 0, message: error.message)
        }
        guard hp.port > 0 else { throw LineError(line: 0, message: "'\(text)' has no port (write host:port)") }
        if IPAddressText.isIPv4(hp.host) || IPAddressText.isIPv6(hp.host) {
            return [.tcp(host: hp.host, port: hp.port)]
        }
        guard let ips = lookup(hp.host), !ips.isEmpty else {
            throw LineError(line: 0, message: "host '\(hp.host)' does not resolve")
        }
        return ips.map { .tcp(host: $0, port: hp.port) }
    }
}
