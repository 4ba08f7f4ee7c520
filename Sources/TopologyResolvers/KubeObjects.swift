import Foundation
import TopologyCore

// The Kubernetes API objects the resolver reads, decoded with the API's own field names
// (discovery.k8s.io/v1 EndpointSlice, core/v1 Endpoints, meta/v1 Status and WatchEvent), and
// the pure logic that turns the slices of one Service into endpoints. No I/O here.

public struct KubeObjectMeta: Codable, Sendable, Equatable {
    public var name: String?
    public var namespace: String?
    public var resourceVersion: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
}

public struct KubeListMeta: Codable, Sendable, Equatable {
    public var resourceVersion: String?
    /// Set when the list is paginated (`limit`): pass it back as `continue`.
    public var `continue`: String?
}

public struct KubeObjectReference: Codable, Sendable, Equatable {
    public var kind: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
}

/// discovery.k8s.io/v1 EndpointSlice.
public struct EndpointSlice: Codable, Sendable, Equatable {
    public struct Conditions: Codable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }
    }

    public struct SliceEndpoint: Codable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var hostname: String?
        public var targetRef: KubeObjectReference?
        public var nodeName: String?
        public var zone: String?
    }

    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var port: Int?
        public var `protocol`: String?
        public var appProtocol: String?
    }

    public var metadata: KubeObjectMeta
    public var addressType: String?
    /// `null` in JSON when the slice has no endpoints (a Service scaled to zero).
    public var endpoints: [SliceEndpoint]?
    /// `null` means "all ports" (a Service without ports); an empty list means none.
    public var ports: [Port]?
}

public struct EndpointSliceList: Codable, Sendable {
    public var metadata: KubeListMeta
    public var items: [EndpointSlice]
}

/// core/v1 Endpoints: what clusters without discovery.k8s.io/v1 (before 1.21) have.
public struct CoreEndpoints: Codable, Sendable, Equatable {
    public struct Address: Codable, Sendable, Equatable {
        public var ip: String
        public var hostname: String?
        public var nodeName: String?
        public var targetRef: KubeObjectReference?
    }
    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var port: Int
    }
    public struct Subset: Codable, Sendable, Equatable {
        public var addresses: [Address]?
        public var notReadyAddresses: [Address]?
        public var ports: [Port]?
    }
    public var metadata: KubeObjectMeta
    public var subsets: [Subset]?

    /// The same content as slices (one per subset), so one code path handles both APIs.
    /// core/v1 has no serving/terminating: not-ready addresses are simply not ready.
    public var asSlices: [EndpointSlice] {
        (subsets ?? []).enumerated().map { i, subset in
            func convert(_ a: Address, ready: Bool) -> EndpointSlice.SliceEndpoint {
                .init(addresses: [a.ip], conditions: .init(ready: ready), hostname: a.hostname, targetRef: a.targetRef, nodeName: a.nodeName, zone: nil)
            }
            var meta = metadata
            meta.name = "\(metadata.name ?? "endpoints")#\(i)"
            return EndpointSlice(
                metadata: meta, addressType: nil,
                endpoints: (subset.addresses ?? []).map { convert($0, ready: true) } + (subset.notReadyAddresses ?? []).map { convert($0, ready: false) },
                ports: (subset.ports ?? []).map { .init(name: $0.name, port: $0.port, protocol: "TCP", appProtocol: nil) })
        }
    }
}

public struct CoreEndpointsList: Codable, Sendable {
    public var metadata: KubeListMeta
    public var items: [CoreEndpoints]
}

/// meta/v1 Status: the body of every API error and of a watch's ERROR event.
public struct KubeStatus: Codable, Sendable, Equatable, Error {
    public struct Details: Codable, Sendable, Equatable {
        public var name: String?
        public var group: String?
        public var kind: String?
    }
    public var kind: String?
    public var status: String?
    public var message: String?
    public var reason: String?
    public var details: Details?
    public var code: Int?
}

/// One line of a watch stream: `{"type": "ADDED", "object": {…}}`. The object is a slice (or
/// core Endpoints), or a Status for ERROR, or a bare metadata holder for BOOKMARK.
public struct KubeWatchEvent: Sendable {
    public enum Kind: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    public var type: Kind
    public var slices: [EndpointSlice]
    /// The object's own name (the key the resolver keeps it under).
    public var name: String?
    public var resourceVersion: String?
    public var status: KubeStatus?

    public struct DecodeError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Decodes one watch line of either API.
    public static func decode(_ line: Data, coreEndpoints: Bool) throws -> KubeWatchEvent {
        struct Envelope: Decodable { var type: String; var object: Meta }
        struct Meta: Decodable { var kind: String?; var metadata: KubeObjectMeta? }
        let decoder = JSONDecoder()
        let env: Envelope
        do { env = try decoder.decode(Envelope.self, from: line) } catch {
            throw DecodeError(description: "watch event is not JSON with type and object: \(String(decoding: line.prefix(120), as: UTF8.self))")
        }
        guard let type = Kind(rawValue: env.type) else { throw DecodeError(description: "unknown watch event type \(env.type)") }
        struct Wrapped<T: Decodable>: Decodable { var object: T }
        var event = KubeWatchEvent(type: type, slices: [], name: env.object.metadata?.name, resourceVersion: env.object.metadata?.resourceVersion, status: nil)
        switch type {
        case .error:
            event.status = try? decoder.decode(Wrapped<KubeStatus>.self, from: line).object
        case .bookmark:
            break
        case .added, .modified, .deleted:
            do {
                if coreEndpoints {
                    event.slices = try decoder.decode(Wrapped<CoreEndpoints>.self, from: line).object.asSlices
                } else {
                    event.slices = [try decoder.decode(Wrapped<EndpointSlice>.self, from: line).object]
                }
            } catch {
                throw DecodeError(description: "\(env.type) event: \(env.object.kind ?? "object") does not decode: \(error)")
            }
        }
        return event
    }
}

/// A Service's port as the target names it: a number (used as is) or a port name, looked up in
/// each slice's `ports[]` (pods behind one Service may use different target ports).
public enum KubePort: Sendable, Equatable, CustomStringConvertible {
    case number(Int)
    case name(String)

    public init(_ text: String) {
        if let n = Int(text), n > 0, n < 65536 { self = .number(n) } else { self = .name(text) }
    }

    public var description: String {
        switch self {
        case .number(let n): "\(n)"
        case .name(let s): s
        }
    }
}

/// Every EndpointSlice of one Service, kept by name; the endpoints are their deduplicated union
/// (never only the latest slice: a Service with more than 100 endpoints has several). Each slice
/// is converted once, when it arrives; a change to one slice re-merges, it does not re-convert.
public struct SliceSet: Sendable {
    public let port: KubePort
    private var converted: [String: Converted] = [:]

    struct Converted: Sendable {
        var entries: [(key: String, endpoint: Endpoint)]
        var hasEndpoints: Bool
        var hasPort: Bool
        var portNames: [String]
    }

    public init(port: KubePort, _ slices: [EndpointSlice] = []) {
        self.port = port
        for s in slices { put(s) }
    }

    public mutating func put(_ slice: EndpointSlice) {
        let name = slice.metadata.name ?? ""
        converted[name] = Self.convert(slice, name: name, port: port)
    }
    public mutating func remove(named name: String) { converted[name] = nil }
    /// core/v1 Endpoints become one pseudo-slice per subset, all named `NAME#i`: replaced together.
    public mutating func replaceAll(prefix: String, with new: [EndpointSlice]) {
        for key in converted.keys where key.hasPrefix(prefix + "#") { converted[key] = nil }
        for s in new { put(s) }
    }

    public var count: Int { converted.count }

    public struct Union: Sendable, Equatable {
        public var endpoints: [Endpoint]
        /// Set when slices have endpoints but none of them has the named port.
        public var portProblem: String?
    }

    /// The endpoints of one slice, with the API's nil semantics: `ready` nil = ready, `serving`
    /// nil = ready's value, `terminating` nil = false. Keyed by pod (else by first address).
    static func convert(_ slice: EndpointSlice, name: String, port: KubePort) -> Converted {
        var c = Converted(entries: [], hasEndpoints: false, hasPort: false, portNames: [])
        guard let eps = slice.endpoints, !eps.isEmpty else { return c }
        c.hasEndpoints = true
        let p: Int
        switch port {
        case .number(let n):
            p = n
        case .name(let wanted):
            for sp in slice.ports ?? [] { if let n = sp.name, !n.isEmpty { c.portNames.append("\(n)(\(sp.port.map(String.init) ?? "?"))") } }
            guard let match = (slice.ports ?? []).first(where: { $0.name == wanted }), let n = match.port else { return c }
            p = n
        }
        c.hasPort = true
        c.entries.reserveCapacity(eps.count)
        for e in eps {
            let ready = e.conditions?.ready ?? true
            let serving = e.conditions?.serving ?? ready
            let terminating = e.conditions?.terminating ?? false
            let addrs = e.addresses.map { EndpointAddress.tcp(host: $0, port: p) }
            guard !addrs.isEmpty else { continue }
            let pod = e.targetRef.flatMap { $0.kind == nil || $0.kind == "Pod" ? $0.name : nil }
            var meta: [String: String] = ["slice": name]
            if let t = e.targetRef, let kind = t.kind, kind != "Pod", let n = t.name { meta["targetRef"] = "\(kind)/\(n)" }
            if let type = slice.addressType { meta["addressType"] = type }
            let endpoint = Endpoint(addresses: addrs, pod: pod, node: e.nodeName, zone: e.zone, hostname: e.hostname,
                                    ready: ready, serving: serving, terminating: terminating, metadata: meta)
            c.entries.append((pod.map { "pod/\($0)" } ?? addrs[0].description, endpoint))
        }
        return c
    }

    /// Every slice's endpoints, in slice-name order, a pod in two slices merged into one.
    public func union() -> Union {
        var index: [String: Int] = [:]
        var out: [Endpoint] = []
        out.reserveCapacity(converted.values.reduce(0) { $0 + $1.entries.count })
        index.reserveCapacity(out.capacity)
        var portNames = Set<String>()
        var slicesWithEndpoints = 0
        var slicesWithPort = 0
        for name in converted.keys.sorted() {
            let c = converted[name]!
            if c.hasEndpoints { slicesWithEndpoints += 1 }
            if c.hasPort { slicesWithPort += 1 }
            portNames.formUnion(c.portNames)
            for (key, e) in c.entries {
                if let i = index[key] {
                    // The same pod in two slices (dual stack, or mid-rebalance): one endpoint
                    // with every address; ready if either copy says so.
                    var existing = out[i]
                    for a in e.addresses where !existing.addresses.contains(a) { existing.addresses.append(a) }
                    existing.ready = existing.ready || e.ready
                    existing.serving = existing.serving || e.serving
                    existing.terminating = existing.terminating && e.terminating
                    existing.metadata["slice"] = [existing.metadata["slice"], name].compactMap { $0 }.joined(separator: ",")
                    out[i] = existing
                } else {
                    index[key] = out.count
                    out.append(e)
                }
            }
        }
        var problem: String?
        if case .name(let wanted) = port, slicesWithEndpoints > 0, slicesWithPort == 0 {
            let known = portNames.sorted().joined(separator: ", ")
            problem = "no port named '\(wanted)' in the service's EndpointSlices" + (known.isEmpty ? " (they list no named ports): use the port number" : "; it has \(known)")
        }
        return Union(endpoints: out, portProblem: problem)
    }
}

/// Splits a watch response's body (newline-delimited JSON, in whatever chunks HTTP brings) into
/// lines, without copying what is left each time, and refuses a line longer than `maxLine` (an
/// EndpointSlice holds at most 1,000 endpoints: far below it) instead of buffering without end.
public struct WatchLineSplitter: Sendable {
    public static let maxLine = 16 << 20
    private var pending: [UInt8] = []

    public init() {}

    /// The complete, non-blank lines in `chunk` (with what came before it).
    public mutating func feed<C: Collection>(_ chunk: C) throws(KubeWatchEvent.DecodeError) -> [Data] where C.Element == UInt8 {
        pending.append(contentsOf: chunk)
        var lines: [Data] = []
        var start = 0
        while let nl = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = pending[start..<nl]
            if !line.allSatisfy({ $0 == 32 || $0 == 13 }) { lines.append(Data(line)) }
            start = nl + 1
        }
        if start > 0 { pending.removeFirst(start) }
        if pending.count > Self.maxLine {
            pending.removeAll()
            throw KubeWatchEvent.DecodeError(description: "a watch line longer than \(Self.maxLine >> 20) MiB")
        }
        return lines
    }

    /// What is left when the response ends, if it is a line.
    public func finish() -> Data? {
        pending.allSatisfy({ $0 == 32 || $0 == 13 }) ? nil : Data(pending)
    }
}
