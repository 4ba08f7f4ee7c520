/// Connection backoff as grpc/grpc `doc/connection-backoff.md` specifies it:
///
/// ```
/// ConnectWithBackoff()
///   current_backoff = INITIAL_BACKOFF
///   current_deadline = now() + INITIAL_BACKOFF
///   while (TryConnect(Max(current_deadline, now() + MIN_CONNECT_TIMEOUT)) != SUCCESS)
///     SleepUntil(current_deadline)
///     current_backoff = Min(current_backoff * MULTIPLIER, MAX_BACKOFF)
///     current_deadline = now() + current_backoff + UniformRandom(-JITTER * current_backoff, JITTER * current_backoff)
/// ```
/// INITIAL_BACKOFF 1 s, MULTIPLIER 1.6, JITTER 0.2, MAX_BACKOFF 120 s, MIN_CONNECT_TIMEOUT 20 s.
/// The sequence restarts when a connection becomes READY (the server's SETTINGS arrived).
/// All durations are milliseconds. The random source is injected so tests are exact.
public struct ConnectionBackoff: Sendable {
    public var initialMs: Double = 1_000
    public var multiplier: Double = 1.6
    public var jitter: Double = 0.2
    public var maxMs: Double = 120_000
    public var minConnectTimeoutMs: Int64 = 20_000

    /// The un-jittered backoff that the next failure will use.
    private(set) var current: Double
    private(set) public var attempts: Int = 0

    public init() { self.current = 1_000 }

    public init(initialMs: Double, multiplier: Double, jitter: Double, maxMs: Double, minConnectTimeoutMs: Int64) {
        self.initialMs = initialMs
        self.multiplier = multiplier
        self.jitter = jitter
        self.maxMs = maxMs
        self.minConnectTimeoutMs = minConnectTimeoutMs
        self.current = initialMs
    }

    /// The delay before the next attempt, after a failed one. `unitRandom` returns a value in
    /// [0, 1); the first failure waits INITIAL_BACKOFF (no jitter, as the pseudo-code does).
    public mutating func nextDelay(unitRandom: () -> Double) -> Int64 {
        attempts += 1
        if attempts == 1 {
            current = initialMs
            return Int64(initialMs.rounded())
        }
        current = min(current * multiplier, maxMs)
        let spread = jitter * current
        let delay = current + (unitRandom() * 2 - 1) * spread
        return Int64(max(0, delay).rounded())
    }

    /// The connect timeout for an attempt that starts now: max(deadline, now + MIN_CONNECT_TIMEOUT),
    /// expressed relative to now.
    public func connectTimeout(untilDeadlineMs: Int64) -> Int64 { max(untilDeadlineMs, minConnectTimeoutMs) }

    public mutating func reset() {
        attempts = 0
        current = initialMs
    }
}
