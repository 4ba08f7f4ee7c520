import Foundation
import Testing
@testable import TopologyCore

/// gRFC A17 in the model: what the policies see of a READY connection while its health-check
/// stream answers, and what the rows say. Events in virtual time, as the engine would send them.
@Suite struct HealthCheckModelTests {
    struct Rig {
        var m = Model()
        var effects: [Effect] = []
        var t: Millis = 0

        init(policy: LBPolicy = .roundRobin, service: String? = "", outlier: OutlierDetectionConfig? = nil, pods: Int = 3) {
            apply(.sessionStarted(SessionInfo(target: "ipv4:…", resolver: "static", policy: policy, rpc: "greeter", identityHeader: nil,
                                              traffic: .rate(10), startedAt: 0, host: "h", version: "t",
                                              healthCheckService: service, outlierDetection: outlier)))
            let eps = (0..<pods).map { Endpoint(addresses: [.tcp(host: "10.0.0.\($0 + 1)", port: 50051)], pod: "pod-\($0)") }
            apply(.resolverUpdated(ResolverResult(endpoints: eps)))
        }

        mutating func apply(_ e: Event) {
            t += 10
            effects += m.apply(TimedEvent(at: t, e))
        }

        /// Connects every subchannel (CONNECTING → READY, as the transport reports it).
        mutating func connectAll() {
            for id in m.subchannels.keys.sorted() {
                apply(.subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
                apply(.subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
            }
        }

        var ready: [SubchannelID] {
            for e in effects.reversed() { if case .updatePicker(let p) = e { return p.ready } }
            return []
        }
        func label(_ id: SubchannelID) -> String { m.stateLabel(m.subchannels[id]!) }
        var log: [String] { m.log.entries.map(\.text) }
        func started(_ id: SubchannelID) -> Int { effects.filter { $0 == .startHealthCheck(id) }.count }
    }

    /// A READY connection is held back (CONNECTING to the policy) until the first answer; SERVING
    /// makes it pickable, NOT_SERVING takes it out while the connection stays READY.
    @Test func firstAnswerThenNotServingThenBack() {
        var r = Rig()
        r.connectAll()
        let ids = r.m.subchannels.keys.sorted()
        #expect(ids.allSatisfy { r.started($0) == 1 }, "a Watch per READY subchannel: \(r.effects)")
        #expect(r.ready.isEmpty && r.m.channelState == .connecting, "no picks before the first answer")
        #expect(r.label(ids[0]) == "READY · checking")
        for id in ids { r.apply(.subchannel(id, .health(.answered("SERVING")))) }
        #expect(r.ready == ids && r.m.channelState == .ready)
        #expect(r.label(ids[0]) == "READY")
        r.apply(.subchannel(ids[1], .health(.answered("NOT_SERVING"))))
        #expect(r.ready == [ids[0], ids[2]])
        #expect(r.m.subchannels[ids[1]]!.state == .ready, "the connection stays up")
        #expect(r.label(ids[1]) == "READY · unhealthy")
        #expect(r.m.healthText(r.m.subchannels[ids[1]]!)?.hasPrefix("NOT_SERVING for") == true)
        #expect(r.log.contains { $0.contains("pod-1") && $0.contains("health: NOT_SERVING: no RPCs while the connection stays up") }, "\(r.log)")
        #expect(r.m.streamsText(r.m.subchannels[ids[1]]!) == "0+1/100*", "the Watch stream holds a slot")
        r.apply(.subchannel(ids[1], .health(.answered("SERVING"))))
        #expect(r.ready == ids)
        let snap = Snapshot(r.m)
        #expect(snap.healthCheck == "" && snap.subchannels.allSatisfy { $0.health?.status == "SERVING" && $0.health?.stream == true })
    }

    /// UNIMPLEMENTED: healthy, said once at error level; other failures: TRANSIENT_FAILURE to the
    /// policy until the retry's answer.
    @Test func unimplementedAndFailures() {
        var r = Rig(pods: 2)
        r.connectAll()
        let ids = r.m.subchannels.keys.sorted()
        r.apply(.subchannel(ids[0], .health(.unimplemented("unknown method /grpc.health.v1.Health/Watch"))))
        r.apply(.subchannel(ids[1], .health(.answered("SERVING"))))
        #expect(r.ready == ids)
        #expect(r.m.log.entries.contains { $0.level == .error && $0.text.contains("no health service (UNIMPLEMENTED") })
        #expect(r.label(ids[0]) == "READY" && Snapshot(r.m).subchannels[0].health?.stream == false)
        r.apply(.subchannel(ids[1], .health(.failed("UNAVAILABLE: stream reset", retryMs: 1000))))
        #expect(r.ready == [ids[0]] && r.label(ids[1]) == "READY · check err")
        #expect(r.m.healthText(r.m.subchannels[ids[1]]!) == "check failed: UNAVAILABLE: stream reset, retry in 1.0s")
        r.apply(.subchannel(ids[1], .health(.watching)))
        #expect(r.label(ids[1]) == "READY · checking" && r.ready == [ids[0]])
        r.apply(.subchannel(ids[1], .health(.answered("SERVING"))))
        #expect(r.ready == ids)
    }

    /// A lost connection forgets its health; the next connection is checked from scratch.
    @Test func reconnectStartsOver() {
        var r = Rig(pods: 1)
        r.connectAll()
        let id = r.m.subchannels.keys.first!
        r.apply(.subchannel(id, .health(.answered("NOT_SERVING"))))
        r.apply(.subchannel(id, .stateChanged(to: .idle, reason: "GOAWAY NO_ERROR", backoffMs: nil)))
        #expect(r.m.subchannels[id]!.health == nil)
        r.apply(.subchannel(id, .stateChanged(to: .connecting, reason: nil, backoffMs: nil)))
        r.apply(.subchannel(id, .stateChanged(to: .ready, reason: nil, backoffMs: nil)))
        #expect(r.started(id) == 2 && r.label(id) == "READY · checking" && r.ready.isEmpty)
        r.apply(.subchannel(id, .health(.answered("SERVING"))))
        #expect(r.ready == [id])
    }

    /// pick_first ignores health checking (A17): no Watch stream, NOT_SERVING reports change
    /// nothing; switching to round_robin starts the streams, back to pick_first stops them.
    @Test func pickFirstIgnoresIt() {
        var r = Rig(policy: .pickFirst, pods: 2)
        r.connectAll()
        #expect(!r.effects.contains { if case .startHealthCheck = $0 { true } else { false } })
        #expect(r.log.contains { $0.contains("not used by pick_first") })
        let sel = r.ready
        #expect(sel.count == 1)
        r.apply(.subchannel(sel[0], .health(.answered("NOT_SERVING"))))
        #expect(r.ready == sel && r.label(sel[0]) == "READY")
        r.apply(.policyChanged(.roundRobin))
        let live = r.m.subchannels.values.filter { $0.state == .ready }.map(\.id)
        #expect(live.allSatisfy { r.started($0) == 1 }, "READY subchannels start their Watch")
        #expect(r.ready.isEmpty, "…and wait for its first answer")
        for id in live { r.apply(.subchannel(id, .health(.answered("SERVING")))) }
        #expect(r.ready.sorted() == live.sorted())
        r.apply(.policyChanged(.pickFirst))
        #expect(live.allSatisfy { r.effects.contains(.stopHealthCheck($0)) })
        #expect(r.m.subchannels.values.allSatisfy { $0.health == nil })
    }

    /// Outlier detection through the model: the session's config wraps the user's policy (and
    /// the one `l` switches to), rows and snapshots say ejected, why and when back.
    @Test func outlierDetectionWrapsThePolicy() throws {
        let od = OutlierDetectionConfig.failurePercentage(threshold: 30, minimumHosts: 3, requestVolume: 10, intervalMs: 1000,
                                                          baseEjectionTimeMs: 2000, maxEjectionPercent: 50)
        var r = Rig(service: nil, outlier: od)
        r.connectAll()
        let ids = r.m.subchannels.keys.sorted()
        #expect(r.m.policyName == "round_robin" && r.m.outlierDetection != nil && r.m.policyExtras == " +outlier 0/3 out")
        func tick(_ calls: [(Int, Int)]) {
            var tick = StatsTick()
            for (i, c) in calls.enumerated() {
                var d = RPCDelta()
                d.started = c.0 + c.1
                d.succeeded = c.0
                d.failed = c.1
                tick.subchannels.append(SubchannelTick(id: ids[i], activeStreams: 0, queued: 0, delta: d))
            }
            r.apply(.stats(tick))
        }
        tick([])                       // the interval starts
        r.t += 1000
        tick([(10, 10), (20, 0), (20, 0)])
        #expect(r.ready == [ids[1], ids[2]])
        #expect(r.label(ids[0]) == "READY · ejected")
        let text = try #require(r.m.outlierText(r.m.subchannels[ids[0]]!))
        #expect(text.hasPrefix("ejected ×1, back in 2.0s: failures 50% > threshold 30% (10 of 20)"), "\(text)")
        let s = try #require(Snapshot(r.m).subchannels.first { $0.id == ids[0] })
        #expect(s.shown == "READY · ejected" && s.outlier?.ejected == true && s.outlier?.backInMs == 2000 && s.outlier?.intervalFailed == 10)
        // `l` keeps outlier detection around the new policy.
        r.apply(.policyChanged(.leastRequest))
        #expect(r.m.outlierDetection != nil && r.m.policyName == "least_request")
        // A keyframe carries it.
        let data = try JSONEncoder().encode(r.m)
        let back = try JSONDecoder().decode(Model.self, from: data)
        #expect(back.outlierDetection?.addresses == r.m.outlierDetection?.addresses)
    }

    @Test func specParsing() throws {
        let a = try OutlierDetectionConfig.parse("failure-percentage,interval=1s,base-ejection-time=5s,threshold=40,minimum-hosts=2,request-volume=20").get()
        #expect(a.intervalMs == 1000 && a.baseEjectionTimeMs == 5000 && a.maxEjectionTimeMs == 300_000)
        #expect(a.failurePercentage?.threshold == 40 && a.failurePercentage?.minimumHosts == 2 && a.successRate == nil)
        let b = try OutlierDetectionConfig.parse("success-rate,stdev-factor=1.5").get()
        #expect(b.successRate?.stdevFactor == 1500 && b.failurePercentage == nil)
        let j = try OutlierDetectionConfig.parse(#"{"interval":"2s","baseEjectionTime":"400s","maxEjectionPercent":20,"failurePercentageEjection":{"threshold":60},"childPolicy":[{"round_robin":{}}]}"#).get()
        #expect(j.intervalMs == 2000 && j.maxEjectionTimeMs == 400_000 && j.maxEjectionPercent == 20 && j.failurePercentage?.threshold == 60)
        let bad: [(String, String)] = [
            ("interval=1s", "enables neither success-rate nor failure-percentage"),
            ("failure-percentage,threshold=101", "threshold=101 is not a whole number from 0 to 100"),
            ("failure-percentage,interval=soon", "interval=soon is not a duration"),
            ("failure-percentage,interval=10ms", "shorter than 100ms"),
            ("failure-percentage,color=red", "unknown key 'color'"),
            ("ejections", "has 'ejections', which is none of"),
            (#"{"interval":10}"#, "\"interval\" is not a duration"),
            (#"{"failurePercentageEjection":{"threshold":-1}}"#, "\"threshold\" is not a whole number from 0 to 100"),
            (#"{"intervall":"1s"}"#, "unknown field \"intervall\""),
            ("{", "is not a JSON object"),
        ]
        for (spec, words) in bad {
            guard case .failure(let e) = OutlierDetectionConfig.parse(spec) else { Issue.record("\(spec) accepted"); continue }
            #expect(e.description.contains(words), "\(spec): \(e)")
        }
    }

    /// Keyframes written before OwnedSubchannels kept per-id states still read back with the
    /// same counts.
    @Test func legacyOwnedSubchannels() throws {
        let json = #"{"ids":[1,2,3],"ready":[2],"counts":["READY",1,"CONNECTING",1,"TRANSIENT_FAILURE",1]}"#
        let o = try JSONDecoder().decode(OwnedSubchannels.self, from: Data(json.utf8))
        #expect(o.count(.ready) == 1 && o.count(.connecting) == 1 && o.count(.transientFailure) == 1)
        #expect(o.states[2] == .ready && o.ids.count == 3)
    }
}
