/// Frames as ANSI text (256 colours from `Palette`, the table the curses backend uses), for
/// `grpctop replay --export-cast`: rows that changed since the previous frame, each written
/// whole after a cursor move, so a player shows exactly the grid.
public enum ANSIFrame {
    /// SGR parameters of a role: foreground;background and emphasis.
    static func sgr(_ role: StyleRole) -> String {
        let style = Palette.style(role)
        var out = "0"
        if style.bold { out += ";1" }
        if style.dim { out += ";2" }
        if let fg = style.fg { out += ";38;5;\(fg)" }
        if let bg = style.bg { out += ";48;5;\(bg)" }
        return out
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
