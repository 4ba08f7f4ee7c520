import Foundation

/// One address a subchannel can connect to.
public enum EndpointAddress: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    case tcp(host: String, port: Int)
    case unix(path: String)

    public var description: String {
        switch self {
        case .tcp(let host, let port): HostPort(host: host, port: port).description
        case .unix(let path): "unix:\(path)"
        }
    }

    public static func < (a: EndpointAddress, b: EndpointAddress) -> Bool { a.description < b.description }
}

/// What a resolver found: one backend (a pod), its addresses and what the registry says of it.
///
/// Conditions follow Kubernetes EndpointSlice semantics: only `ready` endpoints get traffic;
/// `serving && terminating` is *draining* (finishing in-flight work); anything else is not ready.
public struct Endpoint: Hashable, Sendable, Codable {
    public var addresses: [EndpointAddress]
    public var pod: String?
    public var node: String?
    public var zone: String?
    public var hostname: String?
    public var ready: Bool
    public var serving: Bool
    public var terminating: Bool
    /// Anything else the resolver knows (`revision`, `lease`, `ttl`, `format`, …), shown in details.
    public var metadata: [String: String]

    public init(
        addresses: [EndpointAddress], pod: String? = nil, node: String? = nil, zone: String? = nil,
        hostname: String? = nil, ready: Bool = true, serving: Bool? = nil, terminating: Bool = false,
        metadata: [String: String] = [:]
    ) {
        self.addresses = addresses
        self.pod = pod
        self.node = node
        self.zone = zone
        self.hostname = hostname
        self.ready = ready
        self.serving = serving ?? ready
        self.terminating = terminating
        self.metadata = metadata
    }

    /// Order-independent identity of the endpoint: its sorted addresses (as grpc-swift's
    /// round_robin keys endpoints). Metadata changes do not change the key.
    public var key: EndpointKey { EndpointKey(addresses) }

    /// The name shown for the endpoint: the pod when known, else its first address.
    public var displayName: String { pod ?? addresses.first?.description ?? "?" }

    public var condition: EndpointCondition {
        if ready { return .ready }
        if serving && terminating { return .draining }
        return .notReady
    }

    /// The revision a pod belongs to: explicit metadata, else the pod-template-hash part of a
    /// Deployment pod name (`name-<hash>-<suffix>`).
    public var revision: String? {
        if let r = metadata["revision"] { return r }
        return pod.flatMap(Self.revision(ofPod:))
    }

    /// The pod-template-hash of a Deployment pod name (`name-<hash>-<suffix>`), if it has one.
    public static func revision(ofPod pod: String) -> String? {
        let parts = pod.split(separator: "-")
        guard parts.count >= 3 else { return nil }
        let hash = parts[parts.count - 2]
        guard hash.count >= 5, hash.count <= 10, hash.allSatisfy({ $0.isLetter || $0.isNumber }) else { return nil }
        return String(hash)
    }
}

public enum EndpointCondition: String, Sendable, Codable {
    case ready
    case draining
    case notReady = "not-ready"
}

public struct EndpointKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var addresses: [EndpointAddress]
    public init(_ addresses: [EndpointAddress]) { self.addresses = addresses.sorted() }
    public var description: String { addresses.map(\.description).joined(separator: ",") }
    public static func < (a: EndpointKey, b: EndpointKey) -> Bool { a.description < b.description }
}
