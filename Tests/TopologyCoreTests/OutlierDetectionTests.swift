import Foundation
import Testing
@testable import TopologyCore

/// gRFC A50's outlier_detection over round_robin, driven directly in virtual time: subchannel
/// counters stand in for the calls the data plane finished.
@Suite struct OutlierDetectionTests {
    struct Rig {
        var table = SubchannelTable()
        var od: OutlierDetection
        var ids: [SubchannelID] = []

        init(hosts: Int, config: OutlierDetectionConfig) {
            od = OutlierDetection(config: config, child: AnyPolicy(RoundRobin()))
            let eps = (0..<hosts).map { Endpoint(addresses: [.tcp(host: "10.0.0.\($0 + 1)", port: 50051)], pod: "pod-\($0)") }
            od.update(endpoints: eps, table: &table)
            ids = eps.map { table.live(for: $0.key)! }
            for id in ids {
                for s in [ConnectivityState.connecting, .ready] { move(id, s) }
            }
            _ = table.takeWork()
            table.changed = false
        }

        mutating func move(_ id: SubchannelID, _ to: ConnectivityState) {
            if let from = table.transition(id, to: to, reason: nil, backoffMs: nil) { od.subchannelChanged(id, from: from, to: to, table: &table) }
        }

        /// Calls finished on each host since the last step (ok, failed), then time passes to `t`
        /// and the policy ticks.
        mutating func step(to t: Millis, _ calls: [(ok: Int, failed: Int)]) {
            for (i, c) in calls.enumerated() {
                table.records[ids[i]]!.traffic.total.succeeded += c.ok
                table.records[ids[i]]!.traffic.total.failed += c.failed
            }
            table.now = t
            od.tick(table: &table)
        }

        var picked: [SubchannelID] { od.pickNode(table: table).ready }
        func ejected(_ i: Int) -> Bool { od.isEjected(ids[i]) }
        var log: [String] { table.logLines.map(\.text) }
    }

    static func failurePercentage(threshold: Int = 30, hosts: Int = 3) -> OutlierDetectionConfig {
        var c = OutlierDetectionConfig()
        c.intervalMs = 1000
        c.baseEjectionTimeMs = 3000
        c.maxEjectionPercent = 50
        var f = OutlierDetectionConfig.FailurePercentage()
        f.threshold = threshold
        f.minimumHosts = hosts
        f.requestVolume = 20
        c.failurePercentage = f
        return c
    }

    /// A host failing half its calls is ejected at the sweep (its connection stays: no shutdown,
    /// READY underneath), comes back after base × multiplier, is ejected again for twice as long,
    /// and its multiplier decays while it behaves.
    @Test func ejectUnejectAndTheMultiplier() {
        var r = Rig(hosts: 3, config: Self.failurePercentage())
        let bad = (ok: 50, failed: 50), good = (ok: 100, failed: 0)
        r.step(to: 0, [])                        // the first tick starts the interval
        r.step(to: 1000, [bad, good, good])      // the first sweep
        #expect(r.ejected(0) && !r.ejected(1) && !r.ejected(2))
        #expect(r.picked == [r.ids[1], r.ids[2]], "the child picks around the ejected host")
        #expect(r.table.state(of: r.ids[0]) == .ready && !r.table.effects.contains { if case .shutDown = $0 { true } else { false } })
        #expect(r.table.changed, "the picker is due")
        let a = r.od.addresses[r.table.record(r.ids[0])!.key]!
        #expect(a.multiplier == 1 && a.ejectedUntil == 4000 && a.why == "failures 50% > threshold 30% (50 of 100)")
        #expect(r.log.contains { $0.contains("pod-0 ejected for 3.0s (×1): failures 50%") }, "\(r.log)")
        // Ejected: it gets no calls. Back once 3 s have passed (checked at the sweeps).
        r.step(to: 2000, [(0, 0), good, good])
        r.step(to: 3000, [(0, 0), good, good])
        #expect(r.ejected(0))
        r.step(to: 4000, [(0, 0), good, good])
        #expect(!r.ejected(0) && r.picked == r.ids)
        // Still failing: ejected again, for 2 × 3 s.
        r.step(to: 5000, [bad, good, good])
        let again = r.od.addresses[r.table.record(r.ids[0])!.key]!
        #expect(r.ejected(0) && again.multiplier == 2 && again.ejectedUntil == 11_000 && again.ejections == 2)
        for t in stride(from: 6000, through: 10_000, by: 1000) { r.step(to: Millis(t), [(0, 0), good, good]) }
        #expect(r.ejected(0))
        r.step(to: 11_000, [(0, 0), good, good])
        #expect(!r.ejected(0))
        // Healthy now: the multiplier goes down by one a sweep.
        r.step(to: 12_000, [good, good, good])
        r.step(to: 13_000, [good, good, good])
        #expect(r.od.addresses[r.table.record(r.ids[0])!.key]!.multiplier == 0)
    }

    /// While ejected, the subchannel's real changes are kept from the child and restored after.
    @Test func realStateUnderneath() {
        var r = Rig(hosts: 3, config: Self.failurePercentage())
        r.step(to: 0, [])
        r.step(to: 1000, [(10, 90), (100, 0), (100, 0)])
        #expect(r.ejected(0))
        r.move(r.ids[0], .idle)          // the connection dropped meanwhile…
        #expect(!r.table.effects.contains { if case .connect(let id) = $0 { id == r.ids[0] } else { false } },
                "the child did not hear it (it sees TRANSIENT_FAILURE)")
        r.move(r.ids[0], .connecting)
        r.move(r.ids[0], .ready)         // … and came back
        r.step(to: 4000, [(0, 0), (100, 0), (100, 0)])
        #expect(!r.ejected(0) && r.picked.contains(r.ids[0]))
        // Removed while ejected: gone from the child too.
        var eps = (1..<3).map { Endpoint(addresses: [.tcp(host: "10.0.0.\($0 + 1)", port: 50051)], pod: "pod-\($0)") }
        r.step(to: 5000, [(0, 100), (100, 0), (100, 0)])
        #expect(r.ejected(0))
        r.od.update(endpoints: eps, table: &r.table)
        eps.removeAll()
        #expect(r.table.state(of: r.ids[0]) == .shutdown && !r.od.owns(r.ids[0]) && r.od.addresses.count == 2)
    }

    /// Success rate: five hosts over the volume, one at 60 % among 100 %s: mean 92 %, σ 16 %, the
    /// threshold 92 − 1.9 × 16 = 61.6 %: ejected.
    /// Below five hosts (the minimum) nothing is judged.
    @Test func successRate() {
        var c = OutlierDetectionConfig()
        c.intervalMs = 1000
        c.successRate = OutlierDetectionConfig.SuccessRate()
        var r = Rig(hosts: 5, config: c)
        r.step(to: 0, [])
        r.step(to: 1000, [(60, 40)] + Array(repeating: (ok: 100, failed: 0), count: 4))
        #expect(r.ejected(0) && (1..<5).allSatisfy { !r.ejected($0) })
        let why = r.od.addresses[r.table.record(r.ids[0])!.key]!.why ?? ""
        #expect(why == "success rate 60% < threshold 62% (mean 92%, stdev 16%)", "\(why)")
        // Too little volume (99 calls < 100): not judged.
        var low = Rig(hosts: 5, config: c)
        low.step(to: 0, [])
        low.step(to: 1000, [(0, 99)] + Array(repeating: (ok: 100, failed: 0), count: 4))
        #expect(!low.ejected(0))
        // Four hosts: below minimum_hosts.
        var few = Rig(hosts: 4, config: c)
        few.step(to: 0, [])
        few.step(to: 1000, [(10, 90)] + Array(repeating: (ok: 100, failed: 0), count: 3))
        #expect(!few.ejected(0))
    }

    /// max ejection percent: of ten hosts failing, at most 30 % are ejected; with none allowed,
    /// none.
    @Test func maxEjectionPercent() {
        var c = Self.failurePercentage(hosts: 5)
        c.maxEjectionPercent = 30
        var r = Rig(hosts: 10, config: c)
        r.step(to: 0, [])
        r.step(to: 1000, Array(repeating: (ok: 0, failed: 100), count: 10))
        #expect((0..<10).filter { r.ejected($0) }.count == 3)
        c.maxEjectionPercent = 0
        var none = Rig(hosts: 10, config: c)
        none.step(to: 0, [])
        none.step(to: 1000, Array(repeating: (ok: 0, failed: 100), count: 10))
        #expect((0..<10).allSatisfy { !none.ejected($0) })
    }

    /// Enforcement 0 % judges and never ejects; no algorithm configured: nothing is counted.
    @Test func enforcementAndNoAlgorithm() {
        var c = Self.failurePercentage()
        c.failurePercentage?.enforcementPercentage = 0
        var r = Rig(hosts: 3, config: c)
        r.step(to: 0, [])
        r.step(to: 1000, [(0, 100), (100, 0), (100, 0)])
        #expect(!r.ejected(0))
        var off = Rig(hosts: 3, config: OutlierDetectionConfig())
        off.step(to: 0, [])
        off.step(to: 1000, [(0, 100), (100, 0), (100, 0)])
        #expect(!off.ejected(0) && off.od.intervalStart == nil)
    }

    /// A50's validation: percentages ≤ 100, positive interval.
    @Test func validation() {
        var c = OutlierDetectionConfig()
        #expect(c.problem == nil)
        c.maxEjectionPercent = 101
        #expect(c.problem?.contains("out of range") == true)
        c = OutlierDetectionConfig()
        c.intervalMs = 0
        #expect(c.problem != nil)
        c = Self.failurePercentage()
        c.failurePercentage?.threshold = 150
        #expect(c.problem?.contains("threshold 150") == true)
    }

    /// The tree (with its ejections) survives a keyframe.
    @Test func roundTripsThroughCoding() throws {
        var r = Rig(hosts: 3, config: Self.failurePercentage())
        r.step(to: 0, [])
        r.step(to: 1000, [(50, 50), (100, 0), (100, 0)])
        let data = try JSONEncoder().encode(AnyPolicy(r.od))
        let back = try JSONDecoder().decode(AnyPolicy.self, from: data)
        let od = try #require(back.policy as? OutlierDetection)
        #expect(od.isEjected(r.ids[0]) && od.addresses == r.od.addresses && od.config == r.od.config)
        #expect(od.describe(table: r.table).note == "1 of 3 ejected (at most 50%), sweep every 1.0s")
    }
}
