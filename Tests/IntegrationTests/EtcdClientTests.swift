import EtcdAPI
import Foundation
import Testing

/// The gRPC client against real etcd: many calls on one connection.
@Suite(.serialized, .enabled(if: EtcdServer.available, "etcd-server and etcd-client are not installed (scripts/test installs them)"))
struct EtcdClientTests {
    /// 800 unary calls on one HTTP/2 connection (four times the limit below; each is an fsync in
    /// etcd, so more only costs time): every one is answered. (etcd's server
    /// PINGs after most responses; under NIO's default limit of 200 control frames per 30 s the
    /// connection errored after ~200 calls — the resolver's TTL refreshes would have stalled it
    /// within minutes.)
    @Test func manyCallsOnOneConnection() async throws {
        let etcd = try EtcdServer()
        let client = try EtcdClient(config: EtcdConfig(endpoints: [EtcdConfig.Endpoint(tls: false, host: "127.0.0.1", port: etcd.clientPort)]))
        try await client.connect()
        defer { client.disconnect() }
        var done = 0
        do {
            for i in 0..<800 {
                try await client.put(key: "many/\(i)", value: "127.0.0.1:\(10000 + i)")
                done += 1
            }
        } catch {
            Issue.record("call \(done + 1) failed: \(error)")
        }
        #expect(done == 800)
        let (kvs, _) = try await client.range(prefix: "many/")
        #expect(kvs.count == done)
    }
}
