/// The one colour table: what each style role looks like, for every backend — the curses
/// terminal (256 colours, or the 8 basic ones on a poorer terminal) and the ANSI text of
/// `replay --export-cast`. Without colours the curses backend carries a role's meaning with
/// reverse / underline / bold instead (`CursesTerminal`).
public struct RoleStyle: Sendable, Equatable {
    /// 256-colour indexes; nil: the terminal's default.
    public var fg: Int16?
    public var bg: Int16?
    /// The same on an 8-colour terminal (0 black, 1 red, 2 green, 3 yellow, 4 blue, 5 magenta,
    /// 6 cyan, 7 white).
    public var fg8: Int16?
    public var bg8: Int16?
    public var bold = false
    public var dim = false
}

public enum Palette {
    public static func style(_ role: StyleRole) -> RoleStyle {
        switch role {
        case .normal: RoleStyle()
        case .header: RoleStyle(fg: 15, bg: 24, fg8: 7, bg8: 4)
        case .title: RoleStyle(fg: 110, fg8: 6, bold: true)
        case .titleFocused: RoleStyle(fg: 16, bg: 110, fg8: 0, bg8: 6, bold: true)
        case .columnHeader: RoleStyle(fg: 250, fg8: 7, bold: true)
        case .selected: RoleStyle(fg: 16, bg: 252, fg8: 0, bg8: 7, bold: true)
        case .ready: RoleStyle(fg: 34, fg8: 2)
        case .connecting: RoleStyle(fg: 178, fg8: 3)
        case .failure: RoleStyle(fg: 196, fg8: 1, bold: true)
        case .idle: RoleStyle(fg: 67, fg8: 4)
        case .draining: RoleStyle(fg: 208, fg8: 5)
        case .muted: RoleStyle(fg: 244, fg8: 7, dim: true)
        case .accent: RoleStyle(fg: 81, fg8: 6, bold: true)
        case .warning: RoleStyle(fg: 214, fg8: 3)
        case .bar: RoleStyle(fg: 75, fg8: 6)
        case .spark: RoleStyle(fg: 114, fg8: 2)
        case .footerKey: RoleStyle(fg: 16, bg: 110, fg8: 0, bg8: 6, bold: true)
        case .footer: RoleStyle(fg: 252, bg: 236, fg8: 7, bg8: 0)
        case .added: RoleStyle(fg: 46, fg8: 2)
        case .removed: RoleStyle(fg: 167, fg8: 1, bold: true)
        }
    }
}
