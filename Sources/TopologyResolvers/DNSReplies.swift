import CAres
import TopologyCore
#if canImport(Glibc)
import Glibc
#endif

public struct DNSAnswer: Sendable, Equatable {
    public struct Address: Sendable, Equatable {
        public var ip: String
        public var ttl: Int
    }
    /// One SRV record.
    public struct Service: Sendable, Equatable {
        public var target: String
        public var port: Int
        public var priority: Int
        public var weight: Int
    }
    public var addresses: [Address] = []
}

/// Why a lookup failed, worded for the header and the event log.
public struct DNSError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case nxdomain, noData, servfail, refused, timeout, unreachable, badName, other
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }
}

/// DNS answers as the server sent them (the bytes c-ares hands over), read with c-ares' own
/// `ares_parse_*_reply`, into addresses and SRV records; and those turned into endpoints. No
/// I/O, so the whole path from a server's bytes to the model is fuzzed (scripts/fuzz).
/// A c-ares status code (ARES_ENODATA, ARES_EBADRESP, …).
public struct AresStatus: Error, Sendable { public var code: Int32 }

public enum DNSReplies {
    public static func parseA(_ bytes: [UInt8]) -> [DNSAnswer.Address] {
        parse(bytes, ares_parse_a_reply) { e in (ip: ntop(AF_INET, e.ipaddr, Int(INET_ADDRSTRLEN)), ttl: e.ttl) }
    }

    public static func parseAAAA(_ bytes: [UInt8]) -> [DNSAnswer.Address] {
        parse(bytes, ares_parse_aaaa_reply) { e in (ip: ntop(AF_INET6, e.ip6addr, Int(INET6_ADDRSTRLEN)), ttl: e.ttl) }
    }

    /// Runs one of c-ares' `ares_parse_*_reply` functions with room for 4,096 records.
    private static func parse<Entry>(
        _ bytes: [UInt8],
        _ parser: (UnsafePointer<UInt8>?, Int32, UnsafeMutablePointer<UnsafeMutablePointer<hostent>?>?, UnsafeMutablePointer<Entry>?, UnsafeMutablePointer<Int32>?) -> Int32,
        _ address: (Entry) -> (ip: String, ttl: Int32)
    ) -> [DNSAnswer.Address] {
        let capacity = 4096
        let entries = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        defer { entries.deallocate() }
        var n = Int32(capacity)
        let rc = bytes.withUnsafeBufferPointer { parser($0.baseAddress, Int32($0.count), nil, entries, &n) }
        guard rc == ARES_SUCCESS else { return [] }
        return (0..<Int(n)).map { i in
            let a = address(entries[i])
            return .init(ip: a.ip, ttl: Int(a.ttl))
        }
    }

    private static func ntop<Addr>(_ family: Int32, _ addr: Addr, _ length: Int) -> String {
        var addr = addr
        var buf = [CChar](repeating: 0, count: length)
        inet_ntop(family, &addr, &buf, socklen_t(length))
        return String(cString: buf)
    }

    /// SRV records, or c-ares' status when the answer does not parse. Ports come from the
    /// record (0–65535 by the wire format); a target name is at most 255 bytes.
    public static func parseSRV(_ bytes: [UInt8]) -> Result<[DNSAnswer.Service], AresStatus> {
        var reply: UnsafeMutablePointer<ares_srv_reply>?
        let rc = bytes.withUnsafeBufferPointer { ares_parse_srv_reply($0.baseAddress, Int32($0.count), &reply) }
        guard rc == ARES_SUCCESS else { return .failure(AresStatus(code: rc)) }
        defer { if let reply { ares_free_data(reply) } }
        var out: [DNSAnswer.Service] = []
        var p = reply
        while let r = p, out.count < 4096 {
            out.append(.init(target: String(cString: r.pointee.host), port: Int(r.pointee.port), priority: Int(r.pointee.priority),
                             weight: Int(r.pointee.weight)))
            p = r.pointee.next
        }
        return .success(out)
    }
}
