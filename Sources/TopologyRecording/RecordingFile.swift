import CZlib
import Foundation
import TopologyCore

/// Writes a recording durably: lines collect in memory and reach the file at least once a
/// second (a timer) and on `close`, so a crash or SIGKILL loses at most the last second and
/// leaves a readable file (a gzip file is sync-flushed, so its prefix decompresses).
///
/// Every `keyframeEveryMs` of session time it also writes a keyframe — the whole model as it
/// stands — and on `close` an index of the keyframes (time, byte offset, line), the markers and
/// the duration as the last line. A gzip file starts a new gzip member at each keyframe and for
/// the index, so a reader can start decompressing at any keyframe: opening and seeking read one
/// segment, not the file (see `IndexedRecording`).
///
/// `record` only appends the event (and, when a keyframe is due, a copy of the model — a value
/// type, so the copy is a reference) to a list: it runs on the engine's loop, between RPCs. The
/// JSON encoding and the disk writes happen in `flush`, on the recorder's own queue.
public final class RecordingWriter: @unchecked Sendable {
    public let path: String
    public let compressed: Bool
    public let keyframeEveryMs: Millis
    /// A keyframe of 100 busy endpoints is ~0.5 MB of JSON (~50 kB gzip) and a seek applies up
    /// to one interval + 10 s of ticks after it: every 20 s is the
    /// balance between file size and seek time (README, Performance).
    public static let defaultKeyframeEveryMs: Millis = 20_000
    private enum Pending {
        case line(RecordedLine)
        case keyframe(Millis, Model)
    }
    /// Guards `pending` and `nextKeyframe` only: held for an append or a swap, never during
    /// encoding or I/O.
    private let lock = NSLock()
    private var pending: [Pending] = []
    private var nextKeyframe: Millis
    /// Serialises flushes and the file state below.
    private let io = NSLock()
    private let fd: Int32
    /// The open gzip member (on a `dup` of `fd`: closing it ends the member, not the file).
    private var gz: gzFile?
    private var closed = false
    private var failure: String?
    private var timer: DispatchSourceTimer?
    private var index = RecordingIndex()
    /// Keyframes written whose models do not hold the last 10 s of latency samples yet: each
    /// becomes a restart point (goes into the index) once `TrafficSeries.recentTicks` stats
    /// ticks have followed it.
    private var awaiting: [(keyframe: RecordingIndex.Keyframe, ticksLeft: Int)] = []
    private var linesWritten = 0

    public init(path: String, header: RecordingHeader, keyframeEveryMs: Millis = RecordingWriter.defaultKeyframeEveryMs) throws(RecordingError) {
        self.path = path
        self.keyframeEveryMs = max(1, keyframeEveryMs)
        nextKeyframe = self.keyframeEveryMs
        compressed = path.hasSuffix(".gz")
        // Private to its owner (it names hosts, pods and the command line), and never through a
        // symbolic link: a link planted at the path must not redirect the write elsewhere.
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            if errno == ELOOP { throw RecordingError("--record \(path): it is a symbolic link; grpctop does not write through one (name the real file)") }
            throw RecordingError("--record \(path): cannot create it (\(String(cString: strerror(errno))))")
        }
        _ = fchmod(fd, 0o600)
        if compressed {
            gz = gzdopen(dup(fd), "wb6")
            guard gz != nil else { throw RecordingError("--record \(path): cannot start gzip") }
        }
        var line: Data
        do { line = try RecordingCodec.encoder.encode(header) } catch {
            throw RecordingError("cannot encode the recording header: \(error)")
        }
        line.append(UInt8(ascii: "\n"))
        io.withLock {
            write(line)
            linesWritten = 1
        }
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "grpctop.recorder"))
        t.schedule(deadline: .now() + 1, repeating: 1)
        t.setEventHandler { [weak self] in self?.flush() }
        t.resume()
        timer = t
    }

    /// Appends one event, and a keyframe of `model` when one is due (called on the engine's
    /// loop, with the model as it stands after applying the event).
    public func record(_ e: TimedEvent, model: Model) {
        lock.withLock {
            pending.append(.line(.event(e)))
            if e.at >= nextKeyframe {
                pending.append(.keyframe(e.at, model))
                nextKeyframe = e.at + keyframeEveryMs
            }
        }
    }

    /// Notes that a live `--batch` snapshot was printed after the events recorded so far.
    public func markSnapshot(at: Millis) {
        lock.withLock { pending.append(.line(.snapshot(at: at))) }
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
            let items = lock.withLock {
                let l = pending
                pending.removeAll(keepingCapacity: true)
                return l
            }
            guard !closed, failure == nil, !items.isEmpty else { return }
            var data = Data()
            for item in items {
                switch item {
                case .line(let line):
                    let encoded: Data?
                    switch line {
                    case .event(let e):
                        encoded = try? RecordingCodec.encodeEvent(e)
                        if case .marker = e.event { index.markers.append(e.at) }
                        if case .stats = e.event, !awaiting.isEmpty {
                            for j in awaiting.indices { awaiting[j].ticksLeft -= 1 }
                            while let first = awaiting.first, first.ticksLeft <= 0 {
                                var k = first.keyframe
                                k.from = e.at
                                index.keyframes.append(k)
                                awaiting.removeFirst()
                            }
                        }
                    case .snapshot(let t):
                        encoded = try? RecordingCodec.encodeSnapshotMark(t)
                        index.snapshots = true
                    }
                    guard let encoded else { continue }
                    data.append(encoded)
                    data.append(UInt8(ascii: "\n"))
                    linesWritten += 1
                    index.duration = max(index.duration, line.at)
                case .keyframe(let t, let model):
                    guard let encoded = try? RecordingCodec.encodeKeyframe(at: t, model) else { continue }
                    write(data)
                    data.removeAll(keepingCapacity: true)
                    guard let offset = startSegment() else { return }
                    awaiting.append((RecordingIndex.Keyframe(at: t, offset: offset, line: linesWritten + 1, from: t), TrafficSeries.recentTicks))
                    data.append(encoded)
                    data.append(UInt8(ascii: "\n"))
                    linesWritten += 1
                }
            }
            write(data)
        }
    }

    /// Where the next line starts in the file: for gzip, the current member ends and a new one
    /// begins. Under `io`; nil after a failure.
    private func startSegment() -> Int64? {
        guard failure == nil else { return nil }
        if let old = gz {
            gz = nil
            guard gzclose(old) == Z_OK, let next = gzdopen(dup(fd), "wb6") else {
                failure = "recording to \(path) stopped: cannot start a gzip member"
                return nil
            }
            gz = next
        }
        let off = lseek(fd, 0, SEEK_CUR)
        guard off >= 0 else {
            failure = "recording to \(path) stopped: \(String(cString: strerror(errno)))"
            return nil
        }
        return Int64(off)
    }

    /// Writes `data` (plain, or gzip with a sync flush); the first failure stops recording. Under `io`.
    private func write(_ data: Data) {
        guard failure == nil, !data.isEmpty else { return }
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

    /// Writes what is left and the index, and closes the file.
    public func close() {
        timer?.cancel()
        timer = nil
        flush()
        io.withLock {
            guard !closed else { return }
            closed = true
            if failure == nil, let at = startSegment() {
                index.bytes = at
                if let line = try? RecordingCodec.encodeIndex(index) { write(line + Data("\n".utf8)) }
            }
            if let gz { gzclose(gz) }
            gz = nil
            fsync(fd)
            Foundation.close(fd)
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
        let limit = RecordingCodec.maxSegmentBytes
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        if size > limit {
            throw RecordingError("\(path): \(size / (1 << 20)) MiB and no usable index: too large to read whole (at most \(limit >> 20) MiB)")
        }
        // (Foundation's contents(atPath:) leaks its buffer on an empty file: LeakSanitizer, fuzzing.)
        if size == 0 { throw RecordingError("\(path) is empty: not a grpctop recording (make one with grpctop watch --record FILE)") }
        guard let raw = FileManager.default.contents(atPath: path) else { throw RecordingError("\(path): cannot read it") }
        if raw.starts(with: [0x1f, 0x8b]) {
            guard let data = gunzip(path, limit: limit) else {
                throw RecordingError("\(path): inflates to more than \(limit >> 20) MiB without a usable index: not read")
            }
            return try parse(data, name: path, version: version)
        }
        return try parse(raw, name: path, version: version)
    }

    /// Everything a possibly truncated gzip file decompresses to; nil past `limit` bytes (a
    /// small file can inflate to gigabytes).
    static func gunzip(_ path: String, limit: Int) -> Data? {
        guard let f = gzopen(path, "rb") else { return Data() }
        defer { gzclose(f) }
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buf.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32($0.count)) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<Int(n)])
            if out.count > limit { return nil }
        }
        return out
    }

    /// Parses recording text; never crashes, whatever the bytes.
    public static func parse(_ data: Data, name: String, version: String) throws(RecordingError) -> Recording {
        guard !data.isEmpty else { throw RecordingError("\(name) is empty: not a grpctop recording (make one with grpctop watch --record FILE)") }
        // The first line decides: a header, or not a recording (without splitting the rest).
        let firstLineEnd = data.prefix(RecordingCodec.maxHeaderBytes + 1).firstIndex(of: 0x0A) ?? min(data.endIndex, data.startIndex + RecordingCodec.maxHeaderBytes + 1)
        guard firstLineEnd - data.startIndex <= RecordingCodec.maxHeaderBytes else {
            throw RecordingError("\(name) is not a grpctop recording (its first line is longer than a header can be)")
        }
        _ = try parseHeader(data[data.startIndex..<firstLineEnd], name: name, version: version, decoder: RecordingCodec.decoder())
        var (lineStarts, truncated) = lineRanges(data, from: data.startIndex)
        if lineStarts.isEmpty { lineStarts.append((data.startIndex, data.endIndex)) }
        let decoder = RecordingCodec.decoder()
        let (h0, h1) = lineStarts[0]
        let header = try parseHeader(data[h0..<h1], name: name, version: version, decoder: decoder)
        if truncated && lineStarts.count == 1 && lineStarts[0].1 == data.endIndex {
            // Only a partial header line: nothing to replay yet.
            return Recording(header: header, lines: [], stoppedAt: nil, truncated: true)
        }
        let (lines, stopped) = decodeLines(data, lineStarts.dropFirst(), firstLine: 2, name: name, decoder: decoder)
        if let first = lines.first, case .event(let e) = first, case .sessionStarted = e.event {} else if !lines.isEmpty {
            throw RecordingError("\(name):2: the recording does not start with the session (its first event must be sessionStarted)")
        }
        return Recording(header: header, lines: lines, stoppedAt: stopped, truncated: truncated)
    }

    /// The first line: a grpctop-recording header of a format this grpctop reads.
    static func parseHeader(_ headerBytes: Data.SubSequence, name: String, version: String, decoder: JSONDecoder) throws(RecordingError) -> RecordingHeader {
        struct Probe: Decodable { var format: String?; var version: Int?; var grpctop: String? }
        guard let probe = try? decoder.decode(Probe.self, from: headerBytes), probe.format == RecordingHeader.formatName else {
            throw RecordingError("\(name) is not a grpctop recording (its first line is not a grpctop-recording header)")
        }
        if let v = probe.version, v > RecordingHeader.currentVersion {
            throw RecordingError("\(name) has recording format \(v), written by grpctop \(probe.grpctop ?? "?"); this grpctop (\(version)) reads format \(RecordingHeader.currentVersion): replay it with grpctop \(probe.grpctop ?? "of that version") or newer")
        }
        do { return try decoder.decode(RecordingHeader.self, from: headerBytes) } catch {
            throw RecordingError("\(name):1: the header is incomplete (\(describe(error)))")
        }
    }

    /// Decodes event and snapshot lines (byte ranges of `data`, numbered from `firstLine`),
    /// passing over keyframes and the index; stops at the first bad line.
    static func decodeLines<S: Sequence<(Int, Int)>>(_ data: Data, _ ranges: S, firstLine: Int, name: String, decoder: JSONDecoder,
                                                   after: Millis = 0) -> ([RecordedLine], RecordingError?) {
        var lines: [RecordedLine] = []
        lines.reserveCapacity(ranges.underestimatedCount)
        var last = after
        var withoutEvent = 0
        for (i, (a, b)) in ranges.enumerated() {
            let bytes = data[a..<b]
            let number = firstLine + i
            if bytes.count > RecordingCodec.maxLineBytes {
                return (lines, RecordingError("\(name):\(number): a line of \(bytes.count >> 20) MiB (at most \(RecordingCodec.maxLineBytes >> 20) MiB): not a recording line"))
            }
            if bytes.isEmpty {
                withoutEvent += 1
                if withoutEvent >= RecordingCodec.maxLinesWithoutEvent {
                    return (lines, RecordingError("\(name):\(number): \(withoutEvent) lines in a row without an event: not a recording"))
                }
                continue
            }
            withoutEvent = 0
            // Keyframes and the index only speed up seeking: reading lines passes over them.
            if RecordingCodec.isKeyframe(bytes) || bytes.starts(with: RecordingCodec.indexPrefix) { continue }
            let line: RecordingCodec.EventLine
            if let fast = FastStatsLine.decode(bytes) {
                line = RecordingCodec.EventLine(t: fast.at, e: fast.event, snapshot: nil)
            } else {
                do { line = try decoder.decode(RecordingCodec.EventLine.self, from: bytes) } catch {
                    return (lines, RecordingError("\(name):\(number): not a recording line (\(describe(error)))"))
                }
            }
            guard line.t >= last else {
                return (lines, RecordingError("\(name):\(number): time goes backwards (\(line.t) ms after \(last) ms)"))
            }
            last = line.t
            if let e = line.e {
                lines.append(.event(TimedEvent(at: line.t, e)))
            } else if line.snapshot == true {
                lines.append(.snapshot(at: line.t))
            } else {
                return (lines, RecordingError("\(name):\(number): a line with neither an event nor a snapshot mark"))
            }
        }
        return (lines, nil)
    }

    /// The (start, end) byte ranges of the complete lines of `data` from `start`, and whether
    /// it ends inside a line.
    /// Stops after `RecordingCodec.maxLinesWithoutEvent` empty lines in a row (they are kept, so
    /// the reader reports where): a file of newlines must not become a billion ranges.
    static func lineRanges(_ data: Data, from start: Int) -> (ranges: [(Int, Int)], truncated: Bool) {
        guard start < data.endIndex else { return ([], false) }
        return data[start...].withUnsafeBytes { raw -> ([(Int, Int)], Bool) in
            // memchr: Data's own firstIndex(of:) goes byte by byte through a generic path.
            var out: [(Int, Int)] = []
            guard let base = raw.baseAddress else { return (out, false) }
            var off = 0
            var empty = 0
            while off < raw.count {
                guard let hit = memchr(base + off, 0x0A, raw.count - off) else { return (out, true) }
                let nl = base.distance(to: UnsafeRawPointer(hit))
                out.append((start + off, start + nl))
                empty = nl == off ? empty + 1 : 0
                if empty >= RecordingCodec.maxLinesWithoutEvent { return (out, false) }
                off = nl + 1
            }
            return (out, false)
        }
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
