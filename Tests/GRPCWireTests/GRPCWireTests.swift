import NIOCore
import NIOHPACK
import NIOHTTP2
import Testing
import TopologyCore
@testable import GRPCWire

@Suite struct ProtoWireTests {
    @Test func roundTrip() {
        let m = ProtoWire.stringMessage("bob")
        #expect(m == [0x0a, 0x03, 0x62, 0x6f, 0x62])
        #expect(ProtoWire.string(in: m) == "bob")
        #expect(ProtoWire.string(in: []) == "")
        #expect(ProtoWire.string(in: [0x0a, 0x09, 0x01]) == nil)
        #expect(ProtoWire.hex("0a 03 62 6f 62") == m)
        #expect(ProtoWire.hex("0xzz") == nil)
        #expect(ProtoWire.hex("abc") == nil)
    }
}

@Suite struct GRPCFramingTests {
    /// PROTOCOL-HTTP2.md: TimeoutValue is at most 8 digits; a longer deadline changes unit.
    @Test func grpcTimeoutFitsEightDigits() {
        #expect(grpcTimeoutHeader(ms: 10_000) == "10000m")
        #expect(grpcTimeoutHeader(ms: 0) == "1m")
        #expect(grpcTimeoutHeader(ms: 99_999_999) == "99999999m")
        #expect(grpcTimeoutHeader(ms: 100_000_000) == "100000S")
        #expect(grpcTimeoutHeader(ms: DurationText.maxMillis) == "31622400S")
        #expect(grpcTimeoutHeader(ms: .max) == "99999999H")
        for ms: Int64 in [1, 999, 123_456_789, DurationText.maxMillis, .max] {
            let h = grpcTimeoutHeader(ms: ms)
            #expect(h.dropLast().count <= 8 && h.dropLast().allSatisfy(\.isNumber), "\(h)")
        }
    }

    /// Messages come back whole whatever the DATA frames cut them into; a length over the
    /// limit is refused before its bytes arrive.
    @Test func messagesReassembleAcrossFrames() throws {
        var wire = ByteBuffer()
        GRPCFrame.write(ProtoWire.stringMessage("bob"), to: &wire)
        GRPCFrame.write([], to: &wire)
        GRPCFrame.write(Array(repeating: 7, count: 300), to: &wire)
        let bytes = Array(wire.readableBytesView)
        for cut in [1, 2, 5, 6, 9, 13, bytes.count - 1] {
            var reader = GRPCMessageReader(limit: 1000)
            let first = try reader.read(ByteBuffer(bytes: bytes[..<cut]))
            let rest = try reader.read(ByteBuffer(bytes: bytes[cut...]))
            #expect(first + rest == [ProtoWire.stringMessage("bob"), [], Array(repeating: 7, count: 300)], "cut at \(cut)")
            #expect(!reader.hasPartialMessage)
        }
        var small = GRPCMessageReader(limit: 100)
        #expect(throws: GRPCMessageReader.TooLarge(length: 300, limit: 100)) {
            _ = try small.read(ByteBuffer(bytes: [0, 0, 0, 1, 44]))
        }
    }

    /// A server's trailers and the status a client reads from them (PROTOCOL-HTTP2.md).
    @Test func statusFromTrailers() {
        func outcome(_ h: [(String, String)], sawHeaders: Bool = true) -> (Int, String?) {
            let r = GRPCResponseHeaders(HPACKHeaders(h)).outcome(sawHeaders: sawHeaders)
            return (r.code, r.message)
        }
        #expect(outcome([("grpc-status", "0")]) == (0, nil))
        #expect(outcome([("grpc-status", "14"), ("grpc-message", "no%20pods%20%E2%9C%93")]) == (14, "no pods ✓"))
        #expect(outcome([("grpc-status", "99")]) == (2, nil))
        #expect(outcome([]) == (2, "response without grpc-status"))
        #expect(outcome([(":status", "503")], sawHeaders: false) == (14, "HTTP status 503"))
        #expect(outcome([(":status", "404")], sawHeaders: false) == (12, "HTTP status 404"))
        #expect(GRPCResponseHeaders(HPACKHeaders([("x-pod", "a"), ("x-pod", "b")]), identityHeader: "x-pod").identity == "a")
        #expect(HTTP2ErrorText.status(rst: .refusedStream) == nil)
        #expect(HTTP2ErrorText.status(rst: .cancel)?.code == 1)
        #expect(HTTP2ErrorText.status(rst: .protocolError)?.message == "RST_STREAM PROTOCOL_ERROR")
    }

    /// What a server writes, a client reads back: percent-encoding round-trips any text.
    @Test func grpcMessageRoundTrips() {
        for text in ["plain", "100% sure", "naïve ✓ \u{1F600}", "line\nbreak", "%41 is not A", ""] {
            let wire = GRPCStatusText.encodeMessage(text)
            #expect(wire.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }, "\(wire)")
            #expect(GRPCStatusText.message(wire) == text)
        }
    }

    @Test func sniIsNeverAnIPAddress() {
        #expect(HTTP2ClientConnection.serverName(for: "greeter.shop.svc") == "greeter.shop.svc")
        #expect(HTTP2ClientConnection.serverName(for: "10.0.0.7") == nil)
        #expect(HTTP2ClientConnection.serverName(for: "::1") == nil)
    }
}

/// What `-H` may send as gRPC metadata (PROTOCOL-HTTP2.md, RFC 9113 §8.2.2).
@Suite struct GRPCMetadataTests {
    @Test func keysAndValues() {
        #expect(GRPCMetadata.problem(key: "x-tenant", value: "a b", whole: "x-tenant: a b") == nil)
        #expect(GRPCMetadata.problem(key: "trace-bin", value: "AAE=", whole: "trace-bin: AAE=") == nil)
        #expect(GRPCMetadata.problem(key: "X-Tenant", value: "a", whole: "X-Tenant: a")?.contains("is not a valid metadata key") == true)
        #expect(GRPCMetadata.problem(key: "grpc-timeout", value: "1S", whole: "grpc-timeout: 1S")?.contains("sets itself") == true)
        #expect(GRPCMetadata.problem(key: "te", value: "x", whole: "te: x")?.contains("sets itself") == true)
        #expect(GRPCMetadata.problem(key: "trace-bin", value: "not base64!", whole: "")?.contains("must be base64") == true)
        #expect(GRPCMetadata.problem(key: "x", value: "a\r\nb", whole: "")?.contains("printable ASCII") == true)
    }
}
