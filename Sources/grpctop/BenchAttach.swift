import ChannelzAPI
import Foundation
import TopologyCore
import TopologyView

/// `grpctop bench --attach`: one channelz poll of a process with 1,000 subchannels — the wire
/// bytes of its responses decoded (GetTopChannels, 1,000 GetSubchannel, 1,000 GetSocket),
/// turned into a report and applied to the model — and what that is as a share of one core at
/// one poll a second. (The network and the observed process's own work are not counted.)
enum AttachBenchmark {
    struct Report: Codable {
        var subchannels: Int
        var decodeMsP50: Double
        var reportAndApplyMsP50: Double
        var pollCorePercentAt1s: Double
    }

    static func run(subchannels n: Int = 1000, runs: Int = 21) throws -> Report {
        // The responses as a process would send them, serialised once.
        var top = Channelz.GetTopChannelsResponse()
        var ch = Channelz.Channel()
        var ref = Channelz.ChannelRef()
        ref.channelId = 1
        ch.ref = ref
        var data = Channelz.ChannelData()
        data.target = "dns:///big.bench.svc.cluster.local:50051"
        var ready = Channelz.ChannelConnectivityState()
        ready.state = 3
        data.state = ready
        ch.data = data
        ch.subchannelRef = (0..<n).map { i in
            var r = Channelz.SubchannelRef()
            r.subchannelId = Int64(10 + i)
            return r
        }
        top.channel = [ch]
        top.end = true
        let topBytes = top.serialized()
        func subchannelBytes(_ i: Int, calls: Int64) -> [UInt8] {
            var sc = Channelz.Subchannel()
            var r = Channelz.SubchannelRef()
            r.subchannelId = Int64(10 + i)
            sc.ref = r
            var d = Channelz.ChannelData()
            d.state = ready
            d.target = "10.\(i / 250).\(i % 250).1:50051"
            d.callsStarted = calls
            d.callsSucceeded = calls
            sc.data = d
            var sref = Channelz.SocketRef()
            sref.socketId = Int64(5000 + i)
            sc.socketRef = [sref]
            var resp = Channelz.GetSubchannelResponse()
            resp.subchannel = sc
            return resp.serialized()
        }
        func socketBytes(_ i: Int) -> [UInt8] {
            var so = Channelz.Socket()
            var addr = Channelz.Address()
            var tcp = Channelz.TcpIpAddress()
            tcp.ipAddress = [10, UInt8(i / 250), UInt8(i % 250), 1]
            tcp.port = 50051
            addr.tcpipAddress = tcp
            so.remote = addr
            var sd = Channelz.SocketData()
            sd.streamsStarted = 100
            sd.streamsSucceeded = 99
            so.data = sd
            var resp = Channelz.GetSocketResponse()
            resp.socket = so
            return resp.serialized()
        }
        let sockets = (0..<n).map(socketBytes)
        var polls: [[[UInt8]]] = []
        for k in 0..<(runs + 1) { polls.append((0..<n).map { subchannelBytes($0, calls: Int64(1000 + k * 20)) }) }

        var model = Model()
        _ = model.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(
            target: "channelz:bench", resolver: "channelz", policy: .roundRobin, rpc: "(observed)", identityHeader: nil,
            traffic: .rate(0), tickMs: 1000, startedAt: 0, host: "bench", version: GRPCTop.version, observed: true))))
        var observer = ChannelzObserver(source: "channelz bench")
        var decode: [Double] = []
        var apply: [Double] = []
        for k in 0...runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            var poll = ChannelzPoll()
            poll.channels = try Channelz.GetTopChannelsResponse(serialized: topBytes).channel
            for i in 0..<n {
                let sc = try Channelz.GetSubchannelResponse(serialized: polls[k][i]).subchannel!
                poll.subchannels[sc.ref!.subchannelId] = sc
                poll.sockets[sc.ref!.subchannelId] = try Channelz.GetSocketResponse(serialized: sockets[i]).socket
            }
            let t1 = DispatchTime.now().uptimeNanoseconds
            let report = observer.report(channel: poll.channels[0], poll: poll)
            _ = model.apply(TimedEvent(at: Millis(1000 * (k + 1)), .observedChannel(report)))
            let t2 = DispatchTime.now().uptimeNanoseconds
            if k > 0 {  // the first builds the rows: the steady state is what repeats every second
                decode.append(Double(t1 - t0) / 1e6)
                apply.append(Double(t2 - t1) / 1e6)
            }
        }
        precondition(model.subchannels.count == n && model.channel.total.completed == n * 20 * runs, "the bench model is not what was reported")
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        let d = median(decode), a = median(apply)
        return Report(subchannels: n, decodeMsP50: d, reportAndApplyMsP50: a, pollCorePercentAt1s: (d + a) / 1000 * 100)
    }

    static func table(_ r: Report) -> String {
        formatTable([
            ["attach (channelz), one poll", "measured"],
            ["decode the responses, \(r.subchannels) subchannels", String(format: "%.1f ms", r.decodeMsP50)],
            ["report + apply to the model", String(format: "%.1f ms", r.reportAndApplyMsP50)],
            ["at one poll a second, share of one core", String(format: "%.1f %%", r.pollCorePercentAt1s)],
        ])
    }
}
