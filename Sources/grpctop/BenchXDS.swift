import Foundation
import TopologyCore
import TopologyView
import XDSAPI

/// `grpctop bench --xds`: one EDS update of 5,000 endpoints (50 localities of 100, two
/// priorities) — the DiscoveryResponse's wire bytes decoded, validated and ACKed by the ADS
/// state, turned into endpoints, and applied to a model balancing them with the xDS policy
/// tree — as a control plane pushes it when one endpoint changes.
enum XDSBenchmark {
    struct Report: Codable {
        var endpoints: Int
        var responseBytes: Int
        var decodeAndAcceptMsP50: Double
        var applyMsP50: Double
    }

    static func run(endpoints n: Int = 5000, runs: Int = 11) throws -> Report {
        func any(_ t: XDSType, _ bytes: [UInt8]) -> XDS.AnyMessage {
            var a = XDS.AnyMessage()
            a.typeUrl = t.url
            a.value = bytes
            return a
        }
        func response(_ t: XDSType, _ resource: [UInt8], version: Int) -> XDS.DiscoveryResponse {
            var r = XDS.DiscoveryResponse()
            r.typeUrl = t.url
            r.versionInfo = "\(version)"
            r.nonce = "\(version)"
            r.resources = [any(t, resource)]
            return r
        }
        // The chain to one cluster, as a control plane sends it.
        var source = XDS.ConfigSource()
        source.ads = XDS.AggregatedConfigSource()
        var hcm = XDS.HttpConnectionManager()
        var rc = XDS.RouteConfiguration()
        rc.name = "bench-routes"
        var vh = XDS.VirtualHost()
        vh.domains = ["*"]
        var route = XDS.Route()
        route.match = XDS.RouteMatch()
        var action = XDS.RouteAction()
        action.cluster = "bench"
        route.route = action
        vh.routes = [route]
        rc.virtualHosts = [vh]
        hcm.routeConfig = rc
        var router = XDS.HttpFilter()
        router.typedConfig = any(.lds, [])
        router.typedConfig?.typeUrl = XDSType.routerURL
        hcm.httpFilters = [router]
        var listener = XDS.Listener()
        listener.name = "bench"
        var api = XDS.ApiListener()
        api.apiListener = any(.lds, hcm.serialized())
        api.apiListener?.typeUrl = XDSType.hcmURL
        listener.apiListener = api
        var cluster = XDS.Cluster()
        cluster.name = "bench"
        cluster.type = 3
        var eds = XDS.EdsClusterConfig()
        eds.edsConfig = source
        cluster.edsClusterConfig = eds
        func assignment(version: Int) -> [UInt8] {
            var a = XDS.ClusterLoadAssignment()
            a.clusterName = "bench"
            let perLocality = 100
            for l in 0..<(n / perLocality) {
                var loc = XDS.LocalityLbEndpoints()
                var locality = XDS.Locality()
                locality.region = "region-\(l / 25)"
                locality.zone = "zone-\(l)"
                loc.locality = locality
                loc.priority = UInt32(l / 25)
                var w = XDS.UInt32Value()
                w.value = UInt32(1 + l % 3)
                loc.loadBalancingWeight = w
                loc.lbEndpoints = (0..<perLocality).map { i in
                    var e = XDS.LbEndpoint()
                    var ep = XDS.Endpoint()
                    var addr = XDS.Address()
                    var sa = XDS.SocketAddress()
                    sa.address = "10.\(l).\(i / 250).\(i % 250 + 1)"
                    // One endpoint changes port with each version: the update a push carries.
                    sa.portValue = l == 0 && i == 0 ? UInt32(20000 + version) : 50051
                    addr.socketAddress = sa
                    ep.address = addr
                    e.endpoint = ep
                    e.healthStatus = 1
                    return e
                }
                a.endpoints.append(loc)
            }
            return a.serialized()
        }
        var node = XDS.Node()
        node.id = "bench"
        var state = XDSState(listenerName: "bench", rpcPath: "/helloworld.Greeter/SayHello", node: node)
        _ = state.streamStarted()
        _ = state.handle(response(.lds, listener.serialized(), version: 1), now: 0)
        _ = state.handle(response(.cds, cluster.serialized(), version: 1), now: 0)
        var model = Model()
        _ = model.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(
            target: "xds:///bench", resolver: "xds", policy: .roundRobin, rpc: "(bench)", identityHeader: nil,
            traffic: .rate(0), tickMs: 250, startedAt: 0, host: "bench", version: GRPCTop.version))))
        let updates = (0...runs).map { k in response(.eds, assignment(version: k + 2), version: k + 2).serialized() }
        var decode: [Double] = []
        var apply: [Double] = []
        for (k, bytes) in updates.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try XDS.DiscoveryResponse(serialized: bytes)
            let outcome = state.handle(r, now: Double(k))
            precondition(outcome.requests.first?.errorDetail == nil, "the bench assignment was NACKed")
            let endpoints = state.endpoints()
            let t1 = DispatchTime.now().uptimeNanoseconds
            _ = model.apply(TimedEvent(at: Millis(1000 * (k + 1)), .resolverUpdated(ResolverResult(endpoints: endpoints, lbTree: "xds"))))
            let t2 = DispatchTime.now().uptimeNanoseconds
            if k > 0 {  // the first creates every subchannel: the steady state is an update
                decode.append(Double(t1 - t0) / 1e6)
                apply.append(Double(t2 - t1) / 1e6)
            }
        }
        precondition(model.resolver.endpoints.count == n && model.isXDS, "the bench model is not what was sent")
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        return Report(endpoints: n, responseBytes: updates[0].count, decodeAndAcceptMsP50: median(decode), applyMsP50: median(apply))
    }

    static func table(_ r: Report) -> String {
        formatTable([
            ["xds, one EDS update", "measured"],
            ["\(r.endpoints) endpoints, response size", "\(r.responseBytes / 1024) KiB"],
            ["decode + validate + ACK + endpoints", String(format: "%.1f ms", r.decodeAndAcceptMsP50)],
            ["apply to the model (xDS policy tree)", String(format: "%.1f ms", r.applyMsP50)],
        ])
    }
}
