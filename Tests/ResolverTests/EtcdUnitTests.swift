import GRPCWire
import EtcdAPI
import Testing
import TopologyCore
@testable import TopologyResolvers

struct EtcdValueTests {
    func parse(_ key: String, _ value: String) -> EtcdRegistration {
        EtcdRegistration.parse(key: key, value: Array(value.utf8), prefix: "services/greeter/")
    }

    func endpoint(_ r: EtcdRegistration) -> (Endpoint, EtcdValueFormat)? {
        if case .endpoint(let e, let f) = r { return (e, f) }
        return nil
    }

    @Test func etcdNaming() throws {
        let (e, f) = try #require(endpoint(parse("services/greeter/a", #"{"Op":0,"Addr":"10.0.0.1:50051","Metadata":{"zone":"a"}}"#)))
        #expect(f == .etcd && e.addresses == [.tcp(host: "10.0.0.1", port: 50051)])
        #expect(e.metadata["format"] == "etcd" && e.metadata["key"] == "services/greeter/a" && e.metadata["metadata"] == #"{"zone":"a"}"#)
        #expect(parse("services/greeter/a", #"{"Op":1,"Addr":"10.0.0.1:50051"}"#) == .deleted)
        #expect(parse("services/greeter/a", #"{"Op":0,"Addr":"nope"}"#) == .skipped(reason: "etcd naming Addr 'nope' is not host:port"))
    }

    @Test func goZeroKeyedByLease() throws {
        let (e, f) = try #require(endpoint(parse("services/greeter/7587869584572516356", "10.0.0.2:8080")))
        #expect(f == .gozero && e.metadata["lease"] == String(7587869584572516356, radix: 16))
    }

    @Test func kratosInstance() throws {
        let v = #"{"id":"pod-1","name":"greeter","version":"v2","metadata":null,"endpoints":["http://10.0.0.3:8000","grpc://10.0.0.3:9000?isSecure=false"]}"#
        let (e, f) = try #require(endpoint(parse("services/greeter/pod-1", v)))
        #expect(f == .kratos && e.addresses == [.tcp(host: "10.0.0.3", port: 9000)] && e.pod == "pod-1")
        #expect(e.metadata["version"] == "v2" && e.metadata["service"] == "greeter")
        #expect(parse("k", #"{"id":"x","endpoints":["http://10.0.0.3:8000"]}"#) == .skipped(reason: "kratos instance has no grpc:// endpoint (http://10.0.0.3:8000)"))
    }

    @Test func plainAndIPv6() throws {
        let (e, f) = try #require(endpoint(parse("services/greeter/x", " [::1]:50051\n")))
        #expect(f == .plain && e.addresses == [.tcp(host: "::1", port: 50051)])
    }

    @Test func malformedValuesAreSkippedWithAReason() {
        for (value, reason) in [("", "empty value"), ("{not json", "not valid JSON"), (#"{"a":1}"#, "JSON with neither"),
                                ("hello world", "is not host:port"), ("10.0.0.1", "is not host:port"), ("10.0.0.1:99999", "is not host:port")] {
            guard case .skipped(let r) = parse("services/greeter/bad", value) else {
                Issue.record("\(value) was not skipped")
                continue
            }
            #expect(r.contains(reason), "\(value): \(r)")
        }
    }

    @Test func prefixRangeEnd() {
        #expect(etcdPrefixRangeEnd(Array("services/greeter/".utf8)) == Array("services/greeter0".utf8))
        #expect(etcdPrefixRangeEnd([0x61, 0xff]) == [0x62])
        #expect(etcdPrefixRangeEnd([0xff, 0xff]) == [0])
    }

    /// The generated messages keep etcd's field numbers: bytes etcd itself would send decode.
    @Test func wireFormat() throws {
        // WatchResponse{header{revision: 7}, watch_id: 1, canceled: true, compact_revision: 5}
        let bytes: [UInt8] = [0x0a, 0x02, 0x18, 0x07, 0x10, 0x01, 0x20, 0x01, 0x28, 0x05]
        let r = try WatchResponse(serialized: bytes)
        #expect(r.header?.revision == 7 && r.watchId == 1 && r.canceled && r.compactRevision == 5)
        var put = PutRequest()
        put.key = Array("k".utf8)
        put.value = Array("v".utf8)
        put.lease = -1  // int64: ten-byte two's complement varint
        #expect(put.serialized() == [0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, 0x18] + [UInt8](repeating: 0xff, count: 9) + [0x01])
        #expect(throws: ProtoDecodingError.self) { try WatchResponse(serialized: [0x0a, 0x05, 0x01]) }
    }
}
