import Foundation
import Testing
import TopologyCore
@testable import TopologyView

/// Whole frames compared with golden text files: the characters, then a style-role mask (one
/// letter per cell, see `StyleRole.letter`). Re-record with GRPCTOP_RECORD_GOLDEN=1 — never
/// silently: a missing golden file fails the test.
@Suite struct GoldenFrameTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func check(_ name: String, _ model: Model, state: ViewState = ViewState(), width: Int, height: Int, glyphs: Glyphs = .unicode) throws {
        let frame = Dashboard.render(model: model, state: state, width: width, height: height, glyphs: glyphs)
        let text = frame.grid.lines.joined(separator: "\n") + "\n--- styles\n" + frame.grid.styleLines.joined(separator: "\n") + "\n"
        let file = dir.appendingPathComponent("\(name)-\(width)x\(height).txt")
        if ProcessInfo.processInfo.environment["GRPCTOP_RECORD_GOLDEN"] != nil {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        let expected = try #require(try? String(contentsOf: file, encoding: .utf8), "missing golden \(file.lastPathComponent): record with GRPCTOP_RECORD_GOLDEN=1")
        if text != expected {
            let a = text.split(separator: "\n", omittingEmptySubsequences: false)
            let b = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let first = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }
            Issue.record("frame \(file.lastPathComponent) differs at line \((first?.offset ?? 0) + 1):\n got: \(first?.element.0 ?? "")\nwant: \(first?.element.1 ?? "")")
        }
    }

    static let sizes = [(80, 24), (120, 40), (200, 60)]

    @Test(arguments: sizes) func healthyRoundRobin(w: Int, h: Int) throws { try Self.check("healthy-round-robin", Script.healthyRoundRobin(), width: w, height: h) }
    @Test(arguments: sizes) func pickFirstStuck(w: Int, h: Int) throws { try Self.check("pick-first-stuck", Script.pickFirstStuck(), width: w, height: h) }
    @Test(arguments: sizes) func podDeleted(w: Int, h: Int) throws { try Self.check("pod-deleted", Script.podDeleted(), width: w, height: h) }
    @Test(arguments: sizes) func backendInBackoff(w: Int, h: Int) throws { try Self.check("backoff", Script.backendInBackoff(), width: w, height: h) }
    @Test(arguments: sizes) func goAwayDrain(w: Int, h: Int) throws { try Self.check("goaway-drain", Script.goAwayDrain(), width: w, height: h) }
    @Test(arguments: sizes) func healthAndOutlier(w: Int, h: Int) throws { try Self.check("health-outlier", Script.healthAndOutlier(), width: w, height: h) }
    @Test(arguments: sizes) func thousandEndpoints(w: Int, h: Int) throws { try Self.check("1000-endpoints", Script.thousandEndpoints(), width: w, height: h) }

    @Test func asciiAndSmall() throws {
        try Self.check("healthy-ascii", Script.healthyRoundRobin(), width: 80, height: 24, glyphs: .ascii)
        try Self.check("too-small", Script.healthyRoundRobin(), width: 59, height: 14)
    }

    @Test func detailsAndHelp() throws {
        var s = ViewState()
        s.details = .subchannel(2)
        try Self.check("details-subchannel", Script.backendInBackoff(), state: s, width: 120, height: 40)
        s.details = .backend("greeter-7d9f8c6b5-p0")
        try Self.check("details-pod", Script.healthyRoundRobin(), state: s, width: 120, height: 40)
        var h = ViewState()
        h.showHelp = true
        try Self.check("help", Script.healthyRoundRobin(), state: h, width: 80, height: 24)
    }
}
