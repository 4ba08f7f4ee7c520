/// A key press, decoded by the terminal backend.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, escape, tab, backTab, backspace
    case ctrlC
    case resize
}

/// What a key does. One table (`KeyMap.bindings`) dispatches keys, draws the footer hints and
/// the help screen, so they cannot disagree (k9s's action map).
public enum Action: String, Sendable, CaseIterable {
    case quit, help, focusNext, focusPrevious, up, down, pageUp, pageDown, top, bottom
    case details, back, sort, sortReverse, filter, pause, cyclePolicy, faster, slower, colors
    case resolveNow, reconnect, nextScenario
}

public struct KeyBinding: Sendable {
    public let keys: [Key]
    /// How the keys are written in the footer and help ("q", "↑/k", "PgUp").
    public let keyLabel: String
    /// A word or two for the footer; nil keeps the binding out of the footer.
    public let hint: String?
    public let help: String
    public let action: Action
    /// Only in `grpctop demo` (footer and help leave it out elsewhere).
    public var demoOnly = false
}

public enum KeyMap {
    public static let bindings: [KeyBinding] = [
        KeyBinding(keys: [.char("q"), .ctrlC], keyLabel: "q", hint: "quit", help: "quit (the summary is printed on the normal screen)", action: .quit),
        KeyBinding(keys: [.char("?")], keyLabel: "?", hint: "help", help: "show or hide this help", action: .help),
        KeyBinding(keys: [.tab], keyLabel: "Tab", hint: "pane", help: "focus the next pane", action: .focusNext),
        KeyBinding(keys: [.backTab], keyLabel: "S-Tab", hint: nil, help: "focus the previous pane", action: .focusPrevious),
        KeyBinding(keys: [.up, .char("k")], keyLabel: "↑/k", hint: nil, help: "move up", action: .up),
        KeyBinding(keys: [.down, .char("j")], keyLabel: "↓/j", hint: "move", help: "move down", action: .down),
        KeyBinding(keys: [.pageUp], keyLabel: "PgUp", hint: nil, help: "page up", action: .pageUp),
        KeyBinding(keys: [.pageDown], keyLabel: "PgDn", hint: nil, help: "page down", action: .pageDown),
        KeyBinding(keys: [.home, .char("g")], keyLabel: "Home", hint: nil, help: "first row", action: .top),
        KeyBinding(keys: [.end, .char("G")], keyLabel: "End", hint: nil, help: "last row", action: .bottom),
        KeyBinding(keys: [.enter], keyLabel: "Enter", hint: "details", help: "details of the selected subchannel or pod", action: .details),
        KeyBinding(keys: [.escape, .backspace], keyLabel: "Esc", hint: nil, help: "back; clears the filter", action: .back),
        KeyBinding(keys: [.char("s")], keyLabel: "s", hint: "sort", help: "sort the focused pane by the next column", action: .sort),
        KeyBinding(keys: [.char("S")], keyLabel: "S", hint: nil, help: "reverse the sort order", action: .sortReverse),
        KeyBinding(keys: [.char("/")], keyLabel: "/", hint: "filter", help: "filter rows by a substring (Enter keeps it, Esc clears it)", action: .filter),
        KeyBinding(keys: [.char("p")], keyLabel: "p", hint: "pause", help: "pause the display (data keeps flowing)", action: .pause),
        KeyBinding(keys: [.char("l")], keyLabel: "l", hint: "policy", help: "switch the LB policy: round_robin → pick_first → least_request → round_robin", action: .cyclePolicy),
        KeyBinding(keys: [.char("+"), .char("=")], keyLabel: "+", hint: nil, help: "double the traffic rate", action: .faster),
        KeyBinding(keys: [.char("-")], keyLabel: "-", hint: "rate", help: "halve the traffic rate", action: .slower),
        KeyBinding(keys: [.char("r")], keyLabel: "r", hint: nil, help: "ask the resolver for a fresh answer now (DNS lookup, k8s relist)", action: .resolveNow),
        KeyBinding(keys: [.char("x")], keyLabel: "x", hint: nil, help: "renew the selected subchannel's connection (a ClusterIP may move it)", action: .reconnect),
        KeyBinding(keys: [.char("c")], keyLabel: "c", hint: "colors", help: "colours on or off", action: .colors),
        KeyBinding(keys: [.char("n")], keyLabel: "n", hint: "next", help: "skip to the next demo scenario", action: .nextScenario, demoOnly: true),
    ]

    /// The bindings in force: demo-only ones only in `grpctop demo`.
    public static func bindings(demo: Bool) -> [KeyBinding] { bindings.filter { demo || !$0.demoOnly } }

    public static func action(for key: Key, demo: Bool = false) -> Action? {
        bindings(demo: demo).first { $0.keys.contains(key) }?.action
    }

    /// Footer hints, e.g. "q quit  ? help  Tab pane …", in table order.
    public static func footerHints(demo: Bool = false) -> [(key: String, hint: String)] {
        var out: [(String, String)] = []
        for b in bindings(demo: demo) {
            guard let hint = b.hint else { continue }
            let label = b.action == .slower ? "+/-" : (b.action == .down ? "↑↓" : b.keyLabel)
            out.append((label, hint))
        }
        return out
    }
}
