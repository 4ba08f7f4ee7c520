import CAres
import Foundation
import TopologyCore

/// One address answer (A and AAAA records with their TTLs); `services` gives SRV records.
/// Synchronous lookups through c-ares (the resolver gRPC C-core uses), one at a time: the
/// caller's thread drives the sockets with `ares_getsock` + `poll` + `ares_process_fd`.
/// Not thread-safe: the DNS resolver calls it from its own serial queue.
public final class DNSLookup {
    private var channel: ares_channel?
    public let server: String?
    public let timeoutMs: Int

    private static let initialized: Bool = {
        ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS
    }()

    /// `server`: "host:port" (IPv6 as "[::1]:53"); nil uses the system's resolv.conf servers.
    public init(server: String?, timeoutMs: Int = 10_000) throws(DNSError) {
        self.server = server
        self.timeoutMs = timeoutMs
        guard Self.initialized else { throw DNSError(kind: .other, message: "c-ares did not initialize") }
        var opts = ares_options()
        // Two tries of at most half the budget each (c-ares doubles a retry's timeout); the
        // overall deadline is enforced below as well.
        opts.timeout = Int32(max(100, timeoutMs / 3))
        opts.tries = 2
        var ch: ares_channel?
        let rc = ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        guard rc == ARES_SUCCESS, let ch else {
            throw DNSError(kind: .other, message: "c-ares: \(String(cString: ares_strerror(rc)))")
        }
        channel = ch
        if let server {
            let rc = ares_set_servers_ports_csv(ch, server)
            guard rc == ARES_SUCCESS else {
                throw DNSError(kind: .badName, message: "DNS server '\(server)' is not an IP address with an optional port (\(String(cString: ares_strerror(rc))))")
            }
        }
    }

    deinit {
        if let channel { ares_destroy(channel) }
    }

    /// A and AAAA for `name` (search domains apply, as for any getaddrinfo).
    public func addresses(_ name: String) throws(DNSError) -> DNSAnswer {
        let a = Query(type: Int32(ns_t_a.rawValue))
        let aaaa = Query(type: Int32(ns_t_aaaa.rawValue))
        run([a, aaaa], name: name, search: true)
        var answer = DNSAnswer()
        var errors: [DNSError] = []
        for q in [a, aaaa] {
            if q.status != ARES_SUCCESS {
                errors.append(Self.error(q.status, name: name, timeoutMs: timeoutMs))
                continue
            }
            answer.addresses += q.type == Int32(ns_t_a.rawValue) ? DNSReplies.parseA(q.bytes) : DNSReplies.parseAAAA(q.bytes)
        }
        if !answer.addresses.isEmpty { return answer }
        // No address at all: the most telling error (NXDOMAIN over "no data", etc.).
        let order: [DNSError.Kind] = [.nxdomain, .timeout, .unreachable, .servfail, .refused, .badName, .other, .noData]
        if let e = order.lazy.compactMap({ k in errors.first { $0.kind == k } }).first { throw e }
        throw DNSError(kind: .noData, message: "empty answer for \(name): no A or AAAA records (gRPC treats it like NXDOMAIN)")
    }

    /// SRV records for `name` (a `_service._proto.` name).
    public func services(_ name: String) throws(DNSError) -> [DNSAnswer.Service] {
        let q = Query(type: Int32(ns_t_srv.rawValue))
        run([q], name: name, search: false)
        guard q.status == ARES_SUCCESS else { throw Self.error(q.status, name: name, timeoutMs: timeoutMs) }
        let out: [DNSAnswer.Service]
        switch DNSReplies.parseSRV(q.bytes) {
        case .success(let records): out = records
        case .failure(let rc): throw Self.error(rc.code, name: name, timeoutMs: timeoutMs)
        }
        if out.isEmpty { throw DNSError(kind: .noData, message: "empty answer for \(name): no SRV records") }
        return out
    }

    // MARK: - c-ares plumbing

    private final class Query {
        let type: Int32
        var done = false
        var status: Int32 = ARES_ETIMEOUT
        var bytes: [UInt8] = []
        init(type: Int32) { self.type = type }
    }

    private func run(_ queries: [Query], name: String, search: Bool) {
        guard let channel else { return }
        let callback: ares_callback = { arg, status, _, abuf, alen in
            guard let arg else { return }
            let q = Unmanaged<Query>.fromOpaque(arg).takeRetainedValue()
            q.status = status
            if status == ARES_SUCCESS, let abuf, alen > 0 { q.bytes = Array(UnsafeBufferPointer(start: abuf, count: Int(alen))) }
            q.done = true
        }
        for q in queries {
            let arg = Unmanaged.passRetained(q).toOpaque()
            if search {
                ares_search(channel, name, Int32(ns_c_in.rawValue), q.type, callback, arg)
            } else {
                ares_query(channel, name, Int32(ns_c_in.rawValue), q.type, callback, arg)
            }
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMs) * 1_000_000
        let maxSocks = Int(ARES_GETSOCK_MAXNUM)
        while !queries.allSatisfy(\.done) {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline {
                ares_cancel(channel)  // callbacks run with ARES_ECANCELLED
                for q in queries where q.status == ARES_ECANCELLED { q.status = ARES_ETIMEOUT }
                break
            }
            var socks = [ares_socket_t](repeating: -1, count: maxSocks)
            let mask = ares_getsock(channel, &socks, Int32(maxSocks))
            var fds: [pollfd] = []
            for i in 0..<maxSocks {
                let r = mask & (1 << i) != 0
                let w = mask & (1 << (i + maxSocks)) != 0
                if r || w { fds.append(pollfd(fd: socks[i], events: Int16((r ? POLLIN : 0) | (w ? POLLOUT : 0)), revents: 0)) }
            }
            var tv = timeval()
            var waitMs = Int((deadline - now) / 1_000_000)
            if let t = ares_timeout(channel, nil, &tv) {
                waitMs = min(waitMs, Int(t.pointee.tv_sec) * 1000 + Int(t.pointee.tv_usec) / 1000)
            }
            let n = poll(&fds, nfds_t(fds.count), Int32(max(1, min(waitMs, 1000))))
            if n > 0 {
                for f in fds where f.revents != 0 {
                    let readable = f.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0
                    let writable = f.revents & Int16(POLLOUT) != 0
                    ares_process_fd(channel, readable ? f.fd : ARES_SOCKET_BAD, writable ? f.fd : ARES_SOCKET_BAD)
                }
            } else {
                ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)  // timeouts, retries
            }
        }
    }

    static func error(_ status: Int32, name: String, timeoutMs: Int) -> DNSError {
        switch status {
        case ARES_ENOTFOUND: DNSError(kind: .nxdomain, message: "NXDOMAIN: \(name) does not exist")
        case ARES_ENODATA: DNSError(kind: .noData, message: "empty answer for \(name) (gRPC treats it like NXDOMAIN)")
        case ARES_ESERVFAIL: DNSError(kind: .servfail, message: "SERVFAIL from the DNS server for \(name)")
        case ARES_EREFUSED: DNSError(kind: .refused, message: "the DNS server refused the query for \(name)")
        case ARES_ETIMEOUT, ARES_ECANCELLED: DNSError(kind: .timeout, message: "DNS lookup of \(name) timed out after \(formatDuration(Int64(timeoutMs)))")
        case ARES_ECONNREFUSED: DNSError(kind: .unreachable, message: "DNS server unreachable (connection refused) for \(name)")
        case ARES_EBADNAME: DNSError(kind: .badName, message: "'\(name)' is not a valid DNS name")
        default: DNSError(kind: .other, message: "DNS lookup of \(name) failed: \(String(cString: ares_strerror(status)))")
        }
    }
}
