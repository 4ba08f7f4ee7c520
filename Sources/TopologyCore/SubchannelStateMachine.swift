/// The connectivity state machine of one subchannel, without I/O (the transport runs it on its
/// event loop and carries out the actions it returns). States and transitions follow grpc/grpc
/// `doc/connectivity-semantics-and-api.md`; backoff follows `doc/connection-backoff.md`.
///
/// ```
///                 connect()
///        ┌──────┐ ─────────► ┌────────────┐  all addresses failed  ┌───────────────────┐
///        │ IDLE │            │ CONNECTING │ ─────────────────────► │ TRANSIENT_FAILURE │
///        └──────┘ ◄──┐       └────────────┘                        └───────────────────┘
///           ▲        │             │ SETTINGS received                   │ backoff elapsed
///           │        │             ▼                                     │ (→ IDLE; the LB
///           │        │        ┌───────┐                                  │  policy reconnects)
///           │        └─────── │ READY │                                  │
///           │  GOAWAY /       └───────┘                                  │
///           │  connection closed                                         │
///           └────────────────────────────────────────────────────────────┘
///  shutDown() from any state → SHUTDOWN (final)
/// ```
/// A connect attempt tries the endpoint's addresses in order; each attempt's timeout is
/// max(backoff deadline, MIN_CONNECT_TIMEOUT).
///
/// The backoff restarts once a READY connection has proven itself: an RPC completed on it, or
/// it stayed up for INITIAL_BACKOFF. A connection that goes away sooner (a server that sends
/// SETTINGS and then GOAWAY, or resets) counts as a failed attempt: TRANSIENT_FAILURE and the
/// next backoff step, so such a server cannot make the client reconnect in a tight loop
/// (grpc-go likewise resets its backoff only after a connection was usable; C-core computes the
/// next attempt time when an attempt starts).
public struct SubchannelStateMachine: Sendable {
    public enum State: Sendable, Equatable {
        case idle
        case connecting(addressIndex: Int)
        case ready(addressIndex: Int)
        case transientFailure(retryAt: Millis)
        case shutdown

        public var connectivity: ConnectivityState {
            switch self {
            case .idle: .idle
            case .connecting: .connecting
            case .ready: .ready
            case .transientFailure: .transientFailure
            case .shutdown: .shutdown
            }
        }
    }

    /// What the transport must do after an input.
    public enum Action: Sendable, Equatable {
        /// Open a connection to this address, giving up after `timeoutMs`.
        case startConnect(EndpointAddress, timeoutMs: Int64)
        /// Call `backoffElapsed` after this delay.
        case scheduleBackoff(delayMs: Int64)
        /// Stop opening streams on the current connection; let in-flight ones finish, then close it.
        case drainConnection
        /// Close the current connection (if any) now.
        case closeConnection
    }

    /// A state change to report as a `SubchannelEvent.stateChanged`.
    public struct Transition: Sendable, Equatable {
        public var to: ConnectivityState
        public var reason: String?
        public var backoffMs: Int64?
    }

    public struct Output: Sendable, Equatable {
        public var transition: Transition?
        public var actions: [Action]
        static let none = Output(transition: nil, actions: [])
    }

    public private(set) var state: State = .idle
    public let addresses: [EndpointAddress]
    public var backoff: ConnectionBackoff
    /// When the current backoff period ends (start of the attempt + backoff), as the spec's
    /// `current_deadline`; used for the connect timeout.
    private var attemptDeadline: Millis = 0
    /// When the current connection became READY, while it has not proven itself (see above).
    private var unprovenSince: Millis?

    public init(addresses: [EndpointAddress], backoff: ConnectionBackoff = ConnectionBackoff()) {
        precondition(!addresses.isEmpty, "a subchannel needs at least one address")
        self.addresses = addresses
        self.backoff = backoff
    }

    /// The LB policy wants a connection.
    public mutating func connect(now: Millis) -> Output {
        switch state {
        case .idle:
            state = .connecting(addressIndex: 0)
            attemptDeadline = now + Int64(backoff.initialMs)
            return Output(
                transition: Transition(to: .connecting, reason: nil, backoffMs: nil),
                actions: [.startConnect(addresses[0], timeoutMs: backoff.connectTimeout(untilDeadlineMs: attemptDeadline - now))]
            )
        case .connecting, .ready, .transientFailure, .shutdown:
            // In backoff the next attempt happens when it ends; otherwise nothing to do.
            return .none
        }
    }

    /// The server's SETTINGS arrived on the new connection: it is usable.
    public mutating func connectionReady(now: Millis = 0) -> Output {
        switch state {
        case .connecting(let i):
            state = .ready(addressIndex: i)
            unprovenSince = now
            return Output(transition: Transition(to: .ready, reason: nil, backoffMs: nil), actions: [])
        case .idle, .ready, .transientFailure, .shutdown:
            return .none
        }
    }

    /// An RPC completed on the READY connection: it works, so the backoff restarts.
    public mutating func connectionUsed() {
        guard unprovenSince != nil, case .ready = state else { return }
        unprovenSince = nil
        backoff.reset()
    }

    /// A READY connection went away (GOAWAY or closed). True when it never proved itself: no RPC
    /// completed on it and it lasted less than INITIAL_BACKOFF. Otherwise the backoff restarts.
    private mutating func lostUnproven(now: Millis) -> Bool {
        defer { unprovenSince = nil }
        guard let since = unprovenSince else { return false }
        if Double(now - since) < backoff.initialMs { return true }
        backoff.reset()
        return false
    }

    /// The attempt that reached READY but went away at once: TRANSIENT_FAILURE, next backoff step.
    private mutating func failedAfterReady(reason: String, now: Millis, unitRandom: () -> Double, actions: [Action]) -> Output {
        let delay = backoff.nextDelay(unitRandom: unitRandom)
        state = .transientFailure(retryAt: now + delay)
        return Output(
            transition: Transition(to: .transientFailure, reason: "\(reason) right after SETTINGS, before any RPC completed (backing off)", backoffMs: delay),
            actions: actions + [.scheduleBackoff(delayMs: delay)]
        )
    }

    /// The connection attempt to the current address failed (refused, timed out, TLS error…).
    public mutating func connectFailed(reason: String, now: Millis, unitRandom: () -> Double) -> Output {
        switch state {
        case .connecting(let i):
            if i + 1 < addresses.count {
                state = .connecting(addressIndex: i + 1)
                return Output(
                    transition: nil,
                    actions: [.startConnect(addresses[i + 1], timeoutMs: backoff.connectTimeout(untilDeadlineMs: attemptDeadline - now))]
                )
            }
            let delay = backoff.nextDelay(unitRandom: unitRandom)
            state = .transientFailure(retryAt: now + delay)
            return Output(
                transition: Transition(to: .transientFailure, reason: reason, backoffMs: delay),
                actions: [.scheduleBackoff(delayMs: delay)]
            )
        case .idle, .ready, .transientFailure, .shutdown:
            return .none
        }
    }

    /// The backoff timer fired: the subchannel becomes IDLE and the LB policy decides whether
    /// to reconnect (gRFC A62).
    public mutating func backoffElapsed(now: Millis) -> Output {
        switch state {
        case .transientFailure:
            state = .idle
            return Output(transition: Transition(to: .idle, reason: "backoff elapsed", backoffMs: nil), actions: [])
        case .idle, .connecting, .ready, .shutdown:
            return .none
        }
    }

    /// A new connection was asked for: like a GOAWAY, the old connection drains and the
    /// subchannel goes IDLE (its policy reconnects it).
    public mutating func reconnectRequested() -> Output {
        guard case .ready = state else { return .none }
        state = .idle
        return Output(transition: Transition(to: .idle, reason: "new connection requested", backoffMs: nil), actions: [.drainConnection])
    }

    /// The peer sent GOAWAY: no new streams on this connection; in-flight ones finish on it.
    public mutating func goAwayReceived(code: String, now: Millis = 0, unitRandom: () -> Double = { 0.5 }) -> Output {
        switch state {
        case .ready:
            if lostUnproven(now: now) {
                return failedAfterReady(reason: "GOAWAY \(code)", now: now, unitRandom: unitRandom, actions: [.drainConnection])
            }
            state = .idle
            return Output(
                transition: Transition(to: .idle, reason: "GOAWAY \(code)", backoffMs: nil),
                actions: [.drainConnection]
            )
        case .connecting:
            // A GOAWAY before SETTINGS: the attempt failed. Treat as a connect failure by the caller.
            return .none
        case .idle, .transientFailure, .shutdown:
            return .none
        }
    }

    /// The connection closed (reset, keepalive timeout, EOF…).
    public mutating func connectionClosed(reason: String, now: Millis, unitRandom: () -> Double) -> Output {
        switch state {
        case .ready:
            if lostUnproven(now: now) {
                return failedAfterReady(reason: reason, now: now, unitRandom: unitRandom, actions: [])
            }
            state = .idle
            return Output(transition: Transition(to: .idle, reason: reason, backoffMs: nil), actions: [])
        case .connecting:
            return connectFailed(reason: reason, now: now, unitRandom: unitRandom)
        case .idle, .transientFailure, .shutdown:
            return .none
        }
    }

    /// The LB policy no longer wants this subchannel.
    public mutating func shutDown() -> Output {
        switch state {
        case .shutdown:
            return .none
        case .idle, .connecting, .ready, .transientFailure:
            state = .shutdown
            return Output(
                transition: Transition(to: .shutdown, reason: "subchannel shutdown", backoffMs: nil),
                actions: [.drainConnection]
            )
        }
    }
}
