import Foundation
import Testing

/// Real processes for end-to-end tests: `grpctop serve` backends, Python grpcio backends and the
/// `grpctop watch --batch` client, all on loopback with ports the kernel picks.
enum Paths {
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var grpctop: String {
        if let b = ProcessInfo.processInfo.environment["GRPCTOP_BIN"] { return b }
        return root.appendingPathComponent(".build/debug/grpctop").path
    }
    /// The benchmarks that need a test double, beside grpctop.
    static var grpctopBench: String {
        URL(fileURLWithPath: grpctop).deletingLastPathComponent().appendingPathComponent("grpctop-bench").path
    }
    /// The venv `.ci/run` (or scripts/test) creates with grpcio installed.
    static var python: String {
        if let p = ProcessInfo.processInfo.environment["GRPCTOP_PYTHON"] { return p }
        return root.appendingPathComponent(".build-venv/bin/python3").path
    }
    static var pyServer: String { root.appendingPathComponent("scripts/pyserver.py").path }
    /// The C++ gRPC client application with channelz (scripts/build-cpp-channelz-client).
    static var cppChannelzClient: String { root.appendingPathComponent(".build-bench/channelz_client").path }
}

/// Collects a process's output lines as they arrive.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    private var lines: [String] = []
    private var closed = false

    /// Waits (bounded) until the writer closed its end and every line is in.
    func waitForEOF(timeout: Double = 5) {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if lock.withLock({ closed }) { return }
            usleep(10_000)
        }
    }

    /// Reads the pipe on its own thread with blocking read(2) until EOF. (FileHandle's
    /// readabilityHandler lost the tail of multi-megabyte outputs here: the last lines of a
    /// 3.7 MB JSON stream never arrived.)
    func attach(_ pipe: Pipe) {
        let fd = pipe.fileHandleForReading.fileDescriptor
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.lock()
                buffer.append(contentsOf: chunk[0..<n])
                var start = buffer.startIndex
                while let nl = buffer[start...].firstIndex(of: 0x0A) {
                    lines.append(String(decoding: buffer[start..<nl], as: UTF8.self))
                    start = nl + 1
                }
                buffer.removeSubrange(buffer.startIndex..<start)
                lock.unlock()
            }
            lock.withLock { closed = true }
        }
        thread.start()
    }

    var all: [String] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }

    /// Waits (bounded) for a line matching `predicate`.
    func waitFor(timeout: Double = 10, _ predicate: (String) -> Bool) -> String? {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let l = all.first(where: predicate) { return l }
            usleep(20_000)
        }
        return nil
    }
}

final class Backend: @unchecked Sendable {
    let process = Process()
    let out = LineCollector()
    let err = LineCollector()
    private(set) var address = ""
    let name: String

    /// Starts `grpctop serve` (or, with `python: true`, the grpcio server) and waits until it listens.
    init(name: String, host: String = "127.0.0.1", port: Int = 0, python: Bool = false, extra: [String] = []) throws {
        self.name = name
        if python {
            process.executableURL = URL(fileURLWithPath: Paths.python)
            process.arguments = [Paths.pyServer, "--name", name, "--host", host, "--port", "\(port)"] + extra
        } else {
            process.executableURL = URL(fileURLWithPath: Paths.grpctop)
            process.arguments = ["serve", "--name", name, "--host", host, "--port", "\(port)"] + extra
        }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        out.attach(o)
        err.attach(e)
        try process.run()
        guard let line = out.waitFor(timeout: 15, { $0.hasPrefix("serving ") }) else {
            process.terminate()
            throw FleetError("\(name) did not start: \(err.all.joined(separator: " | "))")
        }
        address = String(line.split(separator: " ").last ?? "")
    }

    var port: Int { Int(address.split(separator: ":").last ?? "") ?? 0 }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Stops it (SIGTERM: graceful drain) and returns the per-method counts it printed.
    @discardableResult
    func stop(_ sig: Int32 = SIGTERM) -> [String: Any] {
        if process.isRunning { kill(process.processIdentifier, sig) }
        let end = Date().addingTimeInterval(40)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        usleep(50_000)
        guard let json = out.all.last(where: { $0.hasPrefix("{") }),
              let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        return obj
    }

    /// Total RPCs the server answered.
    static func total(_ stats: [String: Any]) -> Int { stats["total"] as? Int ?? -1 }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

struct FleetError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A run of `grpctop watch … --batch --output json`.
final class WatchRun: @unchecked Sendable {
    let process = Process()
    let out = LineCollector()
    let err = LineCollector()

    init(_ args: [String], subcommand: String? = "watch", env: [String: String] = [:], binary: String = Paths.grpctop) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = (subcommand.map { [$0] } ?? []) + args
        if !env.isEmpty {
            var e = ProcessInfo.processInfo.environment
            for (k, v) in env { e[k] = v }
            process.environment = e
        }
        let o = Pipe(), e = Pipe()
        process.standardOutput = o
        process.standardError = e
        process.standardInput = FileHandle.nullDevice
        out.attach(o)
        err.attach(e)
        try process.run()
    }

    /// Waits for the process (bounded) and returns its exit status.
    @discardableResult
    func wait(timeout: Double = 60) -> Int32 {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        out.waitForEOF()
        err.waitForEOF()
        return process.terminationStatus
    }

    var objects: [[String: Any]] {
        out.all.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
    var snapshots: [[String: Any]] { objects.filter { $0["type"] as? String == "snapshot" } }
    var summary: [String: Any]? { objects.last { $0["type"] as? String == "summary" } }
    var verdict: [String: Any]? { objects.last { $0["type"] as? String == "verdict" } }

    /// Waits until a snapshot satisfies `predicate`.
    func waitForSnapshot(timeout: Double = 15, _ predicate: ([String: Any]) -> Bool) -> [String: Any]? {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if let s = snapshots.last, predicate(s) { return s }
            usleep(50_000)
        }
        return nil
    }
}

extension Dictionary where Key == String, Value == Any {
    func rows(_ key: String) -> [[String: Any]] { self[key] as? [[String: Any]] ?? [] }
    func int(_ key: String) -> Int { self[key] as? Int ?? (self[key] as? Double).map { Int($0) } ?? 0 }
    func double(_ key: String) -> Double { self[key] as? Double ?? Double(self[key] as? Int ?? 0) }
    func string(_ key: String) -> String { self[key] as? String ?? "" }
    func dict(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
}

/// Writes an endpoint file atomically (temp file + rename), as RECIPES recommends.
func writeEndpoints(_ path: String, _ lines: [String]) throws {
    let tmp = path + ".tmp"
    try (lines.joined(separator: "\n") + "\n").write(toFile: tmp, atomically: false, encoding: .utf8)
    _ = rename(tmp, path)
}

func tempDir() -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("grpctop-test-\(UUID().uuidString.prefix(8))").path
    try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// `n` `grpctop serve` pods on 127.0.0.(2+i), sharing the first one's port (pod IPs behind one
/// containerPort, as a headless Service or EndpointSlices list them).
func podsOnLoopbackIPs(_ n: Int, from first: Int = 0, port: Int = 0, prefix: String = "web-") throws -> [Backend] {
    var out: [Backend] = []
    var p = port
    for i in first..<(first + n) {
        let b = try Backend(name: "\(prefix)\(i)", host: "127.0.0.\(2 + i)", port: p)
        if p == 0 { p = b.port }
        out.append(b)
    }
    return out
}

/// Binds `fd` to 127.0.0.1:`port` (0: any free one); the port it got, or nil.
func bindLoopback(_ fd: Int32, port: Int = 0) -> Int? {
    var a = sockaddr_in()
    a.sin_family = sa_family_t(AF_INET)
    a.sin_addr.s_addr = inet_addr("127.0.0.1")
    a.sin_port = UInt16(port).bigEndian
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &a) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    return ok ? Int(UInt16(bigEndian: a.sin_port)) : nil
}

/// A TCP port free on 127.0.0.1 now.
func freeTCPPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    guard let port = bindLoopback(fd) else { throw FleetError("no free TCP port") }
    return port
}

/// Starts a helper with posix_spawn, stdio on /dev/null. (A Foundation `Process` for a helper
/// stopped Foundation from reaping the test's other children here; these are waited by PID.)
func spawnQuiet(_ path: String, _ args: [String]) throws -> pid_t {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = ([(path as NSString).lastPathComponent] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let rc = posix_spawnp(&pid, path, &actions, nil, argv, environ)
    guard rc == 0 else { throw FleetError("cannot start \(path): \(String(cString: strerror(rc)))") }
    return pid
}

/// Runs a short command to completion; returns its exit status.
@discardableResult
func runTool(_ path: String, _ args: [String]) throws -> Int32 {
    let pid = try spawnQuiet(path, args)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status >> 8) & 0xff
}

/// A process's resident memory now, in kB (/proc/PID/status VmRSS; 0 once it is gone).
func residentKB(_ pid: pid_t) -> Int {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}
