import Foundation
import TopologyCore
import TopologyResolvers

/// `grpctop bench --dns dns://SERVER/NAME:PORT`: the cost of one lookup (c-ares query, parse)
/// and of applying its answer to the model, first as a new set and then unchanged (what a DNS
/// poll does every TTL). scripts/bench serves 500 A records from dnsmasq for it.
enum DNSBenchmark {
    struct Report: Codable {
        var name: String
        var records: Int
        var lookups: Int
        var lookupParseMsP50: Double
        var lookupParseMsMax: Double
        /// Median over fresh models.
        var applyNewSetMs: Double
        var applyUnchangedMsP50: Double
        var unchangedEffects: Int
        var unchangedRowVersionBumps: Int
    }

    static func run(target: String, lookups: Int) throws -> Report {
        let parsed: Target
        do { parsed = try Target.parse(target) } catch { throw UsageFailure(error.message) }
        guard case .dns(let server, let host, let port) = parsed, let server else {
            throw UsageFailure("--dns '\(target)' must name its DNS server: dns://127.0.0.1:5353/name:port")
        }
        let lookup: DNSLookup
        do { lookup = try DNSLookup(server: server.description) } catch { throw UsageFailure("\(error)") }
        // The resolver's own path: query, parse, endpoints.
        let resolver = DNSResolver(host: host, port: port, server: server.description)
        var lookupMs: [Double] = []
        var endpoints: [Endpoint] = []
        for _ in 0..<max(1, lookups) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            do { endpoints = try resolver.resolve(lookup).endpoints } catch { throw UsageFailure("lookup of \(host) failed: \(error)") }
            lookupMs.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        var model = Model()
        var at: Millis = 0
        let session = Event.sessionStarted(SessionInfo(
            target: target, resolver: "dns", policy: .roundRobin, rpc: "bench", identityHeader: nil,
            traffic: .rate(1), startedAt: 0, host: "bench", version: GRPCTop.version))
        func timedApply(_ e: Event) -> (Double, [Effect]) {
            at += 1000
            let t0 = DispatchTime.now().uptimeNanoseconds
            let effects = model.apply(TimedEvent(at: at, e))
            return (Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6, effects)
        }
        // A new set: a fresh model each time (the first answer creates every subchannel).
        var newMs: [Double] = []
        for _ in 0..<max(3, lookups) {
            model = Model()
            at = 0
            _ = model.apply(TimedEvent(at: 0, session))
            newMs.append(timedApply(.resolverUpdated(ResolverResult(endpoints: endpoints, info: ["ttl": "1s"]))).0)
        }
        var unchangedMs: [Double] = []
        var effects = 0
        let version = model.rowsVersion
        for i in 0..<max(1, lookups) {
            let (ms, e) = timedApply(.resolverUpdated(ResolverResult(endpoints: endpoints, info: ["answeredAt": "\(i)"])))
            unchangedMs.append(ms)
            effects += e.count
        }
        func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
        return Report(name: host, records: endpoints.count, lookups: lookupMs.count,
                      lookupParseMsP50: median(lookupMs), lookupParseMsMax: lookupMs.max() ?? 0,
                      applyNewSetMs: median(newMs), applyUnchangedMsP50: median(unchangedMs),
                      unchangedEffects: effects, unchangedRowVersionBumps: model.rowsVersion - version)
    }

    static func table(_ r: Report) -> String {
        """
        DNS: \(r.records) A records for \(r.name), \(r.lookups) lookups
          lookup + parse + endpoints (c-ares, TCP after truncation) p50 \(String(format: "%.2f", r.lookupParseMsP50)) ms   max \(String(format: "%.2f", r.lookupParseMsMax)) ms
          apply a new set to the model (creates \(r.records) subchannels)  p50 \(String(format: "%.2f", r.applyNewSetMs)) ms
          apply an unchanged answer                       p50 \(String(format: "%.3f", r.applyUnchangedMsP50)) ms, \(r.unchangedEffects) effects, \(r.unchangedRowVersionBumps) row-version bumps (no redraw of rows)

        """
    }
}
