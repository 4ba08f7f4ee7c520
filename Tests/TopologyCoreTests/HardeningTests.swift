import Testing
@testable import TopologyCore

/// Numbers from flags, prompts and files are range-checked before anything multiplies or adds
/// them (issue 15: a duration of 1e17 s trapped converting to Int64).
@Suite struct RangeCheckTests {
    @Test func durationsHaveAnUpperBound() {
        #expect(DurationText.parse("500ms") == .success(500))
        #expect(DurationText.parse("1.5m") == .success(90_000))
        #expect(DurationText.parse("366h") == .success(366 * 3_600_000))
        #expect(DurationText.parse("8784h") == .success(DurationText.maxMillis))
        for text in ["1e17", "1e16s", "1e300", "8785h", "31622401s", "99999999999999999999999999", "1e11"] {
            #expect(DurationText.parse(text) == .failure(.tooLong), "\(text)")
            #expect(DurationText.parseMillis(text) == nil)
        }
        for text in ["", "-1s", "nan", "inf", "1x", "s", "ms", String(repeating: "9", count: 100)] {
            #expect(DurationText.parse(text) == .failure(.notADuration), "\(text)")
        }
    }

    @Test func byteSizes() {
        #expect(ByteSizeText.parse("4MiB") == 4 << 20)
        #expect(ByteSizeText.parse("512KiB") == 512 << 10)
        #expect(ByteSizeText.parse("1048576") == 1 << 20)
        #expect(ByteSizeText.parse("2GB") == 2_000_000_000)
        for bad in ["", "-1", "1.5MiB", "99999999999999999999GiB", "9223372036854775807GiB", "x"] {
            #expect(ByteSizeText.parse(bad) == nil, "\(bad)")
        }
    }

    /// Counters read from a file: out of range is named; adding never traps.
    @Test func countersAreCheckedAndAddedSaturating() {
        var d = RPCDelta()
        d.started = -1
        #expect(d.problem == "started is -1 (a counter is 0 to \(RPCDelta.maxCount))")
        d.started = Int.max
        #expect(d.problem?.hasPrefix("started is 9223372036854775807") == true)
        d.started = 1
        d.codes = [300: 1]
        #expect(d.problem == "status code 300 is not one (0-255)")
        d.codes = [GRPCStatusName.unfinished: 2]
        #expect(d.problem == nil)
        var total = RPCDelta()
        total.started = .max - 1
        total.addCounts(d)
        #expect(total.started == .max)
    }
}

/// `--fail-on-error`: the gate passes only on evidence (issue 15: "0 RPCs, 0 ok, 0 failed" passed).
@Suite struct GateTests {
    func summary(ok: Int, failed: Int, unfinished: Int = 0) -> Summary {
        var m = Model()
        _ = m.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(target: "t", resolver: "static", policy: .roundRobin, rpc: "x",
                                                                      identityHeader: nil, traffic: .rate(1), startedAt: 0, host: "h", version: "v"))))
        var tick = StatsTick()
        var d = RPCDelta()
        d.started = ok + failed
        d.succeeded = ok
        d.failed = failed
        if failed - unfinished > 0 { d.codes[14] = failed - unfinished }
        if unfinished > 0 { d.codes[GRPCStatusName.unfinished] = unfinished }
        tick.unassigned = d
        _ = m.apply(TimedEvent(at: 250, .stats(tick)))
        return Summary(m)
    }

    @Test func noEvidenceFailsTheGate() {
        #expect(summary(ok: 0, failed: 0).gateFailure == "no RPC completed (is the server answering?)")
        #expect(summary(ok: 10, failed: 0).gateFailure == nil)
        #expect(summary(ok: 10, failed: 3).gateFailure == "3 RPCs failed")
        #expect(summary(ok: 0, failed: 5, unfinished: 5).gateFailure == "5 unfinished when the run ended (no answer)")
        #expect(summary(ok: 1, failed: 3, unfinished: 2).gateFailure == "1 RPC failed, 2 unfinished when the run ended (no answer)")
    }
}
