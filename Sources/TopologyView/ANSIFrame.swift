/// Frames as ANSI text (256 colours, the same palette the curses backend uses), for
/// `grpctop replay --export-cast`: rows that changed since the previous frame, each written
/// whole after a cursor move, so a player shows exactly the grid.
public enum ANSIFrame {
    /// SGR parameters of a role: foreground;background and emphasis.
    static func sgr(_ role: StyleRole) -> String {
        switch role {
        case .normal: "0"
        case .header: "0;38;5;15;48;5;24"
        case .title: "0;1;38;5;110"
        case .titleFocused: "0;1;38;5;16;48;5;110"
        case .columnHeader: "0;1;38;5;250"
        case .selected: "0;1;38;5;16;48;5;252"
        case .ready: "0;38;5;34"
        case .connecting: "0;38;5;178"
        case .failure: "0;1;38;5;196"
        case .idle: "0;38;5;67"
        case .draining: "0;38;5;208"
        case .muted: "0;2;38;5;244"
        case .accent: "0;1;38;5;81"
        case .warning: "0;38;5;214"
        case .bar: "0;38;5;75"
        case .spark: "0;38;5;114"
        case .footerKey: "0;1;38;5;16;48;5;110"
        case .footer: "0;38;5;252;48;5;236"
        case .added: "0;38;5;46"
        case .removed: "0;1;38;5;167"
        }
    }

    /// The text that turns `previous` (nil: a blank screen) into `grid`.
    public static func update(from previous: CellGrid?, to grid: CellGrid) -> String {
        var out = previous == nil || previous?.width != grid.width || previous?.height != grid.height ? "\u{1B}[?25l\u{1B}[H\u{1B}[2J" : ""
        for y in 0..<grid.height {
            if let p = previous, p.width == grid.width, p.height == grid.height,
               (0..<grid.width).allSatisfy({ p[$0, y] == grid[$0, y] }) { continue }
            out += "\u{1B}[\(y + 1);1H"
            var role: StyleRole?
            for x in 0..<grid.width {
                let c = grid[x, y]
                if c.role != role {
                    out += "\u{1B}[\(sgr(c.role))m"
                    role = c.role
                }
                out.append(c.char)
            }
            out += "\u{1B}[0m"
        }
        return out
    }
}

/// The inverse of `ANSIFrame` for checking it: a screen that understands exactly what
/// `ANSIFrame.update` writes (clear, cursor moves, SGR — ignored) and returns its rows' text.
public enum ANSIScreen {
    public static func lines(of chunks: [String], width: Int, height: Int) -> [String] {
        var screen = Array(repeating: Array(repeating: Character(" "), count: width), count: height)
        var row = 0, col = 0
        for text in chunks {
            var it = Array(text)[...]
            while let c = it.popFirst() {
                if c == "\u{1B}", it.first == "[" {
                    it.removeFirst()
                    var params = ""
                    while let p = it.first, !p.isLetter { params.append(p); it.removeFirst() }
                    switch it.popFirst() {
                    case "H":
                        let nums = params.split(separator: ";").compactMap { Int($0) }
                        row = (nums.first ?? 1) - 1
                        col = (nums.count > 1 ? nums[1] : 1) - 1
                    case "J": screen = Array(repeating: Array(repeating: " ", count: width), count: height)
                    default: break
                    }
                    continue
                }
                if row >= 0, row < height, col >= 0, col < width { screen[row][col] = c }
                col += 1
            }
        }
        return screen.map { var s = String($0); while s.last == " " { s.removeLast() }; return s }
    }
}
