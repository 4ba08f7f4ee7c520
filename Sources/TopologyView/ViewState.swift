import TopologyCore

/// The dashboard's panes.
public enum Pane: Int, Sendable, CaseIterable {
    case endpoints, subchannels, traffic, events
    /// An observed process's channels (`grpctop attach`): pick the one to watch.
    case channels
    /// An observed process's servers and the client connections they hold.
    case servers
    /// An xDS target's clusters → priorities → localities.
    case xds
    /// A proxy's hosts beside the client (`--envoy-admin`).
    case proxy

    public var title: String {
        switch self {
        case .endpoints: "Endpoints"
        case .subchannels: "Subchannels"
        case .traffic: "Traffic per pod"
        case .events: "Events"
        case .channels: "Channels"
        case .servers: "Servers"
        case .xds: "xDS"
        case .proxy: "Proxy"
        }
    }

    /// The panes on screen, in Tab order. Our own client: Endpoints, Subchannels, Traffic,
    /// Events. An observed process (channelz): its Channels take the Endpoints' place (an
    /// observed channel's endpoints are its subchannels' addresses), and its Servers come
    /// before Events when it serves anything.
    public static func order(_ m: Model) -> [Pane] {
        if m.isXDS { return [.xds, .endpoints, .subchannels, .traffic, .events] }
        guard let process = m.observedProcess else {
            return m.proxy == nil ? [.endpoints, .subchannels, .traffic, .events] : [.endpoints, .subchannels, .traffic, .proxy, .events]
        }
        return process.servers.isEmpty ? [.channels, .subchannels, .traffic, .events] : [.channels, .subchannels, .traffic, .servers, .events]
    }
}

/// What the details view shows.
public enum DetailTarget: Equatable, Sendable {
    case subchannel(SubchannelID)
    case backend(String)
    case endpoint(EndpointKey)
    /// An observed server (by channelz id), or one of its client connections.
    case server(Int64)
    case serverSocket(server: Int64, socket: Int64)
}

/// What the engine must do because of a key (the rest of the keys only change the view).
public enum ViewCommand: Equatable, Sendable {
    case quit
    case setPolicy(LBPolicy)
    /// Health checking on with this service, or off (nil).
    case setHealthCheck(String?)
    case setTraffic(TrafficSetting)
    case reconnect(SubchannelID)
    case resolveNow
    case nextScenario
    case marker(String)
    case replay(ReplayCommand)
    /// Watch this channel of the observed process (the Channels pane's Enter).
    case watchChannel(Int64)
}

/// What a key asks of the replay clock.
public enum ReplayCommand: Equatable, Sendable {
    case togglePause
    case seek(by: Millis)
    case goTo(Millis)
    case faster, slower
    case start, end
    case nextMarker, previousMarker
}

/// Where a replay stands, for the footer's timeline (set by the replay loop before each frame).
public struct Timeline: Equatable, Sendable {
    public var position: Millis
    public var duration: Millis
    public var speed: Double
    public var paused: Bool
    public var markers: [Millis]
    public init(position: Millis, duration: Millis, speed: Double, paused: Bool, markers: [Millis]) {
        self.position = position
        self.duration = duration
        self.speed = speed
        self.paused = paused
        self.markers = markers
    }
}

/// The user's view of the model: focus, selection, sorting, filter, overlays. UI-local, so a
/// replay can be browsed with its own view state.
public struct ViewState: Sendable, Equatable {
    public var focus: Pane = .traffic
    public var selected: [Pane: Int] = [:]
    public var scroll: [Pane: Int] = [:]
    public var sortColumn: [Pane: Int] = [:]
    public var sortReversed: [Pane: Bool] = [:]
    public var filter = ""
    public var editingFilter = false
    public var details: DetailTarget?
    public var showHelp = false
    public var paused = false
    public var colors = true
    /// Page size of the focused pane at the last render (for PgUp/PgDn).
    public var pageSize: [Pane: Int] = [:]
    /// Set in `grpctop replay`: the replay keys are in force and the footer shows the timeline.
    public var timeline: Timeline?
    /// The `g` prompt of a replay: the time typed so far.
    public var goToText: String?
    /// The `m` prompt: the marker's label typed so far.
    public var markerText: String?
    /// "REC 1.2 MB" while recording (set by the loop), shown in the header.
    public var recording: String?

    public init() {}

    /// Handles one key, given the rows the panes show now. Returns engine commands.
    public mutating func handle(_ key: Key, rows: PaneRows, model: Model) -> [ViewCommand] {
        if editingFilter {
            switch key {
            case .enter: editingFilter = false
            case .escape: editingFilter = false; filter = ""
            case .backspace: if !filter.isEmpty { filter.removeLast() }
            case .char(let c): filter.append(c)
            case .ctrlC: return [.quit]
            default: break
            }
            clampAll(rows)
            return []
        }
        if var text = markerText {
            switch key {
            case .enter:
                markerText = nil
                return [.marker(text)]
            case .escape: markerText = nil
            case .backspace: if !text.isEmpty { text.removeLast() }; markerText = text
            case .char(let c): if text.count < 80 { text.append(c) }; markerText = text
            case .ctrlC: return [.quit]
            default: break
            }
            return []
        }
        if var text = goToText {
            switch key {
            case .enter:
                goToText = nil
                if let ms = Self.parseTime(text) { return [.replay(.goTo(ms))] }
            case .escape: goToText = nil
            case .backspace: if !text.isEmpty { text.removeLast() }; goToText = text
            case .char(let c) where c.isNumber || c == ":" || c == "." || c == "s" || c == "m" || c == "h": text.append(c); goToText = text
            case .ctrlC: return [.quit]
            default: break
            }
            return []
        }
        if key == .resize { return [] }
        guard let action = KeyMap.action(for: key, demo: model.isDemo, replay: timeline != nil, observed: model.isObserved, policyFixed: model.isXDS) else { return [] }
        if showHelp && action != .quit && action != .help {
            if action == .back { showHelp = false }
            return []
        }
        let count = rows.count(focus)
        let page = max(1, (pageSize[focus] ?? 10) - 1)
        switch action {
        case .quit: return [.quit]
        case .help: showHelp.toggle()
        case .focusNext, .focusPrevious:
            let order = Pane.order(model)
            let i = order.firstIndex(of: focus) ?? 0
            focus = order[(i + (action == .focusNext ? 1 : order.count - 1)) % order.count]
        case .up: move(-1, count: count)
        case .down: move(1, count: count)
        case .pageUp: move(-page, count: count)
        case .pageDown: move(page, count: count)
        case .top: selected[focus] = 0
        case .bottom: selected[focus] = max(0, count - 1)
        case .details:
            if details != nil { break }
            if focus == .channels {
                // Enter on a channel watches it (the replay shows what was recorded).
                if rows.channels.indices.contains(selected[.channels] ?? 0), timeline == nil {
                    let id = rows.channels[selected[.channels] ?? 0].id
                    if id != model.observedProcess?.watched { return [.watchChannel(id)] }
                }
                break
            }
            details = rows.target(focus, index: selected[focus] ?? 0)
        case .back:
            if details != nil { details = nil } else { filter = "" }
        case .sort:
            let n = PaneRows.sortColumns(focus).count
            if n > 0 { sortColumn[focus] = ((sortColumn[focus] ?? 0) + 1) % n }
        case .sortReverse: sortReversed[focus] = !(sortReversed[focus] ?? false)
        case .filter: editingFilter = true
        case .pause: paused.toggle()
        case .cyclePolicy: return [.setPolicy(model.policy.next)]
        case .toggleHealthCheck: return [.setHealthCheck(model.session?.healthCheckService == nil ? "" : nil)]
        case .faster: return [.setTraffic(model.traffic.scaled(up: true))]
        case .slower: return [.setTraffic(model.traffic.scaled(up: false))]
        case .colors: colors.toggle()
        case .reconnect:
            if let id = reconnectTarget(rows: rows, model: model) { return [.reconnect(id)] }
        case .nextScenario: return [.nextScenario]
        case .resolveNow: return [.resolveNow]
        case .replayPause: return [.replay(.togglePause)]
        case .seekBack: return [.replay(.seek(by: -10_000))]
        case .seekForward: return [.replay(.seek(by: 10_000))]
        case .seekBackLong: return [.replay(.seek(by: -60_000))]
        case .seekForwardLong: return [.replay(.seek(by: 60_000))]
        case .replaySlower: return [.replay(.slower)]
        case .replayFaster: return [.replay(.faster)]
        case .replayStart: return [.replay(.start)]
        case .replayEnd: return [.replay(.end)]
        case .nextMarker: return [.replay(.nextMarker)]
        case .previousMarker: return [.replay(.previousMarker)]
        case .goToTime: goToText = ""
        case .marker: markerText = ""
        }
        clampAll(rows)
        return []
    }

    /// A time typed at the `g` prompt: `mm:ss`, `h:mm:ss`, or a duration (`90s`, `2m`, `1.5m`).
    public static func parseTime(_ text: String) -> Millis? {
        if text.contains(":") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard (2...3).contains(parts.count), let secs = Double(parts.last!), secs >= 0, secs < 60 else { return nil }
            var total = secs
            var mult = 60.0
            for p in parts.dropLast().reversed() {
                guard let v = Int(p), v >= 0 else { return nil }
                total += Double(v) * mult
                mult *= 60
            }
            guard total * 1000 <= Double(DurationText.maxMillis) else { return nil }
            return Millis(total * 1000)
        }
        return DurationText.parseMillis(text)
    }

    /// The subchannel `x` renews: the one in details, else the selected row of the subchannels
    /// pane, else the selected endpoint's, else the only live one.
    func reconnectTarget(rows: PaneRows, model: Model) -> SubchannelID? {
        if case .subchannel(let id)? = details { return id }
        if focus == .subchannels, case .subchannel(let id)? = rows.target(.subchannels, index: selected[.subchannels] ?? 0) { return id }
        if focus == .endpoints, case .endpoint(let key)? = rows.target(.endpoints, index: selected[.endpoints] ?? 0) {
            return model.subchannel(for: key)?.id
        }
        let live = model.subchannelRows.filter { $0.state != .shutdown }
        return live.count == 1 ? live[0].id : nil
    }

    private mutating func move(_ delta: Int, count: Int) {
        let cur = selected[focus] ?? 0
        selected[focus] = max(0, min(max(0, count - 1), cur + delta))
    }

    mutating func clampAll(_ rows: PaneRows) {
        for p in Pane.allCases {
            let n = rows.count(p)
            if let s = selected[p], s >= n { selected[p] = max(0, n - 1) }
        }
    }
}
