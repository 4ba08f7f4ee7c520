import CZlib
import Foundation
import TopologyCore

/// What a replay reads: the header, the length and the markers, and the lines in segments, each
/// starting from a known model — the empty model for the first, a keyframe for the others (a
/// seek starts from a keyframe only from its `restartFrom` on).
///
/// `open` uses the index a closed recording ends with: it reads the header, the index and the
/// first segment, and every other segment (one keyframe plus ≤ `keyframeEveryMs` of lines) only
/// when a seek or the playback reaches it, so opening and seeking cost one or two segments
/// whatever the file's length. A recording without an index (a recorder that was killed, or
/// format 1) gets one rebuilt by a pass over the file (`IndexRecovery`); a file too short for
/// that is read whole, which says what is wrong with it.
public final class ReplaySource: @unchecked Sendable {
    public struct Segment: Sendable {
        /// The keyframe line the segment starts with (nil for the first segment: the empty
        /// model). Decoded only when a seek starts from it (`keyframeModel`): playing through a
        /// segment, or passing through it to a later target, does not need it.
        var keyframe: Data?
        public var lines: [RecordedLine]
    }

    public let name: String
    public let header: RecordingHeader
    public let markers: [Millis]
    public let hasSnapshotMarks: Bool
    /// The file ended inside a line (a killed recorder).
    public let truncated: Bool
    /// Session time each segment starts at (the first: 0): its keyframe's time.
    public let segmentStarts: [Millis]
    /// From when on each segment's keyframe may start a seek (its index entry's `from`: the
    /// keyframe plus 10 s of stats ticks rebuild the model exactly).
    public let restartFrom: [Millis]
    /// Whether the file is read through an index (segments are read as needed): its own, or
    /// one rebuilt by reading it once (`indexRebuilt`: a recorder that was killed).
    public let indexed: Bool
    public let indexRebuilt: Bool
    /// A gzip file (read through its index).
    public var compressed: Bool {
        if case .file(_, let compressed, _, _) = storage { return compressed }
        return false
    }

    private enum Storage {
        case memory([RecordedLine])
        /// Byte ranges of the segments in the file; the keyframes' line numbers.
        case file(fd: Int32, compressed: Bool, ranges: [Range<Int64>], lines: [Int])
    }
    private let storage: Storage
    /// Guards everything below (a player uses one thread, but the class is shared by value copies).
    private let lock = NSLock()
    private var cache: [(index: Int, segment: Segment)] = []
    private var models: [(index: Int, model: Model)] = []
    private var _duration: Millis
    private var _stoppedAt: RecordingError?
    private var _available: Int

    /// A recording read whole.
    public init(_ recording: Recording, name: String = "recording") {
        self.name = name
        header = recording.header
        storage = .memory(recording.lines)
        markers = recording.lines.compactMap { line in
            if case .event(let e) = line, case .marker = e.event { return e.at }
            return nil
        }
        hasSnapshotMarks = recording.hasSnapshotMarks
        truncated = recording.truncated
        segmentStarts = [0]
        restartFrom = [0]
        indexed = false
        indexRebuilt = false
        _duration = recording.duration
        _stoppedAt = recording.stoppedAt
        _available = 1
    }

    private init(name: String, header: RecordingHeader, index: RecordingIndex, fd: Int32, compressed: Bool, ranges: [Range<Int64>], first: Segment,
                 stopped: RecordingError?, rebuilt: Bool, truncated: Bool) {
        self.name = name
        self.header = header
        markers = index.markers
        hasSnapshotMarks = index.snapshots
        self.truncated = truncated
        indexRebuilt = rebuilt
        segmentStarts = [0] + index.keyframes.map(\.at)
        restartFrom = [0] + index.keyframes.map(\.from)
        indexed = true
        storage = .file(fd: fd, compressed: compressed, ranges: ranges, lines: [1] + index.keyframes.map(\.line))
        _duration = index.duration
        _stoppedAt = nil
        _available = ranges.count
        cache = [(0, first)]
        if let stopped { cut(at: 0, lines: first.lines, error: stopped) }
    }

    deinit {
        if case .file(let fd, _, _, _) = storage { close(fd) }
    }

    /// Byte offsets of the keyframes (an indexed file), in index order.
    var indexedOffsets: [Int64]? {
        if case .file(_, _, let ranges, _) = storage { return ranges.dropFirst().map(\.lowerBound) }
        return nil
    }

    /// Session time of the last line that can be replayed.
    public var duration: Millis { lock.withLock { _duration } }
    /// Set once a line could not be read: the replay ends before it.
    public var stoppedAt: RecordingError? { lock.withLock { _stoppedAt } }
    /// Segments that can be replayed (fewer than `segmentStarts` after a damaged one).
    public var availableSegments: Int { lock.withLock { _available } }

    /// The segment whose keyframe a seek to `t` starts from: the last one usable at `t`.
    public func restartSegment(for t: Millis) -> Int {
        var lo = 0, hi = min(restartFrom.count, availableSegments) - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if restartFrom[mid] <= t { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Segment `i` (< `availableSegments`), read and decoded on first use; the last few are kept.
    public func segment(_ i: Int) -> Segment {
        lock.withLock {
            if let hit = cache.first(where: { $0.index == i }) { return hit.segment }
            let seg = load(i)
            cache.append((i, seg))
            if cache.count > 4 { cache.removeFirst() }
            return seg
        }
    }

    /// The model segment `i` (> 0) starts from, decoded from its keyframe (the last few are
    /// kept). nil when the keyframe is damaged: the replay then ends before the segment
    /// (`stoppedAt` says why), and a seek must start from an earlier one.
    public func keyframeModel(_ i: Int) -> Model? {
        guard i > 0, i < availableSegments, let line = segment(i).keyframe else { return nil }
        return lock.withLock {
            if let hit = models.first(where: { $0.index == i }) { return hit.model }
            do {
                let m = try RecordingCodec.decoder().decode(RecordingCodec.KeyframeLine.self, from: line).keyframe
                models.append((i, m))
                if models.count > 2 { models.removeFirst() }
                return m
            } catch {
                if case .file(_, _, _, let lineNumbers) = storage {
                    cut(at: i, lines: [], error: RecordingError("\(name):\(lineNumbers[i]): not a keyframe (\(Recording.describe(error)))"))
                }
                return nil
            }
        }
    }

    /// Under `lock`.
    private func load(_ i: Int) -> Segment {
        switch storage {
        case .memory(let lines):
            return Segment(keyframe: nil, lines: lines)
        case .file(let fd, let compressed, let ranges, let lineNumbers):
            let r = ranges[i]
            guard let raw = Self.pread(fd, r), Int64(raw.count) == r.count else {
                return cut(at: i, lines: [], error: RecordingError("\(name): cannot read bytes \(r.lowerBound)…\(r.upperBound) (\(String(cString: strerror(errno))))"))
            }
            let text: Data
            if compressed {
                let (out, complete) = Self.inflate(raw, limit: RecordingCodec.maxSegmentBytes)
                if out.count > RecordingCodec.maxSegmentBytes {
                    return cut(at: i, lines: [], error: RecordingError("\(name):\(lineNumbers[i]): this segment inflates to more than \(RecordingCodec.maxSegmentBytes >> 20) MiB: not a recording's"))
                }
                // A rebuilt index's last segment may end inside a gzip member (a killed recorder).
                guard complete || (indexRebuilt && i == ranges.count - 1) else { return cut(at: i, lines: [], error: RecordingError("\(name):\(lineNumbers[i]): the gzip data of this segment is damaged")) }
                text = out
            } else {
                text = raw
            }
            let (ranges, _) = Recording.lineRanges(text, from: text.startIndex)
            guard let first = ranges.first else {
                return cut(at: i, lines: [], error: RecordingError("\(name):\(lineNumbers[i]): the index points to an empty segment"))
            }
            let decoder = RecordingCodec.decoder()
            var keyframe: Data?
            if i > 0 {
                guard RecordingCodec.isKeyframe(text[first.0..<first.1]) else {
                    return cut(at: i, lines: [], error: RecordingError("\(name):\(lineNumbers[i]): not a keyframe"))
                }
                keyframe = Data(text[first.0..<first.1])
            }
            let (lines, stopped) = Recording.decodeLines(text, ranges.dropFirst(), firstLine: lineNumbers[i] + 1, name: name, decoder: decoder,
                                                         after: segmentStarts[i])
            if let stopped { cut(at: i, lines: lines, error: stopped) }
            return Segment(keyframe: keyframe, lines: lines)
        }
    }

    /// A damaged segment: the replay ends at its last good line. Under `lock`.
    @discardableResult
    private func cut(at i: Int, lines: [RecordedLine], error: RecordingError) -> Segment {
        if _stoppedAt == nil { _stoppedAt = error }
        if i > 0 && lines.isEmpty {
            // Not even the keyframe: the segment before is the last.
            _available = min(_available, i)
            _duration = min(_duration, segmentStarts[i])
        } else {
            _available = min(_available, i + 1)
            _duration = min(_duration, lines.last?.at ?? segmentStarts[i])
        }
        return Segment(keyframe: nil, lines: lines)
    }

    // MARK: - opening

    /// Opens a recording: through its index when it has one, otherwise by reading it whole.
    public static func open(path: String, version: String) throws(RecordingError) -> ReplaySource {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw RecordingError("\(path): no such file")
        }
        guard !isDir.boolValue else { throw RecordingError("\(path) is a directory, not a recording") }
        if let indexed = try openIndexed(path: path, version: version) { return indexed }
        return ReplaySource(try Recording.read(path: path, version: version), name: path)
    }

    /// Through the file's index, or one rebuilt by a pass over it; nil when neither works (it is
    /// then read whole, which reports what is wrong with it).
    static func openIndexed(path: String, version: String) throws(RecordingError) -> ReplaySource? {
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RecordingError("\(path): cannot read it (\(String(cString: strerror(errno))))") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 2, let magic = pread(fd, 0..<2) else {
            close(fd)
            return nil
        }
        let size = Int64(st.st_size)
        let compressed = magic == Data([0x1f, 0x8b])
        var rebuilt = false, truncated = false
        var damaged: RecordingError?
        let index: RecordingIndex, indexOffset: Int64
        // A file whose first line is no recording header goes straight to the scan, which stops
        // at that line and says why (looking for an index at the end of a gzip bomb first would
        // inflate megabytes for nothing).
        if firstLineIsHeader(fd: fd, size: size, compressed: compressed), let (found, at) = findIndex(fd: fd, size: size, compressed: compressed),
           validate(found, indexOffset: at),
           matchesFile(found, indexOffset: at, fd: fd, compressed: compressed) {
            (index, indexOffset) = (found, at)
        } else if let r = IndexRecovery.scan(fd: fd, size: size, compressed: compressed) {
            if let why = r.notARecording {
                close(fd)
                throw RecordingError("\(path) is not a grpctop recording (\(why))")
            }
            guard validate(r.index, indexOffset: size) else {
                close(fd)
                return nil
            }
            // No index (a recorder that was killed), or one that does not match the file's
            // bytes (a gunzipped or edited file): rebuilt by one pass over the file.
            (index, indexOffset) = (r.index, r.end)
            (rebuilt, truncated) = (true, r.truncated)
            damaged = r.damaged.map { RecordingError("\(path):\($0)") }
        } else {
            close(fd)
            return nil
        }
        let bounds = [0] + index.keyframes.map(\.offset) + [indexOffset]
        let ranges = (0..<bounds.count - 1).map { bounds[$0]..<bounds[$0 + 1] }
        // The first segment holds the header.
        guard let raw = pread(fd, ranges[0]) else {
            close(fd)
            throw RecordingError("\(path): cannot read it (\(String(cString: strerror(errno))))")
        }
        let text = compressed ? inflate(raw, limit: RecordingCodec.maxSegmentBytes).0 : raw
        let (lineRanges, _) = Recording.lineRanges(text, from: text.startIndex)
        guard let h = lineRanges.first else {
            close(fd)
            return nil
        }
        let decoder = RecordingCodec.decoder()
        let header: RecordingHeader
        do { header = try Recording.parseHeader(text[h.0..<h.1], name: path, version: version, decoder: decoder) } catch {
            close(fd)
            throw error
        }
        let (lines, stopped) = Recording.decodeLines(text, lineRanges.dropFirst(), firstLine: 2, name: path, decoder: decoder)
        if let first = lines.first, case .event(let e) = first, case .sessionStarted = e.event {} else if !lines.isEmpty {
            close(fd)
            throw RecordingError("\(path):2: the recording does not start with the session (its first event must be sessionStarted)")
        }
        let source = ReplaySource(name: path, header: header, index: index, fd: fd, compressed: compressed, ranges: ranges,
                                  first: Segment(keyframe: nil, lines: lines), stopped: stopped, rebuilt: rebuilt, truncated: truncated)
        if let damaged { source.stopAtTheEnd(damaged) }
        return source
    }

    /// The pass that rebuilt the index stopped at a line no recorder writes: what comes before
    /// replays, and the replay says where it stops (the segments find the same line, or stop
    /// at their size limit before it).
    private func stopAtTheEnd(_ error: RecordingError) {
        lock.withLock { if _stoppedAt == nil { _stoppedAt = error } }
    }

    /// Keyframes in order, inside the file, before the index.
    private static func validate(_ index: RecordingIndex, indexOffset: Int64) -> Bool {
        var lastOffset: Int64 = 0, lastAt: Millis = 0, lastLine = 1, lastFrom: Millis = 0
        for k in index.keyframes {
            guard k.offset > lastOffset, k.offset < indexOffset, k.at >= lastAt, k.line > lastLine, k.from >= k.at, k.from >= lastFrom else { return false }
            (lastOffset, lastAt, lastLine, lastFrom) = (k.offset, k.at, k.line, k.from)
        }
        return index.duration >= lastFrom
    }

    /// Whether an index describes this file's bytes: it starts where it says the file ended
    /// (`bytes`, when the recorder wrote it), and every keyframe offset points at a gzip member
    /// (gzip) or at that keyframe's own line (plain). A `.gz` recording that was gunzipped keeps
    /// its index line with the compressed offsets: this tells, and the index is rebuilt.
    static func matchesFile(_ index: RecordingIndex, indexOffset: Int64, fd: Int32, compressed: Bool) -> Bool {
        if let bytes = index.bytes, bytes != indexOffset { return false }
        for k in index.keyframes {
            if compressed {
                guard let magic = pread(fd, k.offset..<k.offset + 3), magic == Data([0x1f, 0x8b, 0x08]) else { return false }
            } else {
                let expected = Data(#"{"t":\#(k.at)"#.utf8) + RecordingCodec.keyframeMarker
                guard let head = pread(fd, k.offset..<k.offset + Int64(expected.count)), head == expected else { return false }
            }
        }
        return true
    }

    /// The index line at the end of the file, and where it starts.
    /// Whether the file starts with a line that names the recording format (a cheap look at the
    /// first 256 kB; anything else is left to the scan's verdict).
    static func firstLineIsHeader(fd: Int32, size: Int64, compressed: Bool) -> Bool {
        guard let head = pread(fd, 0..<min(size, 256 << 10)) else { return false }
        let plain = compressed ? inflate(head[...], limit: RecordingCodec.maxHeaderBytes + 1).0 : head
        guard let nl = plain.prefix(RecordingCodec.maxHeaderBytes + 1).firstIndex(of: 0x0A) else { return false }
        return plain[plain.startIndex..<nl].range(of: Data(IndexRecovery.LineScanner.formatName)) != nil
    }

    private static func findIndex(fd: Int32, size: Int64, compressed: Bool) -> (RecordingIndex, Int64)? {
        let decoder = RecordingCodec.decoder()
        func decode(_ line: Data) -> RecordingIndex? {
            guard line.starts(with: RecordingCodec.indexPrefix) else { return nil }
            return try? decoder.decode(RecordingCodec.IndexLine.self, from: line).index
        }
        var tail: Int64 = 64 << 10
        while true {
            let start = max(0, size - tail)
            guard let data = pread(fd, start..<size) else { return nil }
            if compressed {
                // The index is the last gzip member: try each gzip header from the end.
                let magic: [UInt8] = [0x1f, 0x8b, 0x08]
                var i = data.endIndex - 3
                var tries = 0
                while i > data.startIndex, tries < 64 {
                    i -= 1
                    guard data[i] == magic[0], data[i + 1] == magic[1], data[i + 2] == magic[2] else { continue }
                    tries += 1
                    // An index line is small (a day of 20 s keyframes: ~170 kB); a member that
                    // inflates past 2 MiB is not it — and 64 tries of 16 MiB each cost seconds
                    // on a gzip bomb. A larger index is rebuilt by the scan instead.
                    let (out, complete) = inflate(data[i...], limit: 2 << 20)
                    guard complete, out.last == 0x0A, out.dropLast().firstIndex(of: 0x0A) == nil else { continue }
                    if let index = decode(Data(out.dropLast())) { return (index, start + Int64(i - data.startIndex)) }
                }
            } else if data.last == 0x0A {
                let body = data.dropLast()
                if let nl = body.lastIndex(of: 0x0A) {
                    let line = Data(body[(nl + 1)...])
                    return decode(line).map { ($0, start + Int64(nl + 1 - data.startIndex)) }
                }
            } else {
                return nil
            }
            if start == 0 || tail >= 8 << 20 { return nil }
            tail *= 4
        }
    }

    // MARK: - bytes

    static func pread(_ fd: Int32, _ r: Range<Int64>) -> Data? {
        var out = Data(count: Int(r.count))
        var done = 0
        let ok = out.withUnsafeMutableBytes { buf -> Bool in
            while done < buf.count {
                let n = Foundation.pread(fd, buf.baseAddress! + done, buf.count - done, off_t(r.lowerBound) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
        return ok ? out : nil
    }

    /// Decompresses one or more whole gzip members; `complete` is false when the data ends
    /// inside a member, is not gzip, or inflates past `limit` bytes (then it stops there: a few
    /// MB of gzip can inflate to gigabytes).
    static func inflate(_ input: Data.SubSequence, limit: Int) -> (Data, complete: Bool) {
        var out = Data()
        guard !input.isEmpty else { return (out, false) }
        var strm = z_stream()
        guard inflateInit2_(&strm, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return (out, false) }
        defer { inflateEnd(&strm) }
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        let input = Data(input)
        return input.withUnsafeBytes { raw -> (Data, Bool) in
            strm.next_in = UnsafeMutablePointer(mutating: raw.bindMemory(to: Bytef.self).baseAddress!)
            strm.avail_in = uInt(raw.count)
            while true {
                let rc = buf.withUnsafeMutableBufferPointer { b -> Int32 in
                    strm.next_out = b.baseAddress
                    strm.avail_out = uInt(b.count)
                    let rc = CZlib.inflate(&strm, Z_NO_FLUSH)
                    out.append(b.baseAddress!, count: b.count - Int(strm.avail_out))
                    return rc
                }
                if out.count > limit { return (out, false) }
                switch rc {
                case Z_STREAM_END:
                    if strm.avail_in == 0 { return (out, true) }
                    guard inflateReset(&strm) == Z_OK else { return (out, false) }
                case Z_OK: continue
                default: return (out, false)
                }
            }
        }
    }
}
