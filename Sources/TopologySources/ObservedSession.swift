import Foundation
import TopologyCore

/// The model of an *observed* session (`grpctop attach`; a proxy's admin API later): no engine,
/// no traffic — a source reports, the model applies. Events go through the same `EventPump` as
/// the engine's (one at a time, in arrival order), observers (the recorder) see each applied
/// event, and the dashboard and batch loops read copies of the model. Thread-safe.
public final class ObservedSession: @unchecked Sendable {
    private let lock = NSLock()
    private var model = Model()
    private var observers: [(TimedEvent, Model) -> Void] = []
    private let startNanos = DispatchTime.now().uptimeNanoseconds
    private lazy var pump = EventPump<TimedEvent, Effect>(
        apply: { [unowned self] timed in
            let effects = self.model.apply(timed)
            for o in self.observers { o(timed, self.model) }
            return effects
        },
        perform: { [unowned self] effect in
            // Nothing is driven: a picker or connects have no one to act on them; a channel
            // chosen in the Channels pane goes to the source.
            if case .watchChannel(let id) = effect { self.onWatchChannel?(id) }
        })

    /// Called (on the pump) when the user chose another channel to watch.
    private var onWatchChannel: ((Int64) -> Void)?

    public init() {}

    /// Where a chosen channel goes (the channelz source's `choose`); set before `start`.
    public func onChannelChosen(_ body: @escaping (Int64) -> Void) {
        lock.withLock { onWatchChannel = body }
    }

    /// Milliseconds since the session started: the time stamped on events.
    public var nowMs: Millis { Millis((DispatchTime.now().uptimeNanoseconds - startNanos) / 1_000_000) }

    /// Called with every applied event and the model after it (before `start`).
    public func observe(_ body: @escaping (TimedEvent, Model) -> Void) {
        lock.withLock { observers.append(body) }
    }

    public func submit(_ event: Event) {
        lock.withLock { pump.emit(TimedEvent(at: nowMs, event)) }
    }

    public func withModel<T>(_ body: (Model) throws -> T) rethrows -> T {
        try lock.withLock { try body(model) }
    }
}
