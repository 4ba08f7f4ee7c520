import Foundation
import TopologyCore

/// The lifecycle every watching resolver shares — the Kubernetes and etcd ones today, the Consul
/// and xDS ones to come: one task that lists then watches, the sink its events go to, the user's
/// `r` (relist: the current watch is cancelled), jittered exponential backoff after a failure
/// (reset once a watch is up again), "watch down since …" while it is down, and stop.
///
/// The resolver keeps what is its own (what to list, how to watch, what a failure means); the
/// loop's task-confined state (`backoff`, `downSince`) is only touched from that task.
public final class WatchLoop: @unchecked Sendable {
    private let lock = NSLock()
    private var sink: (@Sendable (Event) -> Void)?
    private var task: Task<Void, Never>?
    private var relist = false
    private var cancelWatch: (@Sendable () -> Void)?

    // Task-confined.
    public var backoff: ConnectionBackoff
    /// When the watch went down; nil while it is up.
    public private(set) var downSince: Date?

    /// Backoff from 1 s doubling to `maxBackoffMs`, ±20 %.
    public init(maxBackoffMs: Double) {
        backoff = ConnectionBackoff(initialMs: 1000, multiplier: 2, jitter: 0.2, maxMs: maxBackoffMs, minConnectTimeoutMs: 0)
    }

    /// Starts `body` (the resolver's list-and-watch loop) on its own task.
    public func start(_ sink: @escaping @Sendable (Event) -> Void, body: @escaping @Sendable () async -> Void) {
        lock.withLock { self.sink = sink }
        let t = Task { await body() }
        lock.withLock { task = t }
    }

    /// Stops delivering events and cancels the loop (and its current watch); the task, to await.
    @discardableResult
    public func stop() -> Task<Void, Never>? {
        let (t, cancel) = lock.withLock { () -> (Task<Void, Never>?, (@Sendable () -> Void)?) in
            sink = nil
            return (task, cancelWatch)
        }
        t?.cancel()
        cancel?()
        return t
    }

    /// `stop()`, then `cleanup` (closing the resolver's HTTP client) once the loop has ended;
    /// waits for both at most 3 s.
    public func stop(then cleanup: @escaping @Sendable () async -> Void) {
        let t = stop()
        let done = DispatchSemaphore(value: 0)
        Task {
            await t?.value
            await cleanup()
            done.signal()
        }
        _ = done.wait(timeout: .now() + 3)
    }

    public func push(_ e: Event) { lock.withLock { sink }?(e) }

    // MARK: - relist (`r`)

    /// The user asked for a fresh answer: the current watch is cancelled and the loop lists again.
    public func requestRelist() {
        let cancel = lock.withLock {
            relist = true
            return cancelWatch
        }
        cancel?()
    }

    public var relistRequested: Bool { lock.withLock { relist } }

    /// Whether a relist was asked for since the last call (and clears it).
    public func takeRelistRequest() -> Bool {
        lock.withLock {
            defer { relist = false }
            return relist
        }
    }

    /// The watch now running and how to cancel it (nil when it ended). A relist asked for
    /// meanwhile cancels it at once.
    public func watching(cancel: (@Sendable () -> Void)?) {
        let now = lock.withLock {
            cancelWatch = cancel
            return relist && cancel != nil
        }
        if now { cancel?() }
    }

    // MARK: - down and up

    /// A failure: the watch is down (since now, if it was up); the delay before the next try.
    public func failed() -> Int64 {
        if downSince == nil { downSince = Date() }
        return backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) })
    }

    /// The next backoff delay without marking the watch down (a watch that ended at once, empty).
    public func nextDelay() -> Int64 { backoff.nextDelay(unitRandom: { Double.random(in: 0..<1) }) }

    /// A watch is up (again): backoff starts over at 1 s; true if it had been down.
    @discardableResult
    public func up() -> Bool {
        backoff.reset()
        defer { downSince = nil }
        return downSince != nil
    }

    /// Marks the watch up without touching the backoff (a successful list).
    public func listed() { downSince = nil }

    /// Sleeps `ms`; false when the loop was cancelled meanwhile.
    public func sleep(ms: Int64) async -> Bool {
        do { try await Task.sleep(for: .milliseconds(ms)); return true } catch { return false }
    }

    /// The resolver's `watch` status: "down since HH:MM:SS UTC, retry in 4s", or `up`.
    public func watchStatus(retryInMs: Int64?, up: String) -> String {
        guard let downSince else { return up }
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        return "down since \(f.string(from: downSince)) UTC" + (retryInMs.map { ", retry in \(formatDuration($0))" } ?? "")
    }
}
