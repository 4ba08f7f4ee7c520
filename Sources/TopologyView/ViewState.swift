import TopologyCore

/// The dashboard's panes, in Tab order.
public enum Pane: Int, Sendable, CaseIterable {
    case endpoints, subchannels, traffic, events

    public var title: String {
        switch self {
        case .endpoints: "Endpoints"
        case .subchannels: "Subchannels"
        case .traffic: "Traffic per pod"
        case .events: "Events"
        }
    }
}

/// What the details view shows.
public enum DetailTarget: Equatable, Sendable {
    case subchannel(SubchannelID)
    case backend(String)
    case endpoint(EndpointKey)
}

/// What the engine must do because of a key (the rest of the keys only change the view).
public enum ViewCommand: Equatable, Sendable {
    case quit
    case setPolicy(LBPolicy)
    case setTraffic(TrafficSetting)
    case reconnect(SubchannelID)
    case resolveNow
    case nextScenario
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
        if key == .resize { return [] }
        guard let action = KeyMap.action(for: key, demo: model.isDemo) else { return [] }
        if showHelp && action != .quit && action != .help {
            if action == .back { showHelp = false }
            return []
        }
        let count = rows.count(focus)
        let page = max(1, (pageSize[focus] ?? 10) - 1)
        switch action {
        case .quit: return [.quit]
        case .help: showHelp.toggle()
        case .focusNext: focus = Pane(rawValue: (focus.rawValue + 1) % Pane.allCases.count)!
        case .focusPrevious: focus = Pane(rawValue: (focus.rawValue + Pane.allCases.count - 1) % Pane.allCases.count)!
        case .up: move(-1, count: count)
        case .down: move(1, count: count)
        case .pageUp: move(-page, count: count)
        case .pageDown: move(page, count: count)
        case .top: selected[focus] = 0
        case .bottom: selected[focus] = max(0, count - 1)
        case .details:
            if details != nil { break }
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
        case .faster: return [.setTraffic(model.traffic.scaled(up: true))]
        case .slower: return [.setTraffic(model.traffic.scaled(up: false))]
        case .colors: colors.toggle()
        case .reconnect:
            if let id = reconnectTarget(rows: rows, model: model) { return [.reconnect(id)] }
        case .nextScenario: return [.nextScenario]
        case .resolveNow: return [.resolveNow]
        }
        clampAll(rows)
        return []
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
