import Foundation
import TopologyCore

/// The registration formats found under an etcd prefix, detected per key.
public enum EtcdValueFormat: String, Sendable, CaseIterable {
    /// etcd's own naming (`go.etcd.io/etcd/client/v3/naming/endpoints`):
    /// `{"Op":0,"Addr":"10.0.0.1:50051","Metadata":…}` under `PREFIX/…`.
    case etcd
    /// go-zero: a plain `host:port` under `PREFIX/<lease id in decimal>`.
    case gozero
    /// kratos: a `ServiceInstance` JSON with `"endpoints":["grpc://10.0.0.1:9000", …]`.
    case kratos
    /// A plain `host:port` under any other key.
    case plain
}

/// One key's value, understood: the endpoint it registers, or why it was skipped.
public enum EtcdRegistration: Sendable, Equatable {
    case endpoint(Endpoint, EtcdValueFormat)
    /// etcd naming's `Op: 1` (Delete): the key says the endpoint is gone.
    case deleted
    case skipped(reason: String)

    /// Reads the value of `key` (under `prefix`), whatever the format.
    public static func parse(key: String, value: [UInt8], prefix: String) -> EtcdRegistration {
        let text = String(decoding: value, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let suffix = key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/")) : key
        var meta = ["key": key]
        if text.hasPrefix("{") {
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
                return .skipped(reason: "not valid JSON")
            }
            if let addr = obj["Addr"] as? String {
                if let op = obj["Op"] as? Int, op == 1 { return .deleted }
                guard let hp = hostPort(addr) else { return .skipped(reason: "etcd naming Addr '\(addr)' is not host:port") }
                if let m = obj["Metadata"], !(m is NSNull) {
                    meta["metadata"] = String(decoding: (try? JSONSerialization.data(withJSONObject: m, options: [.sortedKeys, .fragmentsAllowed])) ?? Data(), as: UTF8.self)
                }
                return .endpoint(endpoint(hp, pod: nil, format: .etcd, meta), .etcd)
            }
            if let eps = obj["endpoints"] as? [String] {
                let grpc = eps.compactMap { e -> HostPort? in
                    guard e.hasPrefix("grpc://") else { return nil }
                    var rest = e.dropFirst("grpc://".count)
                    if let q = rest.firstIndex(where: { $0 == "?" || $0 == "/" }) { rest = rest[..<q] }
                    return hostPort(String(rest))
                }
                guard let first = grpc.first else {
                    return .skipped(reason: "kratos instance has no grpc:// endpoint (\(eps.joined(separator: ", ")))")
                }
                if let v = obj["version"] as? String, !v.isEmpty { meta["version"] = v }
                if let n = obj["name"] as? String, !n.isEmpty { meta["service"] = n }
                let id = (obj["id"] as? String).flatMap { $0.isEmpty ? nil : $0 }
                return .endpoint(endpoint(first, pod: id, format: .kratos, meta), .kratos)
            }
            return .skipped(reason: "JSON with neither \"Addr\" (etcd naming) nor \"endpoints\" (kratos)")
        }
        guard !text.isEmpty else { return .skipped(reason: "empty value") }
        guard let hp = hostPort(text) else {
            return .skipped(reason: "'\(text.prefix(60))' is not host:port, etcd naming JSON or a kratos instance")
        }
        if !suffix.isEmpty, suffix.allSatisfy(\.isNumber), let lease = Int64(suffix) {
            meta["lease"] = String(lease, radix: 16)
            return .endpoint(endpoint(hp, pod: nil, format: .gozero, meta), .gozero)
        }
        return .endpoint(endpoint(hp, pod: nil, format: .plain, meta), .plain)
    }

    private static func endpoint(_ hp: HostPort, pod: String?, format: EtcdValueFormat, _ meta: [String: String]) -> Endpoint {
        var m = meta
        m["format"] = format.rawValue
        return Endpoint(addresses: [.tcp(host: hp.host, port: hp.port)], pod: pod, metadata: m)
    }

    /// `10.0.0.1:50051`, `[::1]:50051`, `host:port`; nil without a valid port.
    static func hostPort(_ text: String) -> HostPort? {
        guard let hp = try? Target.splitHostPort(text, whole: text, bareIPv6: false, defaultPort: -1),
              hp.port > 0, hp.port <= 65535, !hp.host.isEmpty, !hp.host.contains(where: { $0.isWhitespace || $0 == "/" })
        else { return nil }
        return hp
    }
}
