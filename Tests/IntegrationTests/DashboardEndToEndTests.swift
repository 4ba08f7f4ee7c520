import Foundation
import Testing

/// A real tmux server as the terminal: the dashboard is driven with send-keys and read with
/// capture-pane, as a person would use it.
final class TmuxSession: @unchecked Sendable {
    let socket = "grpctop-test-\(UUID().uuidString.prefix(8))"

    init(width: Int, height: Int, command: String) throws {
        // The tmux server forked here inherits the client's stdout: /dev/null, not a pipe.
        try tmux(["-f", "/dev/null", "new-session", "-d", "-s", "s", "-x", "\(width)", "-y", "\(height)", command], capture: false)
    }

    /// Runs one tmux command with posix_spawn + waitpid (Foundation's Process does not notice
    /// the exit of a tmux client that has just forked the server), output through a temp file.
    @discardableResult
    func tmux(_ args: [String], capture: Bool = true) throws -> String {
        let outPath = capture ? NSTemporaryDirectory() + "tmux-out-\(UUID().uuidString)" : "/dev/null"
        defer { if capture { unlink(outPath) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = (["tmux", "-L", socket] + args).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/usr/bin/tmux", &actions, nil, argv, environ)
        guard rc == 0 else { throw FleetError("tmux could not start: \(rc)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        guard capture else { return "" }
        return (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    }

    func screen(colors: Bool = false) -> String { (try? tmux(["capture-pane", "-p"] + (colors ? ["-e"] : []) + ["-t", "s"])) ?? "" }
    func keys(_ k: String...) { _ = try? tmux(["send-keys", "-t", "s"] + k) }
    func resize(_ w: Int, _ h: Int) { _ = try? tmux(["resize-window", "-t", "s", "-x", "\(w)", "-y", "\(h)"]) }
    func flag(_ name: String) -> String { ((try? tmux(["display-message", "-p", "-t", "s", "#{\(name)}"])) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }

    /// Waits (bounded) until the screen satisfies `predicate`; returns the last screen seen.
    @discardableResult
    func waitFor(timeout: Double = 10, colors: Bool = false, _ predicate: (String) -> Bool) -> String? {
        let end = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < end {
            last = screen(colors: colors)
            if predicate(last) { return last }
            usleep(100_000)
        }
        return nil
    }

    deinit { _ = try? tmux(["kill-server"]) }
}

@Suite(.serialized) struct DashboardEndToEndTests {
    /// A fleet of 3 behind a file: target, and a shell command line that runs the dashboard.
    func setUp(env: String = "TERM=xterm-256color", wrap: (String) -> String = { $0 }) throws -> (fleet: [Backend], file: String, command: String) {
        let fleet = try (0..<3).map { try Backend(name: "pod-\($0)") }
        let file = tempDir() + "/endpoints.txt"
        try writeEndpoints(file, fleet.enumerated().map { "\($1.address) pod=web-7d9f8c6b5-p\($0) zone=z\($0)" })
        let watch = "\(Paths.grpctop) watch file:\(file) --rps 60"
        // The test runner may export NO_COLOR; each case says itself whether it wants it.
        return (fleet, file, "env -u NO_COLOR \(env) \(wrap(watch)); echo EXIT=$?; sleep 60")
    }

    @Test func liveDashboardFollowsTheFleetAndTheKeys() throws {
        let (fleet, file, command) = try setUp()
        defer { fleet.forEach { $0.stop() } }
        let t = try TmuxSession(width: 120, height: 40, command: command)
        let first = t.waitFor { $0.components(separatedBy: "READY").count - 1 >= 4 && $0.contains("web-7d9f8c6b5-p2") }
        let screen = try #require(first, "no READY frame:\n\(t.screen())")
        for i in 0..<3 { #expect(screen.contains("web-7d9f8c6b5-p\(i)")) }
        #expect(screen.contains("round_robin"))

        // Delete a line: the endpoint is marked removed and the event is logged.
        try writeEndpoints(file, [fleet[0], fleet[2]].enumerated().map { "\($1.address) pod=web-7d9f8c6b5-p\($0 == 0 ? 0 : 2)" })
        #expect(t.waitFor { $0.contains("endpoint removed: web-7d9f8c6b5-p1") && $0.contains("removed") } != nil, "\(t.screen())")

        // l: round_robin → pick_first; the traffic collapses onto one pod.
        t.keys("l")
        let collapsed = t.waitFor(timeout: 15) { $0.contains("pick_first") && $0.contains("one pod takes all") }
        #expect(collapsed != nil, "no collapse:\n\(t.screen())")

        // Resize down and back: re-laid out at once.
        t.resize(70, 20)
        #expect(t.waitFor { s in s.split(separator: "\n").allSatisfy { $0.count <= 70 } && s.contains("Endpoints") } != nil)
        t.resize(120, 40)
        #expect(t.waitFor { $0.contains("LAST 60s") } != nil)

        // q: exits 0, the summary on the normal screen, no modes left behind.
        t.keys("q")
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(end.contains("EXIT=0"))
        #expect(end.contains("summary:"))
        #expect(t.flag("alternate_on") == "0")
        #expect(t.flag("cursor_flag") == "1")
        #expect(t.flag("keypad_cursor_flag") == "0")
    }

    /// The terminal is given back on every way out: Ctrl-C, SIGTERM and SIGHUP quit cleanly
    /// (summary, exit 0); a fatal signal restores the screen, then dies of that signal.
    @Test(arguments: [("Ctrl-C", Int32(0)), ("SIGTERM", SIGTERM), ("SIGHUP", SIGHUP), ("SIGSEGV", SIGSEGV), ("SIGTRAP", SIGTRAP)])
    func terminalRestoredOnEveryExit(name: String, sig: Int32) throws {
        let (fleet, _, command) = try setUp()
        defer { fleet.forEach { $0.stop() } }
        let t = try TmuxSession(width: 100, height: 30, command: command)
        _ = try #require(t.waitFor { $0.contains("READY") && $0.contains("Traffic per pod") }, "\(t.screen())")
        #expect(t.flag("alternate_on") == "1")
        if sig == 0 {
            t.keys("C-c")
        } else {
            let shell = Int32(t.flag("pane_pid")) ?? 0
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            p.arguments = ["-\(sig)", "-P", "\(shell)", "grpctop"]
            try p.run()
            p.waitUntilExit()
        }
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(name): \(t.screen())")
        if sig == SIGSEGV || sig == SIGTRAP {
            // Swift's runtime traps are SIGILL on x86_64 and SIGTRAP on arm64: both restore.
            #expect(end.contains("EXIT=\(128 + sig)"), "\(name): \(end)")
        } else {
            #expect(end.contains("EXIT=0") && end.contains("summary:"), "\(name): \(end)")
        }
        #expect(t.flag("alternate_on") == "0", "\(name): still on the alternate screen")
        #expect(t.flag("cursor_flag") == "1", "\(name): cursor still hidden")
    }

    /// kubectl exec realities: TERM unset or dumb, no terminfo at all, LANG=C, NO_COLOR.
    @Test(arguments: [
        ("TERM unset", "-u TERM", false),
        ("TERM=dumb", "TERM=dumb", false),
        ("LANG=C", "TERM=xterm-256color LANG=C LC_ALL=C", true),
        ("NO_COLOR", "TERM=xterm-256color NO_COLOR=1", false),
    ])
    func minimalTerminals(name: String, env: String, ascii: Bool) throws {
        try minimalTerminal(name: name, env: env, ascii: ascii)
    }

    /// Hiding every terminfo directory needs a mount namespace (unshare -m, mount --bind): root
    /// only, as CI runs; skipped (and shown as skipped) otherwise.
    @Test(.enabled(if: getuid() == 0, "needs root: unshare -m and mount --bind hide the terminfo directories"))
    func noTerminfoAtAll() throws {
        try minimalTerminal(name: "no terminfo", env: "TERM=xterm-256color", ascii: false)
    }

    func minimalTerminal(name: String, env: String, ascii: Bool) throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? [])
        let empty = tempDir()
        let wrap: (String) -> String = name == "no terminfo"
            ? { "unshare -m sh -c 'for d in /usr/share/terminfo /lib/terminfo /etc/terminfo; do [ -d $d ] && mount --bind \(empty) $d; done; exec \($0)'" }
            : { $0 }
        let (fleet, _, command) = try setUp(env: env, wrap: wrap)
        defer { fleet.forEach { $0.stop() } }
        let t = try TmuxSession(width: 100, height: 30, command: command)
        let screen = t.waitFor(colors: true) { $0.contains("READY") && $0.contains("Traffic per pod") }
        let shown = try #require(screen, "\(name): no dashboard:\n\(t.screen())")
        let tmp = NSTemporaryDirectory()
        let privateTerminfoDirs: [(String, UInt32)] = ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [])
            .filter { $0.hasPrefix("grpctop-terminfo-") && !before.contains($0) }
            .map { name in
                var st = stat()
                _ = stat(tmp + "/" + name, &st)
                return (tmp + "/" + name, UInt32(st.st_mode & 0o777))
            }
        if ascii {
            #expect(shown.contains("- Endpoints"), "\(name): expected ASCII borders")
            #expect(!shown.contains("─"))
        } else {
            #expect(shown.contains("─ Endpoints"))
        }
        if name == "NO_COLOR" {
            #expect(!hasColour(shown), "\(name): colours present")
        } else {
            #expect(hasColour(shown), "\(name): expected colours")
        }
        t.keys("q")
        let end = try #require(t.waitFor { $0.contains("EXIT=") }, "\(t.screen())")
        #expect(end.contains("EXIT=0"), "\(name): \(end)")
        if name == "TERM unset" || name == "TERM=dumb" || name == "no terminfo" {
            #expect(end.contains("embedded xterm-256color"), "\(name): \(end)")
        }
        if name == "TERM unset" {
            // The embedded entry went to a private directory (mkdtemp, 0700), not a name another
            // user could predict (grpctop-terminfo-PID), and it was removed at exit.
            #expect(privateTerminfoDirs.count == 1, "\(privateTerminfoDirs)")
            for (dir, mode) in privateTerminfoDirs {
                #expect(mode == 0o700, "\(dir): mode \(String(mode, radix: 8))")
                #expect(Int(dir.split(separator: "-").last ?? "") == nil, "\(dir) is predictable (a PID)")
                #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) left behind")
            }
        }
    }
}

/// True if an SGR sequence sets a foreground or background colour (30–37, 40–47, 90–97,
/// 100–107, 38;5;N, 48;5;N); resets such as 39 and 49 do not count.
func hasColour(_ screen: String) -> Bool {
    let sgr = try! NSRegularExpression(pattern: "\u{1B}\\[([0-9;]*)m")
    let ns = screen as NSString
    for m in sgr.matches(in: screen, range: NSRange(location: 0, length: ns.length)) {
        let params = ns.substring(with: m.range(at: 1)).split(separator: ";").compactMap { Int($0) }
        var i = 0
        while i < params.count {
            let p = params[i]
            if p == 38 || p == 48 { return true }
            if (30...37).contains(p) || (40...47).contains(p) || (90...97).contains(p) || (100...107).contains(p) { return true }
            i += 1
        }
    }
    return false
}
