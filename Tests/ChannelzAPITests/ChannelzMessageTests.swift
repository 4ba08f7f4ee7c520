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
