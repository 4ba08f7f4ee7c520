import ChannelzAPI
import Foundation
import GRPCWire
import Testing
import TopologyCore

/// A gRPC client application on Python grpcio (`scripts/pychannelz.py`) with its channelz
/// service on an admin port.
final class ChannelzApp: @unchecked Sendable {
    let process = Process()
    let out = LineCollector()
    let err = LineCollector()
    private(set) var adminPort = 0

    /// The Python application, or with `executable` the C++ one (no `--channels`).
    init(target: String, lb: String = "round_robin", rps: Double = 100, channels: Int = 1, serve: Bool = false, tlsCA: String? = nil,
         executable: String? = nil) throws {
        if let executable {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["--target", target, "--lb", lb, "--rps", "\(rps)"]
        } else {
            process.executableURL = URL(fileURLWithPath: Paths.python)
            process.arguments = [Paths.root.appendingPathComponent("scripts/pychannelz.py").path,
                                 "--target", target, "--lb", lb, "--rps", "\(rps)", "--channels", "\(channels)"] + (serve ? ["--serve"] : []) + (tlsCA.map { ["--tls-ca", $0] } ?? [])
        }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        out.attach(o)
        err.attach(e)
        try process.run()
        guard let line = out.waitFor(timeout: 20, { $0.hasPrefix("admin ") }) else {
            process.terminate()
            throw FleetError("the channelz client application did not start: \(err.all.joined(separator: " | "))")
        }
        adminPort = Int(line.split(separator: ":").last ?? "") ?? 0
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Ends it; what it counted ({"sent", "ok", "failed"}).
    @discardableResult
    func stop() -> [String: Int] {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        let end = Date().addingTimeInterval(15)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        usleep(50_000)
        guard let json = out.all.last(where: { $0.hasPrefix("{") }),
              let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Int] else { return [:] }
        return obj
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

/// `ChannelzClient` (what `grpctop attach` reads) against real processes.
@Suite(.serialized) struct ChannelzClientTests {
    func fleet(_ n: Int) throws -> [Backend] { try (0..<n).map { try Backend(name: "pod-\($0)") } }

    /// The subchannels of the application's channel and what they count, until `ready` of them
    /// are READY (bounded).
    func subchannels(_ cz: ChannelzClient, ready: Int) async throws -> (Channelz.Channel, [Channelz.Subchannel]) {
        let end = Date().addingTimeInterval(10)
        while true {
            let channels = try await cz.topChannels()
            if let ch = channels.first(where: { $0.data?.target.hasPrefix("ipv4:") == true }) {
                var subs: [Channelz.Subchannel] = []
                for ref in ch.subchannelRef {
                    if let s = try await cz.subchannel(ref.subchannelId) { subs.append(s) }
                }
                if subs.filter({ $0.data?.state?.state == 3 }).count >= ready || Date() > end { return (ch, subs) }
            } else if Date() > end {
                throw FleetError("no ipv4: channel in channelz: \(channels.map { $0.data?.target ?? "?" })")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// round_robin over three pods: three READY subchannels, each socket's remote port one pod's,
    /// and — once traffic stops — each subchannel's succeeded calls exactly what its pod served.
    @Test func roundRobinSubchannelsAndTheirCountsMatchThePods() async throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), rps: 150)
        defer { app.stop() }
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: app.adminPort))
        defer { cz.close() }

        let (channel, subs) = try await subchannels(cz, ready: 3)
        #expect(channel.data?.state?.state == 3)
        #expect(subs.count == 3)
        try await Task.sleep(for: .seconds(1))
        app.signal(SIGUSR1)  // traffic stops; channelz stays up
        try await Task.sleep(for: .seconds(1.5))

        var succeededByPort: [Int: Int64] = [:]
        for ref in channel.subchannelRef {
            let s = try #require(try await cz.subchannel(ref.subchannelId))
            #expect(s.data?.state?.state == 3)
            let socketID = try #require(s.socketRef.first?.socketId)
            let socket = try #require(try await cz.socket(socketID))
            let remote = try #require(socket.remote?.tcpipAddress)
            #expect(remote.ipAddress == [127, 0, 0, 1])
            succeededByPort[Int(remote.port)] = s.data?.callsSucceeded
            #expect((socket.data?.streamsStarted ?? 0) > 0)
        }
        #expect(Set(succeededByPort.keys) == Set(f.map(\.port)))
        let top = try #require(try await cz.topChannels().first { $0.ref?.channelId == channel.ref?.channelId })
        let counts = app.stop()
        for b in f {
            let served = Backend.total(b.stop())
            #expect(Int64(served) == succeededByPort[b.port], "\(b.name): served \(served), channelz \(succeededByPort[b.port] ?? -1)")
        }
        #expect(Int64(counts["ok"] ?? -1) == top.data?.callsSucceeded)
        #expect(succeededByPort.values.allSatisfy { $0 > 50 })
    }

    /// pick_first: one subchannel READY and carrying every call.
    @Test func pickFirstHasOneSubchannelTakingAll() async throws {
        let f = try fleet(3)
        defer { f.forEach { $0.stop() } }
        let app = try ChannelzApp(target: "ipv4:" + f.map(\.address).joined(separator: ","), lb: "pick_first", rps: 100)
        defer { app.stop() }
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: app.adminPort))
        defer { cz.close() }
        let (_, subs) = try await subchannels(cz, ready: 1)
        try await Task.sleep(for: .seconds(1))
        var calls: [Int64] = []
        for s in subs { calls.append(try await cz.subchannel(s.ref!.subchannelId)?.data?.callsStarted ?? 0) }
        #expect(calls.filter { $0 > 0 }.count == 1, "\(calls)")
    }

    /// More channels than one page: every one is read, each once.
    @Test func pagingReadsEveryTopChannel() async throws {
        let b = try Backend(name: "pod-0")
        defer { b.stop() }
        let app = try ChannelzApp(target: "ipv4:" + b.address, rps: 10, channels: 250)
        defer { app.stop() }
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: app.adminPort))
        defer { cz.close() }
        let channels = try await cz.topChannels()
        let ids = channels.compactMap { $0.ref?.channelId }
        #expect(ids.count == 250)
        #expect(Set(ids).count == ids.count)
        #expect(channels.filter { $0.data?.target.hasPrefix("dns:///extra-") == true }.count == 249)
    }

    /// A process without channelz, and an address where nothing listens: one line each.
    @Test func noChannelzAndNothingListening() async throws {
        let b = try Backend(name: "pod-0")
        defer { b.stop() }
        let cz = ChannelzClient(address: .tcp(host: "127.0.0.1", port: b.port))
        defer { cz.close() }
        await #expect(throws: ChannelzError.notEnabled("127.0.0.1:\(b.port)")) { _ = try await cz.topChannels() }
        #expect(ChannelzError.notEnabled("x").description.contains("add_channelz_servicer"))
        let nothing = ChannelzClient(address: .tcp(host: "127.0.0.1", port: try freeTCPPort()), timeoutMs: 1000)
        do {
            _ = try await nothing.topChannels()
            Issue.record("a call to a closed port succeeded")
        } catch let e as ChannelzError {
            guard case .unreachable(let why) = e else { Issue.record("\(e)"); return }
            #expect(why.contains("refused"), "\(why)")
        }
    }
}
