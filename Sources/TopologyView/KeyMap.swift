/// A key press, decoded by the terminal backend.
public enum Key: Hashable, Sendable {
    case char(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case shiftLeft, shiftRight
    case enter, escape, tab, backTab, backspace
    case ctrlC
    case resize
}

extension Key {
    /// A key read as a character code (what curses' `get_wch` returns when it is not a
    /// function key): control codes for Ctrl-C, Tab, Enter, Esc and Backspace, any other valid
    /// scalar as itself, nil for the rest (a surrogate, a code past U+10FFFF).
    public static func fromCharacterCode(_ ch: UInt32) -> Key? {
        switch ch {
        case 3: return .ctrlC
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        default:
            guard let scalar = Unicode.Scalar(ch) else { return nil }
            return .char(Character(scalar))
        }
    }
}

/// What a key does. One table (`KeyMap.bindings`) dispatches keys, draws the footer hints and
/// the help screen, so they cannot disagree (k9s's action map).
public enum Action: String, Sendable, CaseIterable {
    case quit, help, focusNext, focusPrevious, up, down, pageUp, pageDown, top, bottom
    case details, back, sort, sortReverse, filter, pause, cyclePolicy, faster, slower, colors
    case resolveNow, reconnect, nextScenario, marker, toggleHealthCheck
    // grpctop replay
    case replayPause, seekBack, seekForward, seekBackLong, seekForwardLong, replaySlower, replayFaster
    case replayStart, replayEnd, nextMarker, previousMarker, goToTime
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
    /// Only in `grpctop replay`.
    public var replayOnly = false
    /// Not in a replay (they would change a live engine).
    public var liveOnly = false
    /// Only where grpctop drives the channel (not `attach`: policy, rate, resolve, reconnect).
    public var drivenOnly = false
}

public enum KeyMap {
    public static let bindings: [KeyBinding] = [
        // Replay keys first: in a replay they take Home, End and g from row navigation.
        KeyBinding(keys: [.char(" "), .char("p")], keyLabel: "space", hint: "play", help: "pause or play the replay", action: .replayPause, replayOnly: true),
        KeyBinding(keys: [.left], keyLabel: "←", hint: nil, help: "back 10 s", action: .seekBack, replayOnly: true),
        KeyBinding(keys: [.right], keyLabel: "→", hint: "seek", help: "forward 10 s", action: .seekForward, replayOnly: true),
        KeyBinding(keys: [.shiftLeft], keyLabel: "S-←", hint: nil, help: "back 1 min", action: .seekBackLong, replayOnly: true),
        KeyBinding(keys: [.shiftRight], keyLabel: "S-→", hint: nil, help: "forward 1 min", action: .seekForwardLong, replayOnly: true),
        KeyBinding(keys: [.char("[")], keyLabel: "[", hint: nil, help: "half the replay speed (down to 0.25×)", action: .replaySlower, replayOnly: true),
        KeyBinding(keys: [.char("]")], keyLabel: "]", hint: "speed", help: "double the replay speed (up to 64×)", action: .replayFaster, replayOnly: true),
        KeyBinding(keys: [.home], keyLabel: "Home", hint: nil, help: "the start of the recording", action: .replayStart, replayOnly: true),
        KeyBinding(keys: [.end], keyLabel: "End", hint: nil, help: "the end of the recording", action: .replayEnd, replayOnly: true),
        KeyBinding(keys: [.char("n")], keyLabel: "n", hint: "marker", help: "the next marker", action: .nextMarker, replayOnly: true),
        KeyBinding(keys: [.char("N")], keyLabel: "N", hint: nil, help: "the previous marker", action: .previousMarker, replayOnly: true),
        KeyBinding(keys: [.char("g")], keyLabel: "g", hint: "go to", help: "go to a time (mm:ss, 90s)", action: .goToTime, replayOnly: true),
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
        KeyBinding(keys: [.char("p")], keyLabel: "p", hint: "pause", help: "pause the display (data keeps flowing)", action: .pause, liveOnly: true),
        KeyBinding(keys: [.char("l")], keyLabel: "l", hint: "policy", help: "switch the LB policy: round_robin → pick_first → least_request → round_robin", action: .cyclePolicy, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("+"), .char("=")], keyLabel: "+", hint: nil, help: "double the traffic rate", action: .faster, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("-")], keyLabel: "-", hint: "rate", help: "halve the traffic rate", action: .slower, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("r")], keyLabel: "r", hint: nil, help: "ask the resolver for a fresh answer now (DNS lookup, k8s relist)", action: .resolveNow, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("x")], keyLabel: "x", hint: nil, help: "renew the selected subchannel's connection (a ClusterIP may move it)", action: .reconnect, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("H")], keyLabel: "H", hint: nil, help: "client-side health checking (A17) on or off, as --health-check", action: .toggleHealthCheck, liveOnly: true, drivenOnly: true),
        KeyBinding(keys: [.char("m")], keyLabel: "m", hint: nil, help: "mark this moment with a label (n/N find it in a replay)", action: .marker, liveOnly: true),
        KeyBinding(keys: [.char("c")], keyLabel: "c", hint: "colors", help: "colours on or off", action: .colors),
        KeyBinding(keys: [.char("n")], keyLabel: "n", hint: "next", help: "skip to the next demo scenario", action: .nextScenario, demoOnly: true),
    ]

    /// The bindings in force: demo-only ones only in `grpctop demo`, replay-only ones only in
    /// `grpctop replay` (where live-only ones are gone, and a key an earlier binding took is
    /// dropped from a later one: Home seeks, it does not select the first row).
    /// `policyFixed`: the resolver chose the policy tree (xDS), `l` does not apply.
    public static func bindings(demo: Bool, replay: Bool = false, observed: Bool = false, policyFixed: Bool = false) -> [KeyBinding] {
        var taken = Set<Key>()
        var out: [KeyBinding] = []
        for b in bindings where (demo || !b.demoOnly) && (replay || !b.replayOnly) && !(replay && b.liveOnly) && !(observed && b.drivenOnly)
            && !(policyFixed && b.action == .cyclePolicy) {
            let keys = b.keys.filter { !taken.contains($0) }
            guard !keys.isEmpty else { continue }
            taken.formUnion(keys)
            out.append(KeyBinding(keys: keys, keyLabel: keys == b.keys ? b.keyLabel : label(keys[0]), hint: b.hint, help: b.help,
                                  action: b.action, demoOnly: b.demoOnly, replayOnly: b.replayOnly, liveOnly: b.liveOnly, drivenOnly: b.drivenOnly))
        }
        return out
    }

    static func label(_ k: Key) -> String {
        switch k {
        case .char(let c): String(c)
        default: "\(k)"
        }
    }

    public static func action(for key: Key, demo: Bool = false, replay: Bool = false, observed: Bool = false, policyFixed: Bool = false) -> Action? {
        bindings(demo: demo, replay: replay, observed: observed, policyFixed: policyFixed).first { $0.keys.contains(key) }?.action
    }

    /// Footer hints, e.g. "q quit  ? help  Tab pane …", in table order.
    public static func footerHints(demo: Bool = false, replay: Bool = false, observed: Bool = false, policyFixed: Bool = false) -> [(key: String, hint: String)] {
        var out: [(String, String)] = []
        for b in bindings(demo: demo, replay: replay, observed: observed, policyFixed: policyFixed) {
            guard let hint = b.hint else { continue }
            let label = b.action == .slower ? "+/-" : (b.action == .down ? "↑↓" : (b.action == .seekForward ? "←→" : (b.action == .replayFaster ? "[ ]" : b.keyLabel)))
            out.append((label, hint))
        }
        return out
    }
}
