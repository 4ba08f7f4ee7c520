import Testing
@testable import TopologyCore

@Suite struct TargetTests {
    @Test func dnsForms() throws {
        #expect(try Target.parse("dns:///foo.googleapis.com:8080") == .dns(server: nil, host: "foo.googleapis.com", port: 8080))
        #expect(try Target.parse("dns://8.8.8.8/foo.googleapis.com:8080") == .dns(server: HostPort(host: "8.8.8.8", port: 53), host: "foo.googleapis.com", port: 8080))
        #expect(try Target.parse("dns://127.0.0.1:5353/svc.ns.svc.cluster.local:50051") == .dns(server: HostPort(host: "127.0.0.1", port: 5353), host: "svc.ns.svc.cluster.local", port: 50051))
        #expect(try Target.parse("dns:foo:80") == .dns(server: nil, host: "foo", port: 80))
        #expect(try Target.parse("localhost:50051") == .dns(server: nil, host: "localhost", port: 50051))
        #expect(try Target.parse("example.com") == .dns(server: nil, host: "example.com", port: 443))
        #expect(try Target.parse("[::1]:50051") == .dns(server: nil, host: "::1", port: 50051))
    }

    @Test func ipLiteralsResolveWithoutLookup() throws {
        #expect(try Target.parse("127.0.0.1:50051").staticAddresses == [.tcp(host: "127.0.0.1", port: 50051)])
        #expect(try Target.parse("dns:///10.0.0.1:80").staticAddresses == [.tcp(host: "10.0.0.1", port: 80)])
        #expect(try Target.parse("dns:///example.com:80").staticAddresses == nil)
    }

    @Test func ipv4AndIPv6Lists() throws {
        #expect(try Target.parse("ipv4:127.0.0.1:1,127.0.0.2:2") == .ipv4([HostPort(host: "127.0.0.1", port: 1), HostPort(host: "127.0.0.2", port: 2)]))
        #expect(try Target.parse("ipv4:127.0.0.1") == .ipv4([HostPort(host: "127.0.0.1", port: 443)]))
        #expect(try Target.parse("ipv6:[::1]:50051,[fe80::1]:2") == .ipv6([HostPort(host: "::1", port: 50051), HostPort(host: "fe80::1", port: 2)]))
        #expect(try Target.parse("ipv6:::1") == .ipv6([HostPort(host: "::1", port: 443)]))
    }

    @Test func unixAndFile() throws {
        #expect(try Target.parse("unix:/tmp/s.sock") == .unix(path: "/tmp/s.sock"))
        #expect(try Target.parse("unix:///tmp/s.sock") == .unix(path: "/tmp/s.sock"))
        #expect(try Target.parse("unix:rel/s.sock") == .unix(path: "rel/s.sock"))
        #expect(try Target.parse("file:endpoints.txt") == .file(path: "endpoints.txt"))
        #expect(try Target.parse("file:///abs/e.txt") == .file(path: "/abs/e.txt"))
    }

    @Test func registries() throws {
        #expect(try Target.parse("kubernetes:///greeter.prod:grpc") == .kubernetes(namespace: "prod", service: "greeter", port: "grpc"))
        #expect(try Target.parse("k8s://prod/greeter:50051") == .kubernetes(namespace: "prod", service: "greeter", port: "50051"))
        #expect(try Target.parse("kubernetes:///greeter:8080") == .kubernetes(namespace: nil, service: "greeter", port: "8080"))
        #expect(try Target.parse("etcd:///services/greeter") == .etcd(endpoint: nil, prefix: "services/greeter"))
        #expect(try Target.parse("etcd://127.0.0.1:2379/svc") == .etcd(endpoint: HostPort(host: "127.0.0.1", port: 2379), prefix: "svc"))
    }

    @Test(arguments: [
        ("http://example.com", "unknown scheme 'http'"),
        ("foo:bar", "unknown scheme 'foo'"),
        ("127.0.0.1:70000", "out of range (1-65535)"),
        ("127.0.0.1:0", "out of range"),
        ("ipv4:300.1.1.1:80", "is not an IPv4 address"),
        ("ipv6:[zz::1]:80", "is not an IPv6 address"),
        ("ipv4:", "empty address"),
        ("", "empty target"),
        ("dns://8.8.8.8", "has no host"),
        ("unix:", "no socket path"),
        ("kubernetes:///Bad_Name.ns:80", "not a valid Kubernetes name"),
        ("kubernetes:///svc.ns", "has no port"),
        ("host name:80", "contains a space"),
        ("fe80::1::2:80", "put it in brackets"),
    ])
    func badTargetsNameTheProblem(input: String, expected: String) {
        #expect {
            try Target.parse(input)
        } throws: { error in
            guard let e = error as? TargetError else { return false }
            return e.message.contains(expected) && !e.message.contains("\n")
        }
    }

    @Test func ipText() {
        #expect(IPAddressText.isIPv4("10.0.0.255"))
        #expect(!IPAddressText.isIPv4("10.0.0.256"))
        #expect(!IPAddressText.isIPv4("10.0.0"))
        #expect(IPAddressText.isIPv6("::"))
        #expect(IPAddressText.isIPv6("2001:db8::1"))
        #expect(IPAddressText.isIPv6("::ffff:10.0.0.1"))
        #expect(!IPAddressText.isIPv6("1:2:3:4:5:6:7:8:9"))
        #expect(!IPAddressText.isIPv6("example.com"))
    }

    @Test func durations() {
        #expect(DurationText.parseMillis("250ms") == 250)
        #expect(DurationText.parseMillis("1.5s") == 1500)
        #expect(DurationText.parseMillis("2m") == 120_000)
        #expect(DurationText.parseMillis("3") == 3000)
        #expect(DurationText.parseMillis("abc") == nil)
        #expect(DurationText.parseMillis("-1s") == nil)
    }
}
