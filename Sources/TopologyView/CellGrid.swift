/// What a cell means, not what colour it is (htop's roles): the terminal backend maps roles to
/// colour pairs and attributes for 256, 8 or no colours. State is never shown by colour alone:
/// every coloured state also has its word or symbol in the cell text.
public enum StyleRole: UInt8, Sendable, CaseIterable {
    case normal
    case header        // the top bar
    case title         // a pane title
    case titleFocused  // the focused pane's title
    case columnHeader
    case selected      // the selected row
    case ready
    case connecting
    case failure
    case idle
    case draining
    case muted
    case accent
    case warning
    case bar           // share bars
    case spark         // sparklines
    case footerKey
    case footer
    case added         // rows just added
    case removed       // rows just removed

    /// One letter per role for golden style masks.
    public var letter: Character {
        switch self {
        case .normal: "."
        case .header: "H"
        case .title: "T"
        case .titleFocused: "F"
        case .columnHeader: "C"
        case .selected: "S"
        case .ready: "r"
        case .connecting: "c"
        case .failure: "x"
        case .idle: "i"
        case .draining: "d"
        case .muted: "m"
        case .accent: "a"
        case .warning: "w"
        case .bar: "b"
        case .spark: "k"
        case .footerKey: "K"
        case .footer: "f"
        case .added: "+"
        case .removed: "-"
        }
    }
}

public struct Cell: Equatable, Sendable {
    public var char: Character
    public var role: StyleRole
    public init(_ char: Character = " ", _ role: StyleRole = .normal) {
        self.char = char
        self.role = role
    }
}

/// A frame: width × height cells. Views draw into it; the backend sends only what changed.
/// Every character is one terminal column wide (the view only uses such characters).
public struct CellGrid: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        self.cells = Array(repeating: Cell(), count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set { cells[y * width + x] = newValue }
    }

    /// Writes text at (x, y), clipped to `maxWidth` columns and the grid; returns the columns used.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, role: StyleRole = .normal, maxWidth: Int? = nil) -> Int {
        guard y >= 0, y < height, x < width else { return 0 }
        let limit = min(width - max(0, x), maxWidth ?? Int.max)
        var col = x
        var used = 0
        for ch in text {
            if used >= limit { break }
            if col >= 0 { cells[y * width + col] = Cell(ch, role) }
            col += 1
            used += 1
        }
        return used
    }

    /// Fills a row segment with a character and role.
    public mutating func fill(y: Int, from x0: Int = 0, to x1: Int? = nil, char: Character = " ", role: StyleRole) {
        guard y >= 0, y < height else { return }
        let end = min(width, x1 ?? width)
        var x = max(0, x0)
        while x < end {
            cells[y * width + x] = Cell(char, role)
            x += 1
        }
    }

    /// Changes the role of a row segment, keeping the characters.
    public mutating func restyle(y: Int, from x0: Int = 0, to x1: Int? = nil, role: StyleRole) {
        guard y >= 0, y < height else { return }
        let end = min(width, x1 ?? width)
        var x = max(0, x0)
        while x < end {
            cells[y * width + x].role = role
            x += 1
        }
    }

    /// Replaces every non-ASCII character with an ASCII stand-in (terminals without UTF-8).
    public mutating func asciify() {
        for i in cells.indices where !cells[i].char.isASCII {
            cells[i].char = switch cells[i].char {
            case "µ": "u"
            case "×": "x"
            case "…": "~"
            case "→": ">"
            case "≤": "<"
            case "─", "—": "-"
            case "↑": "^"
            case "↓": "v"
            default: "?"
            }
        }
    }

    /// The text of each row, trailing spaces trimmed (golden files).
    public var lines: [String] {
        (0..<height).map { y in
            var s = String(cells[(y * width)..<(y * width + width)].map(\.char))
            while s.last == " " { s.removeLast() }
            return s
        }
    }

    /// The style mask: one role letter per cell (golden files).
    public var styleLines: [String] {
        (0..<height).map { y in String(cells[(y * width)..<(y * width + width)].map(\.role.letter)) }
    }

    /// Cells that differ from `previous` (all of them if the size changed), as (x, y) runs.
    public func changes(from previous: CellGrid?) -> [(x: Int, y: Int, count: Int)] {
        guard let previous, previous.width == width, previous.height == height else {
            return (0..<height).map { (0, $0, width) }
        }
        var runs: [(Int, Int, Int)] = []
        for y in 0..<height {
            var x = 0
            let base = y * width
            while x < width {
                if cells[base + x] != previous.cells[base + x] {
                    let start = x
                    while x < width && cells[base + x] != previous.cells[base + x] { x += 1 }
                    runs.append((start, y, x - start))
                } else {
                    x += 1
                }
            }
        }
        return runs
    }
}
