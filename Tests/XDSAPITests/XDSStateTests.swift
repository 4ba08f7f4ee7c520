import Foundation
import GRPCWire
import Testing
import TopologyCore
@testable import XDSAPI

/// The ADS stream's client state against responses another implementation encoded.
@Suite struct XDSStateTests {
    static func response(_ hex: String) -> XDS.DiscoveryResponse {
        try! XDS.DiscoveryResponse(serialized: ProtoWire.hex(hex)!)
    }

    static func state() -> XDSState {
        var node = XDS.Node()
        node.id = "grpctop-test"
        return XDSState(listenerName: "greeter", rpcPath: "/helloworld.Greeter/SayHello", node: node)
    }

    /// Listener → RDS → CDS → EDS: each response ACKed with its version and nonce, each step
    /// subscribes the next; the endpoints carry the tree's metadata.
    @Test func chainFromListenerToEndpoints() throws {
        var s = Self.state()
        let first = s.streamStarted()
        #expect(first.count == 1)
        #expect(first[0].typeUrl == XDSType.lds.url && first[0].resourceNames == ["greeter"] && first[0].node?.id == "grpctop-test")
        #expect(s.waiting && s.endpoints().isEmpty)

        let lds = s.handle(Self.response(Fixtures.ldsRDS), now: 1)
        #expect(lds.requests.map(\.typeUrl) == [XDSType.lds.url, XDSType.rds.url])
        #expect(lds.requests[0].versionInfo == "1" && lds.requests[0].responseNonce == "1" && lds.requests[0].errorDetail == nil)
        #expect(lds.requests[0].node == nil, "the node goes on the first request of a stream only")
        #expect(lds.requests[1].resourceNames == ["greeter-routes"])
        #expect(s.problem == "waiting for the route configuration greeter-routes (RDS)")

        let rds = s.handle(Self.response(Fixtures.rds), now: 2)
        #expect(rds.requests.last?.typeUrl == XDSType.cds.url && rds.requests.last?.resourceNames == ["greeter"])
        let cds = s.handle(Self.response(Fixtures.cds), now: 3)
        #expect(cds.requests.last?.typeUrl == XDSType.eds.url && cds.requests.last?.resourceNames == ["greeter-eds"], "service_name names the assignment")
        let eds = s.handle(Self.response(Fixtures.eds), now: 4)
        #expect(eds.requests.count == 1 && eds.requests[0].versionInfo == "1")
        #expect(eds.changed && s.problem == nil)
        #expect(eds.notices.map(\.text) == ["EDS greeter-eds v1: 4 endpoints in 3 localities, 1 DRAINING, 1 UNHEALTHY"])

        let endpoints = s.endpoints()
        #expect(endpoints.map { $0.addresses[0].description } == ["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051", "10.0.1.1:50051"])
        #expect(endpoints.map(\.ready) == [true, false, false, true])
        #expect(endpoints[2].condition == .draining)
        #expect(endpoints[0].metadata == ["cluster": "greeter", "cluster_weight": "1", "priority": "0", "locality": "us/zone-a",
                                          "locality_weight": "1", "health": "HEALTHY", "weight": "1"])
        #expect(endpoints[2].metadata["weight"] == "5" && endpoints[2].metadata["locality_weight"] == "3")
        #expect(endpoints[3].metadata["priority"] == "1" && endpoints[3].pod == "web-eu-1" && endpoints[3].zone == "zone-c")
        #expect(s.assignments["greeter-eds"]?.drops == ["lb 10%"])
        let status = s.status(server: "cp:1", connection: "connected", since: nil)
        #expect(status.resources.map { "\($0.type) \($0.name) \($0.version) \($0.state)" } ==
                ["LDS greeter 1 acked", "RDS greeter-routes 1 acked", "CDS greeter 1 acked", "EDS greeter-eds 1 acked"])

        // A new stream (the control plane restarted): every subscription again, versions kept,
        // no nonce, the node once.
        let again = s.streamStarted()
        #expect(again.map(\.typeUrl) == XDSType.allCases.map(\.url))
        #expect(again.allSatisfy { $0.versionInfo == "1" && $0.responseNonce.isEmpty })
        #expect(again.map { $0.node != nil } == [true, false, false, false])
        #expect(s.endpoints() == endpoints, "everything is kept across streams")
    }

    /// An invalid cluster is NACKed with the reason; the previous version stays in use.
    @Test func invalidClusterIsNackedAndThePreviousKept() {
        var s = Self.state()
        _ = s.streamStarted()
        for f in [Fixtures.ldsRDS, Fixtures.rds, Fixtures.cds, Fixtures.eds] { _ = s.handle(Self.response(f), now: 1) }
        let before = s.endpoints()
        let bad = s.handle(Self.response(Fixtures.cdsStatic), now: 2)
        #expect(bad.requests.count == 1)
        let nack = bad.requests[0]
        #expect(nack.typeUrl == XDSType.cds.url && nack.versionInfo == "1" && nack.responseNonce == "2")
        #expect(nack.errorDetail?.code == 3)
        #expect(nack.errorDetail?.message == "cluster greeter: type STATIC is not supported by grpctop (EDS clusters only)")
        #expect(s.types[.cds]?.nack == nack.errorDetail?.message)
        #expect(s.endpoints() == before)
        #expect(s.status(server: "x", connection: "connected", since: nil).resources.first { $0.type == "CDS" }?.state == "nacked")
        // The next good answer clears the NACK.
        _ = s.handle(Self.response(Fixtures.cds), now: 3)
        #expect(s.types[.cds]?.nack == nil)
    }

    @Test func priorityGapAndMissingRouterAreNacked() {
        var s = Self.state()
        _ = s.streamStarted()
        for f in [Fixtures.ldsRDS, Fixtures.rds, Fixtures.cds, Fixtures.eds] { _ = s.handle(Self.response(f), now: 1) }
        let gap = s.handle(Self.response(Fixtures.edsGap), now: 2)
        #expect(gap.requests.first?.errorDetail?.message == "assignment greeter-eds: priorities are not contiguous from 0 (0, 2; 1 is missing)")
        let noRouter = s.handle(Self.response(Fixtures.ldsNoRouter), now: 3)
        #expect(noRouter.requests.first?.errorDetail?.message == "listener greeter: the last HTTP filter is '', not the router (envoy.filters.http.router)"
                || noRouter.requests.first?.errorDetail?.message == "listener greeter: no HTTP filters (the router filter must be last)")
        #expect(s.listener == .rds("greeter-routes"), "the previous listener stays")
    }

    /// Inline routes with weighted clusters (gRFC A28): both clusters subscribed, their weights
    /// on the endpoints.
    @Test func inlineWeightedClusters() {
        var s = Self.state()
        _ = s.streamStarted()
        let out = s.handle(Self.response(Fixtures.ldsInline), now: 1)
        #expect(out.requests.map(\.typeUrl) == [XDSType.lds.url, XDSType.cds.url])
        #expect(out.requests[1].resourceNames == ["blue", "green"])
        #expect(s.routeClusters?.map { "\($0.name) \($0.weight)" } == ["green 80", "blue 20"])
    }

    /// Virtual hosts: exact before suffix before prefix before `*`; routes by path.
    @Test func virtualHostAndRouteMatching() throws {
        let route = { (m: XDSRouteConfiguration.Route.Match, c: String) in XDSRouteConfiguration.Route(match: m, caseSensitive: true, clusters: [(c, 1)]) }
        let rc = XDSRouteConfiguration(name: "rc", virtualHosts: [
            .init(name: "any", domains: ["*"], routes: [route(.prefix(""), "any")]),
            .init(name: "suffix", domains: ["*.shop"], routes: [route(.prefix(""), "suffix")]),
            .init(name: "exact", domains: ["web.shop"], routes: [route(.path("/a.B/C"), "exact-c"), route(.prefix("/a.B/"), "exact-b"),
                                                                   route(.unsupported("regex"), "never")]),
        ])
        #expect(rc.virtualHost(for: "WEB.shop")?.name == "exact")
        #expect(rc.virtualHost(for: "api.shop")?.name == "suffix")
        #expect(rc.virtualHost(for: "other")?.name == "any")
        #expect(try rc.route(authority: "web.shop", path: "/a.B/C").get().map(\.name) == ["exact-c"])
        #expect(try rc.route(authority: "web.shop", path: "/a.B/D").get().map(\.name) == ["exact-b"])
        if case .failure(let e) = rc.route(authority: "web.shop", path: "/x.Y/Z") {
            #expect(e.description == "no route in virtual host exact matches /x.Y/Z")
        } else {
            Issue.record("a path no route matches was routed")
        }
    }

    /// Responses of a type that was not asked for, and garbage resources, never crash.
    @Test func hostileResponses() {
        var s = Self.state()
        _ = s.streamStarted()
        var r = XDS.DiscoveryResponse()
        r.typeUrl = "type.googleapis.com/nope"
        #expect(s.handle(r, now: 1).requests.isEmpty)
        r.typeUrl = XDSType.lds.url
        var any = XDS.AnyMessage()
        any.typeUrl = XDSType.lds.url
        any.value = [0xFF, 0xFF, 0xFF]
        r.resources = [any]
        r.nonce = "9"
        let out = s.handle(r, now: 1)
        #expect(out.requests.first?.errorDetail?.message == "malformed LDS resource")
        any.typeUrl = XDSType.cds.url
        r.resources = [any]
        #expect(s.handle(r, now: 1).requests.first?.errorDetail?.message == "a resource of type \(XDSType.cds.url) in a LDS response")
    }
}

@Suite struct XDSBootstrapTests {
    @Test func readsServerNodeAndCredentials() throws {
        let json = #"{"xds_servers":[{"server_uri":"dns:///cp.example:18000","channel_creds":[{"type":"google_default"},{"type":"insecure"}],"server_features":["xds_v3"]}],"node":{"id":"n1","cluster":"c","locality":{"zone":"z"}}}"#
        let b = try XDSBootstrap.parse(Array(json.utf8), source: "test")
        #expect(b.server == "cp.example:18000" && b.credentials == .insecure && b.nodeID == "n1" && b.nodeCluster == "c" && b.locality.zone == "z")
        #expect(b.serverFeatures == ["xds_v3"])
        let tls = try XDSBootstrap.parse(Array(#"{"xds_servers":[{"server_uri":"[::1]:443","channel_creds":[{"type":"tls","config":{"ca_certificate_file":"/ca.pem"}}]}]}"#.utf8), source: "t")
        #expect(tls.server == "[::1]:443" && tls.credentials == .tls(caFile: "/ca.pem", certFile: nil, keyFile: nil))
    }

    @Test func problemsAreOneLine() {
        func problem(_ json: String) -> String {
            do { _ = try XDSBootstrap.parse(Array(json.utf8), source: "GRPC_XDS_BOOTSTRAP_CONFIG"); return "" } catch { return error.description }
        }
        #expect(problem("{") == "GRPC_XDS_BOOTSTRAP_CONFIG: not JSON")
        #expect(problem("[]") == "GRPC_XDS_BOOTSTRAP_CONFIG: not a JSON object")
        #expect(problem("{}").hasPrefix("GRPC_XDS_BOOTSTRAP_CONFIG: no xds_servers"))
        #expect(problem(#"{"xds_servers":[{"channel_creds":[{"type":"insecure"}]}]}"#) == "GRPC_XDS_BOOTSTRAP_CONFIG: xds_servers[0] has no server_uri")
        #expect(problem(#"{"xds_servers":[{"server_uri":"cp","channel_creds":[{"type":"insecure"}]}]}"#).contains("is not HOST:PORT"))
        #expect(problem(#"{"xds_servers":[{"server_uri":"cp:1"}]}"#).contains("has no channel_creds"))
        #expect(problem(#"{"xds_servers":[{"server_uri":"cp:1","channel_creds":[{"type":"google_default"}]}]}"#)
                == "GRPC_XDS_BOOTSTRAP_CONFIG: channel_creds 'google_default' not supported by grpctop: use insecure or tls")
        for p in [problem("{"), problem("{}")] { #expect(!p.contains("\n")) }
    }

    @Test func flagThenFileThenInline() throws {
        let dir = NSTemporaryDirectory() + "xds-bootstrap-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/b.json"
        try #"{"xds_servers":[{"server_uri":"127.0.0.1:1","channel_creds":[{"type":"insecure"}]}]}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let inline = #"{"xds_servers":[{"server_uri":"127.0.0.1:2","channel_creds":[{"type":"insecure"}]}]}"#
        #expect(try XDSBootstrap.load(flag: nil, environment: ["GRPC_XDS_BOOTSTRAP": file, "GRPC_XDS_BOOTSTRAP_CONFIG": inline]).serverPort == 1)
        #expect(try XDSBootstrap.load(flag: nil, environment: ["GRPC_XDS_BOOTSTRAP_CONFIG": inline]).serverPort == 2)
        #expect(throws: XDSBootstrap.Problem.self) { try XDSBootstrap.load(flag: dir + "/none.json", environment: [:]) }
        do {
            _ = try XDSBootstrap.load(flag: nil, environment: [:])
        } catch {
            #expect(error.description.hasPrefix("xds:/// needs a bootstrap: set GRPC_XDS_BOOTSTRAP"))
        }
    }
}
