import Foundation
import TopologyCore

/// The resolver benchmarks' model: receives a resolver's answers (on the resolver's thread),
/// applies them, times each apply and arrival, and lets the benchmark wait for a state.
final class ResolverSink: @unchecked Sendable {
    struct State {
        var model = Model()
        var updates = 0
        var lastApplyMs = 0.0
        var lastArrival: UInt64 = 0
        var lastFailure: String?
    }
    private let cond = NSCondition()
    private var state = State()
    private var at: Millis = 0

    init(session: Event) { _ = state.model.apply(TimedEvent(at: 0, session)) }

    func receive(_ e: Event) {
        cond.lock()
        defer { cond.unlock() }
        if case .resolverFailed(let f) = e { state.lastFailure = f.message }
        guard case .resolverUpdated = e else { return }
        at += 1
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = state.model.apply(TimedEvent(at: at, e))
        let t1 = DispatchTime.now().uptimeNanoseconds
        state.lastApplyMs = Double(t1 - t0) / 1e6
        state.lastArrival = t1
        state.updates += 1
        cond.broadcast()
    }

    func read<T>(_ body: (State) -> T) -> T {
        cond.lock()
        defer { cond.unlock() }
        return body(state)
    }

    /// Waits (≤ 10 s) until `predicate` holds; returns when the update that made it hold arrived.
    func wait(_ what: String, _ predicate: (State) -> Bool) throws -> UInt64 {
        cond.lock()
        defer { cond.unlock() }
        let end = Date().addingTimeInterval(10)
        while !predicate(state) {
            if !cond.wait(until: end) {
                throw BenchFailure("bench: no \(what) within 10 s (\(state.model.resolver.endpoints.count) endpoints\(state.lastFailure.map { "; last error: \($0)" } ?? ""))")
            }
        }
        return state.lastArrival
    }
}

/// A benchmark that could not run: one line, exit 1.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
