import Foundation
import Testing
import TopologyCore
@testable import TopologyResolvers

struct ConsulTargetTests {
    @Test func forms() throws {
        #expect(try Target.parse("consul:///web") == .consul(agent: nil, service: "web", query: ConsulQuery()))
        #expect(try Target.parse("consul://10.0.0.5:8500/web") == .consul(agent: HostPort(host: "10.0.0.5", port: 8500), service: "web", query: ConsulQuery()))
        #expect(try Target.parse("consul://consul.local/web") == .consul(agent: HostPort(host: "consul.local", port: 8500), service: "web", query: ConsulQuery()))
        let t = try Target.parse("consul://127.0.0.1:8500/web?tag=v2&passing=true&dc=dc2&near=_agent&wait=14s")
        #expect(t == .consul(agent: HostPort(host: "127.0.0.1", port: 8500), service: "web",
                             query: ConsulQuery(tag: "v2", passingOnly: true, datacenter: "dc2", near: "_agent", waitMs: 14_000)))
        // go-zero's healthy=true is passing=true.
        if case .consul(_, _, let q) = try Target.parse("consul:///web?healthy=true") { #expect(q.passingOnly) } else { Issue.record("not consul") }
        #expect(try Target.parse("consul:///web").defaultAuthority == "web")
    }

    @Test func mistakesAreOneLineWithTheFix() {
        func message(_ s: String) -> String {
            do { _ = try Target.parse(s); return "" } catch { return error.description }
        }
        #expect(message("consul:web").contains("consul:///service"))
        #expect(message("consul://").contains("no service"))
        #expect(message("consul:///").contains("no service"))
        #expect(message("consul:///web?token=s3cr3t").contains("$CONSUL_HTTP_TOKEN"))
        #expect(!message("consul:///web?token=s3cr3t").contains("s3cr3t"))
        #expect(message("consul://user:pw@host/web").contains("credentials"))
        #expect(message("consul:///web?wait=11m").contains("out of range"))
        #expect(message("consul:///web?wait=soon").contains("not a duration"))
        #expect(message("consul:///web?passing=maybe").contains("true or false"))
        #expect(message("consul:///web?limit=3").contains("unknown parameter 'limit'"))
        #expect(message("consul:///web?tag=a&tag=b").contains("twice"))
        #expect(message("consul:///we b").contains("space"))
        #expect(message("consul:///web%2Fx").contains("not a Consul service name"))
        #expect(message("consul://h:99999/web").contains("out of range"))
    }
}

struct ConsulHealthTests {
    /// An answer as Consul 1.x gives it (trimmed): the node's serfHealth check and the service's own.
    func entry(id: String, address: String = "10.0.0.1", port: Int = 9000, status: String = "passing", output: String = "",
               tags: [String] = [], meta: [String: String] = [:], nodeAddress: String = "10.1.0.1", tagged: String = "") -> String {
        let tagsJSON = "[" + tags.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        let metaJSON = "{" + meta.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",") + "}"
        return """
        {"Node":{"ID":"a","Node":"node-\(id)","Address":"\(nodeAddress)","Datacenter":"dc1","TaggedAddresses":{"lan":"\(nodeAddress)"},"Meta":{"zone":"z1"}},
         "Service":{"ID":"\(id)","Service":"web","Tags":\(tagsJSON),"Address":"\(address)","Port":\(port),"Meta":\(metaJSON),
                    "TaggedAddresses":{\(tagged)},"Weights":{"Passing":1,"Warning":1}},
         "Checks":[{"Node":"node-\(id)","CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing","Output":"Agent alive and reachable","ServiceID":""},
                   {"Node":"node-\(id)","CheckID":"service:\(id)","Name":"grpc","Status":"\(status)","Output":"\(output)","ServiceID":"\(id)"}]}
        """
    }

    func decode(_ entries: [String], passingOnly: Bool = false) throws -> ConsulHealth.Decoded {
        try ConsulHealth.decode(Data(("[" + entries.joined(separator: ",") + "]").utf8), passingOnly: passingOnly)
    }

    @Test func passingWarningCritical() throws {
        let d = try decode([entry(id: "web-1"), entry(id: "web-2", address: "10.0.0.2", status: "warning", output: "slow"),
                            entry(id: "web-3", address: "10.0.0.3", status: "critical", output: "gRPC check 10.0.0.3:9000: failed with status NOT_SERVING\\nretrying")])
        #expect(d.endpoints.map(\.pod) == ["web-1", "web-2", "web-3"])
        #expect(d.endpoints.map(\.condition) == [.ready, .ready, .notReady])
        #expect((d.passing, d.warning, d.critical) == (1, 1, 1))
        let critical = d.endpoints[2]
        #expect(critical.metadata["failing"] == "critical grpc: gRPC check 10.0.0.3:9000: failed with status NOT_SERVING retrying")
        #expect(critical.metadata["checks"] == "1 passing, 1 critical" && critical.serving == false)
        #expect(d.endpoints[0].node == "node-web-1" && d.endpoints[0].zone == "z1" && d.endpoints[0].metadata["datacenter"] == "dc1")
        // passing=true: a warning is not ready either.
        let strict = try decode([entry(id: "web-2", status: "warning")], passingOnly: true)
        #expect(strict.endpoints[0].condition == .notReady)
    }

    @Test func addressFallbackAndKratos() throws {
        // No Service.Address: the node's.
        let d = try decode([entry(id: "a", address: "", nodeAddress: "10.1.0.9")])
        #expect(d.endpoints[0].addresses == [.tcp(host: "10.1.0.9", port: 9000)])
        // kratos: the grpc tagged address (a URL) wins; version=V becomes the revision.
        let k = try decode([entry(id: "k", address: "10.0.0.5", port: 8000, tags: ["version=v1.4.2"],
                                  tagged: #""grpc":{"Address":"grpc://10.0.0.5:9000?isSecure=false","Port":9000},"http":{"Address":"http://10.0.0.5:8000","Port":8000}"#)])
        #expect(k.endpoints[0].addresses == [.tcp(host: "10.0.0.5", port: 9000)])
        #expect(k.endpoints[0].revision == "v1.4.2")
        let m = try decode([entry(id: "m", meta: ["version": "2024-06"])])
        #expect(m.endpoints[0].revision == "2024-06" && m.endpoints[0].metadata["meta.version"] == "2024-06")
    }

    @Test func badEntriesAreSkippedWithWhy() throws {
        let d = try decode([entry(id: "ok"), entry(id: "noport", address: "10.0.0.2", port: 0), entry(id: "bad", address: "10.0.0.3 ; rm", port: 1),
                            #"{"Node":{},"Service":{"ID":"x","Port":"nine"}}"#, entry(id: "dup")])
        #expect(d.endpoints.map(\.pod) == ["ok"])
        #expect(d.instances == 5)
        #expect(d.skipped.contains("noport: port 0 is out of range (1-65535)"))
        #expect(d.skipped.contains { $0.hasPrefix("bad: address") })
        #expect(d.skipped.contains { $0.hasPrefix("entry 3:") })
        #expect(d.skipped.contains("dup: 10.0.0.1:9000 is registered twice"))
        // Not an answer at all.
        #expect(throws: ConsulHealth.DecodeError.self) { try ConsulHealth.decode(Data("{\"error\":1}".utf8), passingOnly: false) }
        #expect(throws: ConsulHealth.DecodeError.self) { try ConsulHealth.decode(Data("<html>".utf8), passingOnly: false) }
        #expect(try ConsulHealth.decode(Data("[]".utf8), passingOnly: false).endpoints.isEmpty)
    }

    @Test func blockingIndexRules() {
        var i = ConsulBlockingIndex()
        #expect(i.update(header: "42") == .first && i.index == 42)
        #expect(i.update(header: "42") == .unchanged && i.index == 42)
        #expect(i.update(header: "50") == .advanced && i.index == 50)
        // Backwards: start over at 0 (the next query does not block).
        #expect(i.update(header: "7") == .reset(from: 50, to: 7) && i.index == 0 && i.resets == 1)
        #expect(i.update(header: "7") == .first && i.index == 7)
        // Never below 1.
        var z = ConsulBlockingIndex()
        #expect(z.update(header: "0") == .first && z.index == 1)
        #expect(z.update(header: nil) == .reset(from: 1, to: 0) && z.index == 0)
        #expect(z.update(header: "garbage") == .first && z.index == 1)
        // At most one query every 250 ms.
        #expect(i.delayBeforeNext(lastStartMs: 1000, nowMs: 1100) == 150)
        #expect(i.delayBeforeNext(lastStartMs: 1000, nowMs: 5000) == 0)
        #expect(i.delayBeforeNext(lastStartMs: 1000, nowMs: 900) == 250)
    }

    @Test func configFromTheEnvironment() throws {
        let plain = try ConsulConfig.resolve(agent: nil, environment: [:], tokenFile: nil)
        #expect(plain.base == "http://127.0.0.1:8500" && plain.token == nil && plain.tokenSource == "no token")
        let env = try ConsulConfig.resolve(agent: nil, environment: ["CONSUL_HTTP_ADDR": "https://consul.svc:8501", "CONSUL_HTTP_TOKEN": "abc-123"], tokenFile: nil)
        #expect(env.base == "https://consul.svc:8501" && env.token == "abc-123" && env.tokenSource == "$CONSUL_HTTP_TOKEN")
        // The target's agent wins over CONSUL_HTTP_ADDR.
        let named = try ConsulConfig.resolve(agent: HostPort(host: "10.0.0.1", port: 8500), environment: ["CONSUL_HTTP_ADDR": "10.9.9.9:1"], tokenFile: nil)
        #expect(named.base == "http://10.0.0.1:8500")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-consul-token-\(getpid())").path
        try "  file-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let fromFile = try ConsulConfig.resolve(agent: nil, environment: ["CONSUL_HTTP_TOKEN": "env"], tokenFile: file)
        #expect(fromFile.token == "file-token" && fromFile.tokenSource == "--consul-token-file \(file)")
        #expect(throws: ConsulConfig.Problem.self) { try ConsulConfig.resolve(agent: nil, environment: ["CONSUL_HTTP_ADDR": "unix:///tmp/c.sock"], tokenFile: nil) }
        #expect(throws: ConsulConfig.Problem.self) { try ConsulConfig.resolve(agent: nil, environment: [:], tokenFile: "/nonexistent/token") }
        #expect(throws: ConsulConfig.Problem.self) { try ConsulConfig.resolve(agent: nil, environment: ["CONSUL_CLIENT_CERT": file], tokenFile: nil) }
    }

    @Test func aclAdviceNamesThePermission() {
        let m = ConsulResolver.aclAdvice("Permission denied: token with AccessorID 'a1' lacks permission 'service:read' on \"web\"", service: "web", tokenSource: "$CONSUL_HTTP_TOKEN")
        #expect(m.contains("lacks service:read") && m.contains("service \"web\" { policy = \"read\" }"))
        let n = ConsulResolver.aclAdvice("Permission denied: token with AccessorID 'a1' lacks permission 'node:read' on \"n1\"", service: "web", tokenSource: "x")
        #expect(n.contains("node_prefix"))
        #expect(ConsulResolver.aclAdvice("ACL not found", service: "web", tokenSource: "x").contains("does not know the token"))
        #expect(ConsulResolver.aclAdvice("Permission denied", service: "web", tokenSource: "x").contains("service:read"))
    }
}
