import CZlib
import Foundation
import TopologyCore

/// Writes a recording durably: lines collect in memory and reach the file at least once a
/// second (a timer) and on `close`, so a crash or SIGKILL loses at most the last second and
/// leaves a readable file (a gzip file is sync-flushed, so its prefix decompresses).
///
/// `record` only appends the event to a list (it runs on the engine's loop, between RPCs); the
/// JSON encoding and the disk writes happen in `flush`, on the recorder's own queue.
public final class RecordingWriter: @unchecked Sendable {
    public let path: String
    public let compressed: Bool
    /// Guards `pending` only: held for an append or a swap, never during encoding or I/O.
    private let lock = NSLock()
    private var pending: [RecordedLine] = []
    /// Serialises flushes and the file state below.
    private let io = NSLock()
    private var fd: Int32
    private var gz: gzFile?
    private var closed = false
    private var failure: String?
    private var timer: DispatchSourceTimer?

    public init(path: String, header: RecordingHeader) throws(RecordingError) {
        self.path = path
        compressed = path.hasSuffix(".gz")
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw RecordingError("--record \(path): cannot create it (\(String(cString: strerror(errno))))")
        }
        if compressed {
            gz = gzdopen(fd, "wb6")
            guard gz != nil else { throw RecordingError("--record \(path): cannot start gzip") }
        }
        var line: Data
        do { line = try RecordingCodec.encoder.encode(header) } catch {
            throw RecordingError("cannot encode the recording header: \(error)")
        }
        line.append(UInt8(ascii: "\n"))
        io.withLock { write(line) }
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "grpctop.recorder"))
        t.schedule(deadline: .now() + 1, repeating: 1)
        t.setEventHandler { [weak self] in self?.flush() }
        t.resume()
        timer = t
    }

    /// Appends one event (called on the engine's loop, after the model applied it).
    public func record(_ e: TimedEvent) {
        lock.withLock { pending.append(.event(e)) }
    }

    /// Notes that a live `--batch` snapshot was printed after the events recorded so far.
    public func markSnapshot(at: Millis) {
        lock.withLock { pending.append(.snapshot(at: at)) }
    }

    /// The file's size on disk now (what the header shows next to REC).
    public var bytesOnDisk: Int64 {
        var st = stat()
        return io.withLock { !closed && fstat(fd, &st) == 0 ? Int64(st.st_size) : 0 }
    }

    /// A write error, once one happened (the disk is full…): shown, and recording stops.
    public var error: String? { io.withLock { failure } }

    /// Encodes and writes what has been recorded since the last flush.
    public func flush() {
        io.withLock {
            let lines = lock.withLock {
                let l = pending
                pending.removeAll(keepingCapacity: true)
                return l
            }
            guard !closed, failure == nil, !lines.isEmpty else { return }
            var data = Data()
            for line in lines {
                let encoded: Data?
                switch line {
                case .event(let e): encoded = try? RecordingCodec.encodeEvent(e)
                case .snapshot(let t): encoded = try? RecordingCodec.encodeSnapshotMark(t)
                }
                guard let encoded else { continue }
                data.append(encoded)
                data.append(UInt8(ascii: "\n"))
            }
            write(data)
        }
    }

    /// Writes `data` (plain, or gzip with a sync flush); the first failure stops recording. Under `io`.
    private func write(_ data: Data) {
        let ok: Bool = data.withUnsafeBytes { raw in
            if let gz {
                var off = 0
                while off < raw.count {
                    let n = gzwrite(gz, raw.baseAddress! + off, UInt32(min(raw.count - off, 1 << 20)))
                    if n <= 0 { return false }
                    off += Int(n)
                }
                return gzflush(gz, Z_SYNC_FLUSH) == Z_OK
            }
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                off += n
            }
            return true
        }
        if !ok { failure = "recording to \(path) stopped: \(String(cString: strerror(errno)))" }
    }

    /// Writes what is left and closes the file.
    public func close() {
        timer?.cancel()
        timer = nil
        flush()
        io.withLock {
            guard !closed else { return }
            closed = true
            if let gz { gzclose(gz) } else { fsync(fd); Foundation.close(fd) }
        }
    }

    deinit { close() }
}

/// A recording read back: its header, every complete valid line, and — if reading stopped
/// early — why (`FILE:LINE: what`), with everything before it still usable.
public struct Recording: Sendable {
    public var header: RecordingHeader
    public var lines: [RecordedLine]
    /// Set when a line could not be read: replay stops there.
    public var stoppedAt: RecordingError?
    /// The file ended in the middle of a line (a recorder killed mid-write): that line is dropped.
    public var truncated: Bool

    public var events: Int { lines.reduce(0) { if case .event = $1 { $0 + 1 } else { $0 } } }
    public var duration: Millis { lines.last?.at ?? 0 }
    public var hasSnapshotMarks: Bool { lines.contains { if case .snapshot = $0 { true } else { false } } }

    /// Reads a file (plain or gzip, told apart by its first bytes).
    public static func read(path: String, version: String) throws(RecordingError) -> Recording {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw RecordingError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw RecordingError("\(path) is a directory, not a recording") }
        guard let raw = FileManager.default.contents(atPath: path) else { throw RecordingError("\(path): cannot read it") }
        let data = raw.starts(with: [0x1f, 0x8b]) ? gunzip(path) : raw
        return try parse(data, name: path, version: version)
    }

    /// Everything a possibly truncated gzip file decompresses to.
    static func gunzip(_ path: String) -> Data {
        guard let f = gzopen(path, "rb") else { return Data() }
        defer { gzclose(f) }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<Int(n)])
        }
        return out
    }

    /// Parses recording text; never crashes, whatever the bytes.
    public static func parse(_ data: Data, name: String, version: String) throws(RecordingError) -> Recording {
        guard !data.isEmpty else { throw RecordingError("\(name) is empty: not a grpctop recording (make one with grpctop watch --record FILE)") }
        var lineStarts: [(Int, Int)] = []
        var start = data.startIndex
        var truncated = false
        while start < data.endIndex {
            if let nl = data[start...].firstIndex(of: 0x0A) {
                lineStarts.append((start, nl))
                start = nl + 1
            } else {
                truncated = true
                if lineStarts.isEmpty { lineStarts.append((start, data.endIndex)) }
                break
            }
        }
        let decoder = RecordingCodec.decoder()
        let (h0, h1) = lineStarts[0]
        let headerBytes = data[h0..<h1]
        struct Probe: Decodable { var format: String?; var version: Int?; var grpctop: String? }
        guard let probe = try? decoder.decode(Probe.self, from: headerBytes), probe.format == RecordingHeader.formatName else {
            throw RecordingError("\(name) is not a grpctop recording (its first line is not a grpctop-recording header)")
        }
        if let v = probe.version, v > RecordingHeader.currentVersion {
            throw RecordingError("\(name) has recording format \(v), written by grpctop \(probe.grpctop ?? "?"); this grpctop (\(version)) reads format \(RecordingHeader.currentVersion): replay it with grpctop \(probe.grpctop ?? "of that version") or newer")
        }
        let header: RecordingHeader
        do { header = try decoder.decode(RecordingHeader.self, from: headerBytes) } catch {
            throw RecordingError("\(name):1: the header is incomplete (\(describe(error)))")
        }
        if truncated && lineStarts.count == 1 && lineStarts[0].1 == data.endIndex {
            // Only a partial header line: nothing to replay yet.
            return Recording(header: header, lines: [], stoppedAt: nil, truncated: true)
        }
        var lines: [RecordedLine] = []
        lines.reserveCapacity(lineStarts.count)
        var stopped: RecordingError?
        var last: Millis = 0
        for (i, (a, b)) in lineStarts.enumerated().dropFirst() {
            let bytes = data[a..<b]
            if bytes.isEmpty { continue }
            let line: RecordingCodec.EventLine
            do { line = try decoder.decode(RecordingCodec.EventLine.self, from: bytes) } catch {
                stopped = RecordingError("\(name):\(i + 1): not a recording line (\(describe(error)))")
                break
            }
            guard line.t >= last else {
                stopped = RecordingError("\(name):\(i + 1): time goes backwards (\(line.t) ms after \(last) ms)")
                break
            }
            last = line.t
            if let e = line.e {
                lines.append(.event(TimedEvent(at: line.t, e)))
            } else if line.snapshot == true {
                lines.append(.snapshot(at: line.t))
            } else {
                stopped = RecordingError("\(name):\(i + 1): a line with neither an event nor a snapshot mark")
                break
            }
        }
        if let first = lines.first, case .event(let e) = first, case .sessionStarted = e.event {} else if !lines.isEmpty {
            throw RecordingError("\(name):2: the recording does not start with the session (its first event must be sessionStarted)")
        }
        return Recording(header: header, lines: lines, stoppedAt: stopped, truncated: truncated)
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.underlyingError.map { "invalid JSON: \($0)" }.map { String($0.prefix(120)) } ?? c.debugDescription
        case DecodingError.keyNotFound(let k, _): return "no \"\(k.stringValue)\""
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return "\(path): \(c.debugDescription)"
        default: return String("\(error)".prefix(120))
        }
    }
}
