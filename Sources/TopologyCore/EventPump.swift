/// The engine's event loop discipline: events are applied one at a time, in arrival order, and
/// all of an event's effects are carried out before the next event is applied. An effect whose
/// consequence is a new event (a subchannel that reports CONNECTING while it is told to connect)
/// queues that event behind; it is never applied in the middle of another one. So the order the
/// model sees — and a recording keeps — is the order a replay reproduces.
///
/// Not thread-safe: it lives on one event loop.
public final class EventPump<Input, Output> {
    private var pending: [Input] = []
    private var head = 0
    private var running = false
    private let apply: (Input) -> [Output]
    private let perform: (Output) -> Void

    /// - Parameters:
    ///   - apply: applies one input (the model) and returns its effects.
    ///   - perform: carries out one effect; it may call `emit` (queued, not nested).
    public init(apply: @escaping (Input) -> [Output], perform: @escaping (Output) -> Void) {
        self.apply = apply
        self.perform = perform
    }

    /// Inputs waiting behind the one being applied.
    public var queued: Int { pending.count - head }

    public func emit(_ input: Input) {
        pending.append(input)
        guard !running else { return }
        running = true
        defer { running = false }
        while head < pending.count {
            let next = pending[head]
            head += 1
            for effect in apply(next) { perform(effect) }
            if head > 64 && head * 2 > pending.count {
                pending.removeFirst(head)
                head = 0
            }
        }
        pending.removeAll(keepingCapacity: true)
        head = 0
    }
}
