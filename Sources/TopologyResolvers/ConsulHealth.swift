import Foundation
import TopologyCore

/// Consul's `GET /v1/health/service/:service` answer, as grpctop reads it (pure, fuzzed).
///
/// Each entry is an instance: its node, its service registration and its checks (the node's own
/// checks, e.g. `serfHealth`, included). An instance is *ready* when every check passes, or when
/// the worst is a warning and the target did not ask for `passing=true`; a critical check (or
/// maintenance) makes it not ready, and the failing check's name and output go in its details.
/// The address is `Service.Address`, falling back to `Node.Address`; kratos registers its gRPC
/// endpoint as the tagged address `grpc` (`grpc://host:port`), which wins when present; its
/// `version=V` tag (or `Meta.version`) becomes the revision.
public enum ConsulHealth {
    /// The aggregate of an instance's checks, worst first.
    public enum Status: String, Sendable, Comparable {
        case passing, warning, critical

        var rank: Int { self == .passing ? 0 : self == .warning ? 1 : 2 }
        public static func < (a: Status, b: Status) -> Bool { a.rank < b.rank }

        /// Consul's check statuses; maintenance is critical; anything unknown counts as critical.
        init(consul text: String) {
            switch text.lowercased() {
            case "passing": self = .passing
            case "warning": self = .warning
            default: self = .critical
            }
        }
    }

    public struct Decoded: Sendable, Equatable {
        public var endpoints: [Endpoint]
        /// Entries that could not be used, with why (`web-3: port 0`).
        public var skipped: [String]
        public var instances: Int
        public var passing = 0, warning = 0, critical = 0
    }

    public struct DecodeError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Decodes an answer; `passingOnly` is the target's `passing=true` (a warning then makes an
    /// instance not ready). A body that is not an array of entries throws; a bad entry is skipped.
    public static func decode(_ data: Data, passingOnly: Bool) throws(DecodeError) -> Decoded {
        guard data.count <= 64 << 20 else { throw DecodeError(description: "the answer is larger than 64 MiB") }
        let raw: [Lenient]
        do { raw = try JSONDecoder().decode([Lenient].self, from: data) } catch {
            throw DecodeError(description: "not a list of health entries (\(Self.short(error)))")
        }
        var out = Decoded(endpoints: [], skipped: [], instances: raw.count)
        var seen: Set<EndpointKey> = []
        for (i, item) in raw.enumerated() {
            guard let entry = item.entry else {
                out.skipped.append("entry \(i): \(item.problem ?? "not a health entry")")
                continue
            }
            switch endpoint(entry, passingOnly: passingOnly) {
            case .success(let (e, status)):
                // Two registrations of one address (re-registered under a new ID) are one endpoint.
                guard seen.insert(e.key).inserted else {
                    out.skipped.append("\(e.displayName): \(e.addresses.first?.description ?? "?") is registered twice")
                    continue
                }
                switch status {
                case .passing: out.passing += 1
                case .warning: out.warning += 1
                case .critical: out.critical += 1
                }
                out.endpoints.append(e)
            case .failure(let why):
                out.skipped.append("\(entry.Service.ID ?? entry.Service.Service ?? "entry \(i)"): \(why.description)")
            }
        }
        // Consul's order is kept: with `near=` it is by round-trip time, which pick_first follows.
        return out
    }

    /// The endpoint of one entry and its aggregate status.
    static func endpoint(_ entry: Entry, passingOnly: Bool) -> Result<(Endpoint, Status), DecodeError> {
        let s = entry.Service
        var host = clean(s.Address)
        if host.isEmpty { host = clean(entry.Node.Address) }
        var port = s.Port ?? 0
        var metadata: [String: String] = [:]
        // kratos: TaggedAddresses {"grpc": {"Address": "grpc://10.0.0.5:9000", "Port": 9000}}.
        if let grpc = s.TaggedAddresses?["grpc"], let a = grpc.Address {
            if let u = URLComponents(string: a), u.scheme != nil, let h = u.host, !h.isEmpty {
                host = h.hasPrefix("[") ? String(h.dropFirst().dropLast()) : h
                port = u.port ?? grpc.Port ?? port
            } else if !clean(a).isEmpty {
                host = clean(a)
                port = grpc.Port ?? port
            }
            metadata["address from"] = "TaggedAddresses.grpc"
        }
        guard !host.isEmpty else { return .failure(DecodeError(description: "no Service.Address and no Node.Address")) }
        guard IPAddressText.isIPv4(host) || IPAddressText.isIPv6(host) || Target.isHostName(host) else {
            return .failure(DecodeError(description: "address '\(host.prefix(80))' is not an IP address or host name"))
        }
        guard (1...65535).contains(port) else { return .failure(DecodeError(description: "port \(port) is out of range (1-65535)")) }

        var worst = Status.passing
        var failing: [String] = []
        var counts: [Status: Int] = [:]
        for c in entry.Checks ?? [] {
            let st = Status(consul: c.Status ?? "")
            counts[st, default: 0] += 1
            worst = max(worst, st)
            if st != .passing {
                let name = clean(c.Name).isEmpty ? clean(c.CheckID) : clean(c.Name)
                let output = clean(c.Output).isEmpty ? clean(c.Notes) : clean(c.Output)
                failing.append("\(st.rawValue) \(name.prefix(80))" + (output.isEmpty ? "" : ": \(output.prefix(200))"))
            }
        }
        let ready = worst == .passing || (worst == .warning && !passingOnly)
        metadata["checks"] = [Status.passing, .warning, .critical].compactMap { st in counts[st].map { "\($0) \(st.rawValue)" } }.joined(separator: ", ")
        if metadata["checks"]!.isEmpty { metadata["checks"] = "none" }
        metadata["health"] = worst.rawValue
        if !failing.isEmpty { metadata["failing"] = failing.prefix(4).joined(separator: "; ") }
        if let dc = entry.Node.Datacenter, !dc.isEmpty { metadata["datacenter"] = clean(dc) }
        if let tags = s.Tags, !tags.isEmpty { metadata["tags"] = tags.prefix(32).map { clean($0) }.joined(separator: ",") }
        for (k, v) in (s.Meta ?? [:]).sorted(by: { $0.key < $1.key }).prefix(32) { metadata["meta.\(clean(k).prefix(64))"] = String(clean(v).prefix(200)) }
        for (k, v) in (s.TaggedAddresses ?? [:]).sorted(by: { $0.key < $1.key }).prefix(8) {
            if let a = v.Address { metadata["tagged.\(clean(k).prefix(32))"] = "\(clean(a).prefix(100))" + (v.Port.map { ":\($0)" } ?? "") }
        }
        if let id = s.ID { metadata["service id"] = clean(id) }
        if let name = s.Service { metadata["service"] = clean(name) }
        if let r = revision(tags: s.Tags ?? [], meta: s.Meta ?? [:]) { metadata["revision"] = r }
        let zone = (s.Meta?["zone"] ?? entry.Node.Meta?["zone"]).map { clean($0) }.flatMap { $0.isEmpty ? nil : String($0.prefix(64)) }
        let pod = clean(s.ID ?? s.Service ?? "")
        let e = Endpoint(addresses: [.tcp(host: host, port: port)], pod: pod.isEmpty ? nil : String(pod.prefix(128)),
                         node: entry.Node.Node.map { String(clean($0).prefix(128)) }, zone: zone,
                         ready: ready, serving: worst != .critical, metadata: metadata)
        return .success((e, worst))
    }

    /// kratos' `version=V` tag, else `Meta.version`.
    static func revision(tags: [String], meta: [String: String]) -> String? {
        for t in tags where t.hasPrefix("version=") {
            let v = clean(String(t.dropFirst("version=".count)))
            if !v.isEmpty { return String(v.prefix(64)) }
        }
        if let v = meta["version"].map(clean), !v.isEmpty { return String(v.prefix(64)) }
        return nil
    }

    /// One line of printable text (a check's output is often several lines).
    static func clean(_ s: String?) -> String {
        guard let s else { return "" }
        // Fast path (nearly every string): printable ASCII, single spaces, none at either end.
        var plain = s.utf8.count <= 2048
        var prev: UInt8 = 0x20  // so that a leading space is not plain
        if plain {
            for b in s.utf8 {
                if b < 0x20 || b >= 0x7F || (b == 0x20 && prev == 0x20) {
                    plain = false
                    break
                }
                prev = b
            }
        }
        if s.isEmpty || (plain && prev != 0x20) { return s }
        var out = ""
        out.reserveCapacity(min(s.utf8.count, 512))
        var lastSpace = false
        for ch in s.unicodeScalars.prefix(2048) {
            let space = ch.properties.isWhitespace || ch.value < 0x20 || ch.value == 0x7F
            if space {
                if !lastSpace && !out.isEmpty { out.append(" ") }
                lastSpace = true
            } else {
                out.unicodeScalars.append(ch)
                lastSpace = false
            }
        }
        while out.hasSuffix(" ") { out.removeLast() }
        return out
    }

    static func short(_ error: Error) -> String {
        if let e = error as? DecodingError {
            switch e {
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .keyNotFound(_, let c), .dataCorrupted(let c):
                return String(c.debugDescription.prefix(120))
            @unknown default: break
            }
        }
        return String("\(error)".prefix(120))
    }

    // MARK: - the JSON

    struct Entry: Decodable {
        var Node: NodePart
        var Service: ServicePart
        var Checks: [Check]?
    }
    struct NodePart: Decodable {
        var Node: String?
        var Address: String?
        var Datacenter: String?
        var Meta: [String: String]?
    }
    struct TaggedAddress: Decodable {
        var Address: String?
        var Port: Int?
    }
    struct ServicePart: Decodable {
        var ID: String?
        var Service: String?
        var Tags: [String]?
        var Address: String?
        var Port: Int?
        var Meta: [String: String]?
        var TaggedAddresses: [String: TaggedAddress]?
    }
    struct Check: Decodable {
        var CheckID: String?
        var Name: String?
        var Status: String?
        var Output: String?
        var Notes: String?
    }

    /// One entry, or why it is not one: a bad entry does not spoil the answer.
    struct Lenient: Decodable {
        var entry: Entry?
        var problem: String?
        init(from decoder: Decoder) throws {
            do { entry = try Entry(from: decoder) } catch { problem = ConsulHealth.short(error) }
        }
    }
}

/// Consul's blocking-query index, kept as its documentation asks ("Implementation Details"):
/// an index that goes backwards resets to 0 (the next query does not block), an index is never
/// below 1 once a query has answered, and a query starts at most every `minSpacingMs`.
public struct ConsulBlockingIndex: Sendable, Equatable {
    public private(set) var index: UInt64 = 0
    public private(set) var resets = 0
    /// Queries start at least this far apart (a server that answers at once, every time, cannot
    /// make the loop spin).
    public var minSpacingMs: Int64 = 250

    public init() {}

    public enum Outcome: Sendable, Equatable {
        case first, advanced, unchanged
        /// The index went backwards (a restored snapshot, a new cluster): start over at 0.
        case reset(from: UInt64, to: UInt64)
    }

    /// Takes an answer's `X-Consul-Index` header (nil or garbage: treated as 0).
    public mutating func update(header: String?) -> Outcome {
        let new = header.flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) } ?? 0
        let old = index
        if old == 0 {
            index = max(new, 1)
            return .first
        }
        if new < old {
            index = 0
            resets += 1
            return .reset(from: old, to: new)
        }
        index = max(new, 1)
        return new == old ? .unchanged : .advanced
    }

    /// How long to wait before the next query, given when the last one started.
    public func delayBeforeNext(lastStartMs: Int64, nowMs: Int64) -> Int64 {
        max(0, min(minSpacingMs, lastStartMs + minSpacingMs - nowMs))
    }

    /// Forget the index (a relist): the next query answers at once.
    public mutating func restart() { index = 0 }
}
