import Foundation
import GRPCWire
import Testing
@testable import ChannelzAPI

/// channelz messages as another implementation writes them: the bytes below were serialised by
/// Python's protobuf (`grpc_channelz.v1.channelz_pb2`, grpcio-channelz 1.85), not by us.
@Suite struct ChannelzMessageTests {
    @Test func topChannelsFromGrpcio() throws {
        let bytes = try #require(ProtoWire.hex("0a700a08080712046368616e12570a0208031215646e733a2f2f2f7765622e73686f703a35303035311a2808011a240a145375626368616e6e656c2039206372656174656410011a060886d8b9c9062a02380920ac0228a202300a3a080890d8b9c90610051a0208082207380942037375621001"))
        let r = try Channelz.GetTopChannelsResponse(serialized: bytes)
        #expect(r.end)
        let ch = try #require(r.channel.first)
        #expect(ch.ref?.channelId == 7 && ch.ref?.name == "chan")
        let data = try #require(ch.data)
        #expect(data.state?.state == 3)  // READY
        #expect(data.target == "dns:///web.shop:50051")
        #expect((data.callsStarted, data.callsSucceeded, data.callsFailed) == (300, 290, 10))
        #expect(data.lastCallStartedTimestamp?.seconds == 1_764_650_000 && data.lastCallStartedTimestamp?.nanos == 5)
        let event = try #require(data.trace?.events.first)
        #expect(event.description == "Subchannel 9 created")
        #expect(event.severity == 1)
        #expect(event.subchannelRef?.subchannelId == 9)
        #expect(ch.subchannelRef.map(\.subchannelId) == [9])
        #expect(ch.channelRef.map(\.channelId) == [8])
        // What we write, we read back the same.
        #expect(try Channelz.GetTopChannelsResponse(serialized: r.serialized()) == r)
    }

    /// A socket: its remote address, flow-control window, TLS; fields we do not model (socket
    /// options, an Any) are skipped.
    @Test func socketFromGrpcio() throws {
        let bytes = try #require(ProtoWire.hex("0a510a02180b121d082a5a0408ffff036a110a0c534f5f5245555345414444521201317864220c0a0a0a040a000007108387032a1e0a1c0a16544c535f4145535f3132385f47434d5f53484132353622023082"))
        let s = try #require(try Channelz.GetSocketResponse(serialized: bytes).socket)
        #expect(s.ref?.socketId == 11)
        #expect(s.data?.streamsStarted == 42)
        #expect(s.data?.localFlowControlWindow?.value == 65535)
        #expect(s.data?.peerMaxConcurrentStreams == 100)
        #expect(s.remote?.tcpipAddress?.ipAddress == [10, 0, 0, 7])
        #expect(s.remote?.tcpipAddress?.port == 50051)
        #expect(s.security?.tls?.standardName == "TLS_AES_128_GCM_SHA256")
        #expect(s.security?.tls?.remoteCertificate == [0x30, 0x82])
    }

    /// Damaged bytes throw; they never trap.
    @Test func damagedBytesThrow() {
        #expect(throws: ProtoDecodingError.self) { _ = try Channelz.GetTopChannelsResponse(serialized: [0x0a, 0x70, 0x0a]) }
        #expect(throws: ProtoDecodingError.self) { _ = try Channelz.GetSocketResponse(serialized: [0x0a, 0x02, 0x18]) }
    }
}

/// Consecutive polls → observed-channel reports.
@Suite struct ChannelzObserverTests {
    func subchannel(_ id: Int64, port: Int32, state: Int32, calls: (Int64, Int64, Int64)) -> (Channelz.Subchannel, Channelz.Socket) {
        var sc = Channelz.Subchannel()
        var ref = Channelz.SubchannelRef()
        ref.subchannelId = id
        sc.ref = ref
        var data = Channelz.ChannelData()
        var st = Channelz.ChannelConnectivityState()
        st.state = state
        data.state = st
        data.target = "ipv4:10.0.0.\(id):\(port)"
        (data.callsStarted, data.callsSucceeded, data.callsFailed) = calls
        sc.data = data
        var socket = Channelz.Socket()
        var remote = Channelz.Address()
        var tcp = Channelz.TcpIpAddress()
        tcp.ipAddress = [10, 0, 0, UInt8(id)]
        tcp.port = port
        remote.tcpipAddress = tcp
        socket.remote = remote
        return (sc, socket)
    }

    func poll(_ subs: [(Channelz.Subchannel, Channelz.Socket)]) -> ChannelzPoll {
        var p = ChannelzPoll()
        for (sc, so) in subs {
            p.subchannels[sc.ref!.subchannelId] = sc
            p.sockets[sc.ref!.subchannelId] = so
        }
        return p
    }

    /// The first poll is the baseline (no burst of a process's whole history); later polls give
    /// the growth; a subchannel born between polls counts from zero; a counter that went back
    /// (a restarted process) counts from zero too.
    @Test func deltasBetweenPolls() {
        var o = ChannelzObserver(source: "channelz test")
        let ch = Channelz.Channel()
        let first = o.report(channel: ch, poll: poll([subchannel(1, port: 50051, state: 3, calls: (1000, 990, 10))]))
        #expect(first.subchannels.map(\.calls?.started) == [0])
        #expect(first.subchannels.first?.endpoint.displayName == "10.0.0.1:50051")
        #expect(first.subchannels.first?.state == .ready)
        let second = o.report(channel: ch, poll: poll([subchannel(1, port: 50051, state: 3, calls: (1100, 1085, 15)),
                                                       subchannel(2, port: 50051, state: 2, calls: (7, 7, 0))]))
        #expect(second.subchannels.map(\.calls?.started) == [100, 7])
        #expect(second.subchannels.map(\.calls?.succeeded) == [95, 7])
        #expect(second.subchannels.map(\.calls?.failed) == [5, 0])
        #expect(second.subchannels.map(\.state) == [.ready, .connecting])
        let restarted = o.report(channel: ch, poll: poll([subchannel(1, port: 50051, state: 4, calls: (3, 3, 0))]))
        #expect(restarted.subchannels.map(\.calls?.started) == [3])
        #expect(restarted.subchannels.map(\.state) == [.transientFailure])
    }

    @Test func addressesFromSocketsOrTargets() {
        var sc = Channelz.Subchannel()
        var data = Channelz.ChannelData()
        data.target = "10.1.2.3:8080"  // grpc-go
        sc.data = data
        #expect(ChannelzObserver.address(subchannel: sc, socket: nil) == .tcp(host: "10.1.2.3", port: 8080))
        data.target = "ipv6:[::1]:50051"  // grpcio, C++
        sc.data = data
        #expect(ChannelzObserver.address(subchannel: sc, socket: nil) == .tcp(host: "::1", port: 50051))
        data.target = "unix:/run/app.sock"
        sc.data = data
        #expect(ChannelzObserver.address(subchannel: sc, socket: nil) == .unix(path: "/run/app.sock"))
        data.target = "garbage:"
        sc.data = data
        #expect(ChannelzObserver.address(subchannel: sc, socket: nil) == nil)
        #expect(ChannelzObserver.state(3) == .ready && ChannelzObserver.state(99) == .idle)
    }
}

/// The peer certificate's subject line from channelz's `remote_certificate` bytes.
@Suite struct CertificateSubjectTests {
    static func tlv(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] {
        body.count < 128 ? [tag, UInt8(body.count)] + body : [tag, 0x82, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    /// A certificate in the shape of a mesh workload's: subject CN and O, a SPIFFE URI and a
    /// DNS name among its alternative names.
    static var certificate: [UInt8] {
        let name = tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, [0x55, 4, 3]) + tlv(0x0C, Array("web".utf8))))
            + tlv(0x31, tlv(0x30, tlv(0x06, [0x55, 4, 10]) + tlv(0x13, Array("Shop".utf8)))))
        let san = tlv(0x30, tlv(0x86, Array("spiffe://cluster.local/ns/shop/sa/web".utf8)) + tlv(0x82, Array("web.shop".utf8)))
        let ext = tlv(0xA3, tlv(0x30, tlv(0x30, tlv(0x06, [0x55, 0x1D, 0x11]) + tlv(0x04, san))))
        let tbs = tlv(0x30, tlv(0xA0, tlv(0x02, [2])) + tlv(0x02, [1]) + tlv(0x30, []) + tlv(0x30, []) + tlv(0x30, []) + name + ext)
        return tlv(0x30, tbs + tlv(0x30, []) + tlv(0x03, [0]))
    }

    @Test func subjectAndAlternativeNames() {
        let expected = "CN=web, O=Shop, URI:spiffe://cluster.local/ns/shop/sa/web, DNS:web.shop"
        #expect(CertificateSubject.text(certificate: Self.certificate) == expected)
        let pem = "-----BEGIN CERTIFICATE-----\n" + Data(Self.certificate).base64EncodedString(options: .lineLength64Characters) + "\n-----END CERTIFICATE-----\n"
        #expect(CertificateSubject.text(certificate: Array(pem.utf8)) == expected)
    }

    @Test func damagedCertificatesAreNil() {
        let c = Self.certificate
        for cut in stride(from: 0, to: c.count - 1, by: 3) { _ = CertificateSubject.text(der: Array(c.prefix(cut))) }
        #expect(CertificateSubject.text(der: Array(c.prefix(10))) == nil)
        #expect(CertificateSubject.text(der: [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]) == nil)
        #expect(CertificateSubject.text(certificate: Array("-----BEGIN CERTIFICATE-----\n!!!\n".utf8)) == nil)
        #expect(CertificateSubject.text(certificate: []) == nil)
    }
}
