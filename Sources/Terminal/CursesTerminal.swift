import CNcursesw
import Foundation
import TopologyView

/// The full-screen terminal: draws `CellGrid`s with ncursesw (only the cells that changed),
/// decodes keys, follows resizes, and always gives the terminal back.
///
/// It is built for `kubectl exec -it` into minimal images: TERM may be unset, `dumb` or unknown
/// and there may be no terminfo at all (an embedded xterm-256color entry is used then); the
/// first size may be 0×0 (the caller waits for a resize); the locale may not be UTF-8 (the
/// caller draws ASCII, see `isUTF8`). Colours come from semantic roles: 256 colours, 8 colours
/// or none (`NO_COLOR`, `--no-color`, a terminal without colours) — then attributes only.
///
/// Threading: use it from one thread only.
public final class CursesTerminal {
    public private(set) var isUTF8: Bool
    public private(set) var colorMode: ColorMode
    /// Why the embedded terminfo was used, if it was (shown once on exit).
    public private(set) var terminfoNote: String?
    private var screen: OpaquePointer?
    private var previous: CellGrid?
    private var previousColors = true
    private var ended = false
    private var tempTerminfo: String?

    public enum ColorMode: Sendable { case none, eight, many }

    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(colors wanted: Bool) throws {
        setlocale(LC_ALL, "")
        isUTF8 = grpctop_is_utf8() != 0
        colorMode = .none
        try openScreen()
        TerminalRestorer.install(self)
        raw()
        noecho()
        keypad(grpctop_stdscr(), true)
        nonl()
        set_escdelay(25)
        curs_set(0)
        leaveok(grpctop_stdscr(), true)
        if wanted && has_colors() {
            start_color()
            use_default_colors()
            colorMode = grpctop_colors() >= 256 ? .many : .eight
            setUpPairs()
        }
        erase()
        refresh()
    }

    /// `newterm` with the user's TERM; on an unknown, dumb or missing TERM, or no terminfo at
    /// all, with the embedded xterm-256color entry instead of exiting (as `initscr` would).
    private func openScreen() throws {
        let term = ProcessInfo.processInfo.environment["TERM"] ?? ""
        var usable = false
        if !term.isEmpty && term != "dumb" {
            var err: Int32 = 0
            if setupterm(term, 1, &err) == OK {
                // A terminal that cannot move the cursor cannot show a dashboard.
                usable = tigetstr("cup") != nil && Int(bitPattern: tigetstr("cup")) != -1
                grpctop_del_curterm()
            }
        }
        var name = term
        if !usable {
            // A private directory (mkdtemp, mode 0700): a predictable name in /tmp could be
            // planted by another user with a terminfo entry of their choosing.
            var template = Array((NSTemporaryDirectory() + "grpctop-terminfo-XXXXXX").utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw StartError(description: "TERM '\(term)' is not usable and no private directory could be made for the embedded terminfo (\(String(cString: strerror(errno))))")
            }
            let dir = String(cString: made)
            let sub = dir + "/x"
            let file = sub + "/xterm-256color"
            let bytes = EmbeddedTerminfo.xterm256color
            let fd = mkdir(sub, 0o700) == 0 ? open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600) : -1
            let wrote = fd >= 0 && bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
            if fd >= 0 { close(fd) }
            guard wrote else {
                throw StartError(description: "TERM '\(term)' is not usable and the embedded terminfo could not be written to \(dir)")
            }
            setenv("TERMINFO", dir, 1)
            tempTerminfo = dir
            name = "xterm-256color"
            terminfoNote = term.isEmpty ? "TERM was not set: used an embedded xterm-256color entry"
                : "TERM=\(term) has no usable terminfo here: used an embedded xterm-256color entry"
        }
        screen = newterm(name, grpctop_stdout(), grpctop_stdin())
        guard screen != nil else {
            throw StartError(description: "cannot open the terminal (TERM=\(term.isEmpty ? "unset" : term)); use --batch")
        }
        set_term(screen)
    }

    // MARK: - colours

    /// Colour pair per role (index = role.rawValue + 1) and extra attributes.
    private func setUpPairs() {
        for role in StyleRole.allCases {
            let (fg, bg) = colors(for: role)
            init_pair(Int16(role.rawValue) + 1, fg, bg)
        }
    }

    /// A role's colours from the one table (`Palette`): 256-colour indexes, or the 8 basic ones.
    private func colors(for role: StyleRole) -> (Int16, Int16) {
        let style = Palette.style(role)
        return colorMode == .many ? (style.fg ?? -1, style.bg ?? -1) : (style.fg8 ?? -1, style.bg8 ?? -1)
    }

    /// Attributes for a role: with colours a little emphasis; without, everything the role
    /// says is carried by bold / reverse / underline / dim (and the text itself).
    private func attributes(for role: StyleRole, colors: Bool) -> (attr_t, Int16) {
        let pair: Int16 = colors && colorMode != .none ? Int16(role.rawValue) + 1 : 0
        var a = grpctop_a_normal()
        switch role {
        case .header, .footer: a = colors && colorMode != .none ? grpctop_a_normal() : grpctop_a_reverse()
        case .titleFocused, .selected, .footerKey: a = colors && colorMode != .none ? grpctop_a_bold() : grpctop_a_reverse()
        case .title, .columnHeader, .accent: a = grpctop_a_bold()
        case .failure, .removed: a = colors && colorMode != .none ? grpctop_a_bold() : grpctop_a_bold() | grpctop_a_underline()
        case .muted: a = grpctop_a_dim()
        case .warning, .draining: a = colors && colorMode != .none ? grpctop_a_normal() : grpctop_a_underline()
        default: break
        }
        return (a, pair)
    }

    // MARK: - drawing

    /// The current size; (0, 0) until the terminal has told us (wait for a resize then).
    public var size: (width: Int, height: Int) { (Int(grpctop_maxx()), Int(grpctop_maxy())) }

    /// Draws the cells that differ from the last frame; an identical frame writes nothing.
    public func draw(_ grid: CellGrid, colors: Bool) {
        let base = colors == previousColors ? previous : nil
        let runs = grid.changes(from: base)
        guard !runs.isEmpty else { return }
        var buffer: [wchar_t] = []
        buffer.reserveCapacity(grid.width + 1)
        for run in runs {
            var x = run.x
            let end = run.x + run.count
            while x < end {
                let role = grid[x, run.y].role
                buffer.removeAll(keepingCapacity: true)
                let start = x
                while x < end && grid[x, run.y].role == role {
                    let scalar = grid[x, run.y].char.unicodeScalars.first!.value
                    buffer.append(wchar_t(bitPattern: scalar))
                    x += 1
                }
                // The bottom-right cell cannot be written without scrolling on some terminals.
                if run.y == grid.height - 1 && x == grid.width { buffer.removeLast(); if buffer.isEmpty { continue } }
                let (attr, pair) = attributes(for: role, colors: colors)
                _ = grpctop_attr_set(attr, pair)
                buffer.append(0)
                _ = mvaddnwstr(Int32(run.y), Int32(start), buffer, Int32(buffer.count - 1))
            }
        }
        refresh()
        previous = grid
        previousColors = colors
    }

    /// Forgets what is on the screen (after a resize) so the next frame is drawn whole.
    public func invalidate() {
        previous = nil
        clear()
    }

    // MARK: - keys

    /// Waits up to `timeoutMs` for a key.
    public func readKey(timeoutMs: Int32) -> Key? {
        timeout(timeoutMs)
        var ch: wint_t = 0
        let r = wget_wch(grpctop_stdscr(), &ch)
        if r == ERR { return nil }
        if r == KEY_CODE_YES {
            switch Int32(ch) {
            case KEY_UP: return .up
            case KEY_DOWN: return .down
            case KEY_LEFT: return .left
            case KEY_RIGHT: return .right
            case KEY_SLEFT: return .shiftLeft
            case KEY_SRIGHT: return .shiftRight
            case KEY_PPAGE: return .pageUp
            case KEY_NPAGE: return .pageDown
            case KEY_HOME: return .home
            case KEY_END: return .end
            case KEY_BTAB: return .backTab
            case KEY_ENTER: return .enter
            case KEY_BACKSPACE: return .backspace
            case KEY_RESIZE: return .resize
            default: return nil
            }
        }
        return Key.fromCharacterCode(UInt32(ch))
    }

    // MARK: - restore

    /// Gives the terminal back (normal screen, cursor, modes). Safe to call more than once.
    public func end() {
        guard !ended else { return }
        ended = true
        endwin()
        if let screen { delscreen(screen) }
        screen = nil
        TerminalRestorer.uninstall()
        if let dir = tempTerminfo { try? FileManager.default.removeItem(atPath: dir) }
    }

    deinit { end() }
}

/// Signal handlers that restore the terminal: SIGTERM, SIGHUP, SIGINT and SIGQUIT ask the UI
/// loop to quit (it then restores and prints the summary); fatal signals (SIGSEGV, SIGBUS,
/// SIGFPE, SIGILL, SIGTRAP — Swift's trap on arm64 —, SIGABRT) call `endwin` and re-raise with the default action.
public enum TerminalRestorer {
    nonisolated(unsafe) static var active = false
    nonisolated(unsafe) public private(set) static var quitRequested: Int32 = 0

    static func install(_ t: CursesTerminal) {
        active = true
        for sig in [SIGTERM, SIGHUP, SIGINT, SIGQUIT] { signal(sig, quitHandler) }
        for sig in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT] { signal(sig, fatalHandler) }
    }

    static func uninstall() {
        active = false
        for sig in [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT] { signal(sig, SIG_DFL) }
    }
}

private func quitHandler(_ sig: Int32) {
    TerminalRestorer.setQuit(sig)
}

private func fatalHandler(_ sig: Int32) {
    if TerminalRestorer.active { endwin() }
    signal(sig, SIG_DFL)
    raise(sig)
}

extension TerminalRestorer {
    fileprivate static func setQuit(_ sig: Int32) { quitRequested = sig }
}
