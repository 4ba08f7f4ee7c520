import Foundation
import GRPCWire
import NIOCore
import NIOSSL
import TopologyCore

/// Reads another process's channelz (gRFC A14, `grpc.channelz.v1.Channelz`): its top channels,
/// their child channels and subchannels with their sockets, and its servers with their client
/// sockets — everything `grpctop attach` shows, one poll at a time. Lists are paged as the
/// service pages them (`start_*_id` after the last id seen, until `end`), bounded so a process
/// with a runaway registry cannot grow grpctop without limit.
public final class ChannelzClient: @unchecked Sendable {
    public let address: EndpointAddress
    private let tls: NIOSSLContext?
    private let serverName: String?
    private let timeoutMs: Int64
    private var connection: GRPCConnection?
    private let lock = NSLock()

    /// Results per page asked for, and the most entities of one kind read in one poll.
    public static let pageSize: Int64 = 100
    public static let maxEntities = 10_000
    /// Client sockets read in detail per server, and in all, per poll (each is one GetSocket
    /// call; a poll must stay cheap for the process too).
    public static let maxSocketsPerServer = 200
    public static let maxSocketsPerPoll = 500

    public init(address: EndpointAddress, tls: NIOSSLContext? = nil, serverName: String? = nil, timeoutMs: Int64 = 5_000) {
        self.address = address
        self.tls = tls
        self.serverName = serverName
        self.timeoutMs = timeoutMs
    }

    public func close() {
        lock.withLock { connection }?.close()
        lock.withLock { connection = nil }
    }

    // MARK: - the service's methods

    /// Every top channel, page after page.
    public func topChannels() async throws -> [Channelz.Channel] {
        try await paged("top channels", { start in
            var r = Channelz.GetTopChannelsRequest()
            r.startChannelId = start
            r.maxResults = Self.pageSize
            let resp = try Channelz.GetTopChannelsResponse(serialized: try await self.call("GetTopChannels", r.serialized()))
            return (resp.channel, resp.end)
        }, id: { $0.ref?.channelId ?? 0 })
    }

    /// Every server, page after page.
    public func servers() async throws -> [Channelz.Server] {
        try await paged("servers", { start in
            var r = Channelz.GetServersRequest()
            r.startServerId = start
            r.maxResults = Self.pageSize
            let resp = try Channelz.GetServersResponse(serialized: try await self.call("GetServers", r.serialized()))
            return (resp.server, resp.end)
        }, id: { $0.ref?.serverId ?? 0 })
    }

    /// A server's client sockets, page after page.
    public func serverSockets(_ serverID: Int64) async throws -> [Channelz.SocketRef] {
        try await paged("server sockets", { start in
            var r = Channelz.GetServerSocketsRequest()
            r.serverId = serverID
            r.startSocketId = start
            r.maxResults = Self.pageSize
            let resp = try Channelz.GetServerSocketsResponse(serialized: try await self.call("GetServerSockets", r.serialized()))
            return (resp.socketRef, resp.end)
        }, id: { $0.socketId })
    }

    public func channel(_ id: Int64) async throws -> Channelz.Channel? {
        var r = Channelz.GetChannelRequest()
        r.channelId = id
        return try Channelz.GetChannelResponse(serialized: try await call("GetChannel", r.serialized())).channel
    }

    public func subchannel(_ id: Int64) async throws -> Channelz.Subchannel? {
        var r = Channelz.GetSubchannelRequest()
        r.subchannelId = id
        return try Channelz.GetSubchannelResponse(serialized: try await call("GetSubchannel", r.serialized())).subchannel
    }

    public func socket(_ id: Int64) async throws -> Channelz.Socket? {
        var r = Channelz.GetSocketRequest()
        r.socketId = id
        return try Channelz.GetSocketResponse(serialized: try await call("GetSocket", r.serialized())).socket
    }

    // MARK: - plumbing

    /// Pages of a list: each page starts after the largest id seen; ids must grow (a server
    /// that repeats a page would loop), and the total is bounded.
    private func paged<T>(_ what: String, _ page: (Int64) async throws -> ([T], Bool), id: (T) -> Int64) async throws -> [T] {
        var all: [T] = []
        var start: Int64 = 0
        while true {
            let (items, end) = try await page(start)
            all += items
            if end || items.isEmpty { return all }
            let last = items.map(id).max() ?? start
            guard last >= start, last < Int64.max else {
                throw ChannelzError.badPaging("the \(what) page after id \(start) went back to id \(last)")
            }
            guard all.count < Self.maxEntities else {
                throw ChannelzError.badPaging("more than \(Self.maxEntities) \(what): stopped reading")
            }
            start = last + 1
        }
    }

    /// One unary call; connects (again) as needed. UNIMPLEMENTED means no channelz service.
    func call(_ method: String, _ request: [UInt8]) async throws -> [UInt8] {
        let conn: GRPCConnection
        if let c = lock.withLock({ connection }), c.isActive {
            conn = c
        } else {
            do {
                conn = try await GRPCConnection.connect(to: address, tls: tls, serverName: serverName, timeoutMs: timeoutMs)
            } catch {
                throw ChannelzError.unreachable("\(address): \(error)")
            }
            lock.withLock { connection = conn }
        }
        do {
            return try await conn.unary(path: "/grpc.channelz.v1.Channelz/\(method)", request: request, timeoutMs: timeoutMs)
        } catch let s as GRPCStatus where s.code == 12 {
            throw ChannelzError.notEnabled(address.description)
        }
    }
}

public enum ChannelzError: Error, CustomStringConvertible, Equatable {
    case notEnabled(String)
    case unreachable(String)
    case badPaging(String)

    public var description: String {
        switch self {
        case .notEnabled(let a):
            return "\(a) has no channelz service (UNIMPLEMENTED): register it in the process — grpc-go: "
                + "service.RegisterChannelzServiceToServer(s); grpc-java: ChannelzService.newInstance(100); "
                + "C++: grpc::channelz::experimental::InitChannelzService(); Python: grpc_channelz.v1.channelz.add_channelz_servicer(server)"
        case .unreachable(let why): return "channelz at \(why)"
        case .badPaging(let why): return "channelz: \(why)"
        }
    }
}

extension ChannelzClient {
    /// One poll: the top channels, and for the chosen channel (`channelID`, or
    /// `ChannelzObserver.defaultChannel`) its subchannels — and its child channels' (depth ≤ 4)
    /// — each with its socket. The chosen channel is returned with the poll.
    public func poll(channelID: Int64?) async throws -> (poll: ChannelzPoll, channel: Channelz.Channel?) {
        var poll = ChannelzPoll()
        poll.channels = try await topChannels()
        let chosen = channelID.flatMap { id in poll.channels.first { $0.ref?.channelId == id } }
            ?? (channelID == nil ? ChannelzObserver.defaultChannel(poll.channels) : nil)
        guard let chosen else { return (poll, nil) }
        var subchannelIDs: [Int64] = chosen.subchannelRef.map(\.subchannelId)
        var children = chosen.channelRef.map { (id: $0.channelId, parent: chosen.ref?.channelId ?? 0) }
        var depth = 0
        while !children.isEmpty && depth < 4 && subchannelIDs.count < Self.maxEntities {
            var next: [(id: Int64, parent: Int64)] = []
            for c in children.prefix(Self.maxEntities) {
                guard let child = try await channel(c.id) else { continue }
                poll.children.append((child, c.parent))
                subchannelIDs += child.subchannelRef.map(\.subchannelId)
                next += child.channelRef.map { (id: $0.channelId, parent: c.id) }
            }
            children = next
            depth += 1
        }
        for id in subchannelIDs.prefix(Self.maxEntities) {
            guard let sc = try await subchannel(id) else { continue }
            poll.subchannels[id] = sc
            if let socketID = sc.socketRef.map(\.socketId).max(), let socket = try await socket(socketID) {
                poll.sockets[id] = socket
            }
        }
        // Servers and who is connected to them.
        poll.servers = try await servers()
        var budget = Self.maxSocketsPerPoll
        for server in poll.servers.prefix(100) {
            guard let id = server.ref?.serverId else { continue }
            let refs = try await serverSockets(id)
            poll.serverSocketCounts[id] = refs.count
            var sockets: [Channelz.Socket] = []
            for ref in refs.sorted(by: { $0.socketId < $1.socketId }).prefix(min(budget, Self.maxSocketsPerServer)) {
                if let s = try await socket(ref.socketId) { sockets.append(s) }
            }
            budget -= sockets.count
            poll.serverSockets[id] = sockets
        }
        return (poll, chosen)
    }
}
