/// One HTTP/2 client connection's lifecycle, as a state machine the connection handler drives
/// (`ClientConnectionHandler`); pure, so its transitions are unit-tested without a channel.
///
/// ```
///  awaitingSettings ──SETTINGS──► open ──GOAWAY (peer) / drain (local)──► goingAway ──┐
///         │                        │                                                  │ last stream
///         └── drain / GOAWAY ──────┴──────────► goingAway                             ▼ ended, or
///  any ─────────── an error, a timeout, the peer's close ─────────────────────► closed(reason)
/// ```
/// Only `open` accepts new streams. In `goingAway` the streams in flight finish, then the
/// connection closes. The reason a connection ended is decided once (the first cause wins,
/// except a timeout the handler imposes), before the channel has finished closing.
struct ConnectionLifecycle: Equatable {
    enum Phase: Equatable {
        case awaitingSettings
        case open
        /// No new streams: the peer sent GOAWAY, and/or we are draining (shutdown, renewal).
        case goingAway(peer: Bool, local: Bool)
        case closed(reason: String)
    }

    private(set) var phase: Phase = .awaitingSettings
    /// The server's SETTINGS arrived at some point (history, not state: a connection that
    /// closes later is a lost connection, one that never got them a failed attempt).
    private(set) var settingsReceived = false
    /// Why the connection is closing, once known.
    private(set) var closeReason: String?

    var acceptsStreams: Bool { phase == .open }
    var isClosed: Bool { if case .closed = phase { true } else { false } }
    /// GOAWAY received, draining, or closed: no new stream will ever open here.
    var isGoingAway: Bool {
        switch phase {
        case .goingAway, .closed: true
        case .awaitingSettings, .open: false
        }
    }
    var goAwayReceived: Bool { if case .goingAway(true, _) = phase { true } else { false } }

    /// The server's SETTINGS; true for the first.
    mutating func receivedSettings() -> Bool {
        defer { settingsReceived = true }
        if phase == .awaitingSettings { phase = .open }
        return !settingsReceived
    }

    /// A GOAWAY; true for the first.
    mutating func receivedGoAway() -> Bool {
        switch phase {
        case .awaitingSettings, .open:
            phase = .goingAway(peer: true, local: false)
            return true
        case .goingAway(let peer, let local):
            phase = .goingAway(peer: true, local: local)
            return !peer
        case .closed:
            return false
        }
    }

    /// We stop opening streams; false when already draining or closed.
    mutating func drain() -> Bool {
        switch phase {
        case .awaitingSettings, .open:
            phase = .goingAway(peer: false, local: true)
            return true
        case .goingAway(let peer, let local):
            phase = .goingAway(peer: peer, local: true)
            return !local
        case .closed:
            return false
        }
    }

    /// The cause of the coming close; the first one wins unless `overriding` (a timeout the
    /// handler itself imposes: keepalive, drain grace).
    mutating func closing(because reason: String, overriding: Bool = false) {
        if overriding || closeReason == nil { closeReason = reason }
    }

    /// Going away and no stream left: the reason to close now, or nil to stay.
    func idleCloseReason(streamsEmpty: Bool) -> String? {
        guard streamsEmpty, case .goingAway(let peer, _) = phase else { return nil }
        return closeReason ?? (peer ? "GOAWAY drained" : "subchannel shutdown")
    }

    /// The channel closed: the reason to report (once), nil if already closed.
    /// `plaintextHint`: what to add when it closed before SETTINGS (a TLS port?).
    mutating func closed(streamsEmpty: Bool, beforeSettingsHint: String) -> String? {
        if isClosed { return nil }
        if closeReason == nil && !settingsReceived {
            closeReason = "connection closed before the server's HTTP/2 SETTINGS" + beforeSettingsHint
        }
        let reason = closeReason ?? (streamsEmpty && isGoingAway ? "connection closed" : "connection reset")
        phase = .closed(reason: reason)
        return reason
    }
}
