import CZlib
import Foundation
import TopologyCore

/// Rebuilds the index of a recording whose recorder was killed (SIGKILL, OOM) before writing
/// it, in one streaming pass, so the file replays a segment at a time like any other instead
/// of being read whole into memory.
///
/// The pass only finds where things are: each keyframe line that starts a segment (in a `.gz`
/// file, a keyframe starts a gzip member: its offset is the member's), the stats ticks after it
/// (a keyframe is a restart point from its `TrafficSeries.recentTicks`-th), the markers, the
/// snapshot marks and the time of the last complete line. Lines are read — and checked — only
/// when their segment is loaded, as for an indexed file.
enum IndexRecovery {
    struct Result {
        var index: RecordingIndex
        /// The file ends inside a line (or, gzip, inside a member): a recorder killed mid-write.
        /// Also set when the pass stopped at something no recorder writes (a line longer than
        /// any recording line, a run of lines without an event).
        var truncated: Bool
        /// Where the readable part ends (the file's size, unless the pass stopped early).
        var end: Int64
        /// Set when the first line is not a recording header: nothing to replay.
        var notARecording: String?
        /// Set when the pass stopped at a line no recorder writes: `LINE: what`.
        var damaged: String?
    }

    static func scan(fd: Int32, size: Int64, compressed: Bool) -> Result? {
        var s = LineScanner()
        let chunk = 1 << 20
        var offset: Int64 = 0
        if !compressed {
            while offset < size && s.stopped == nil {
                guard let data = ReplaySource.pread(fd, offset..<min(size, offset + Int64(chunk))), !data.isEmpty else { return nil }
                data.withUnsafeBytes { s.feed($0.bindMemory(to: UInt8.self), plainBase: offset, memberStart: nil) }
                offset += Int64(data.count)
            }
            return s.result(truncated: !s.carry.isEmpty, size: size)
        }
        var strm = z_stream()
        guard inflateInit2_(&strm, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&strm) }
        var out = [UInt8](repeating: 0, count: 1 << 18)
        var memberStart: Int64 = 0
        var atMemberStart = true
        var midMember = false
        var damaged = false
        reading: while offset < size {
            guard let data = ReplaySource.pread(fd, offset..<min(size, offset + Int64(chunk))), !data.isEmpty else { return nil }
            let base = offset
            offset += Int64(data.count)
            let stop: Bool = data.withUnsafeBytes { raw -> Bool in
                strm.next_in = UnsafeMutablePointer(mutating: raw.bindMemory(to: Bytef.self).baseAddress!)
                strm.avail_in = uInt(raw.count)
                while true {
                    var produced = 0
                    let rc = out.withUnsafeMutableBufferPointer { b -> Int32 in
                        strm.next_out = b.baseAddress
                        strm.avail_out = uInt(b.count)
                        let rc = CZlib.inflate(&strm, Z_NO_FLUSH)
                        produced = b.count - Int(strm.avail_out)
                        return rc
                    }
                    if s.stopped != nil { return true }
                    if produced > 0 {
                        midMember = true
                        // Only a line that begins a member can start a segment.
                        let start: Int64? = atMemberStart && s.carry.isEmpty ? memberStart : nil
                        out.withUnsafeBufferPointer { s.feed(UnsafeBufferPointer(rebasing: $0[0..<produced]), plainBase: nil, memberStart: start) }
                        atMemberStart = false
                    }
                    switch rc {
                    case Z_STREAM_END:
                        midMember = false
                        memberStart = base + Int64(raw.count) - Int64(strm.avail_in)
                        atMemberStart = true
                        guard inflateReset(&strm) == Z_OK else { return true }
                        if strm.avail_in == 0 { return false }
                    case Z_OK:
                        if strm.avail_in == 0 && strm.avail_out > 0 { return false }
                    case Z_BUF_ERROR:
                        return false  // needs the next chunk
                    default:
                        damaged = true
                        return true
                    }
                }
            }
            if stop { break reading }
        }
        return s.result(truncated: damaged || midMember || !s.carry.isEmpty, size: size)
    }

    /// Splits the text into lines and notes what the index needs.
    struct LineScanner {
        var carry: [UInt8] = []
        /// Where the line begun in `carry` may start a segment.
        var carryStart: Int64?
        var lines = 0
        var index = RecordingIndex()
        var awaiting: [(keyframe: RecordingIndex.Keyframe, ticksLeft: Int)] = []

        /// `plainBase`: the file offset of `bytes` (plain text: any line may start a segment).
        /// `memberStart`: for gzip text, the offset of the member a line beginning at `bytes[0]` starts.
        /// Why the pass stopped early: at a line that cannot be a recording's.
        enum Stop { case notARecording(String), damaged(String) }
        var stopped: Stop?
        /// Lines in a row without an event (empty, or no time): a file of newlines.
        var withoutEvent = 0

        mutating func feed(_ bytes: UnsafeBufferPointer<UInt8>, plainBase: Int64?, memberStart: Int64?) {
            guard let base = bytes.baseAddress, !bytes.isEmpty, stopped == nil else { return }
            var i = 0
            while i < bytes.count && stopped == nil {
                let lineStart: Int64? = plainBase.map { $0 + Int64(i) } ?? (i == 0 ? memberStart : nil)
                guard let hit = memchr(base + i, 0x0A, bytes.count - i) else {
                    if carry.isEmpty { carryStart = lineStart }
                    carry.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i...]))
                    let limit = lines == 0 ? RecordingCodec.maxHeaderBytes : RecordingCodec.maxLineBytes
                    if carry.count > limit {
                        stopped = lines == 0 ? .notARecording("its first line is longer than a header can be")
                            : .damaged("\(lines + 1): a line longer than \(RecordingCodec.maxLineBytes >> 20) MiB: not a recording line")
                        carry.removeAll()
                    }
                    return
                }
                let nl = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
                if carry.isEmpty {
                    line(UnsafeBufferPointer(rebasing: bytes[i..<nl]), start: lineStart)
                } else {
                    carry.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[i..<nl]))
                    let whole = carry
                    whole.withUnsafeBufferPointer { line($0, start: carryStart) }
                    carry.removeAll(keepingCapacity: true)
                }
                i = nl + 1
            }
        }

        mutating func line(_ l: UnsafeBufferPointer<UInt8>, start: Int64?) {
            lines += 1
            guard lines > 1 else {
                // The header: without it this is not a recording, and nothing more is read.
                if l.count > RecordingCodec.maxHeaderBytes || Self.find(Self.formatName, in: l) == nil {
                    stopped = .notARecording("its first line is not a grpctop-recording header")
                }
                return
            }
            if l.count > RecordingCodec.maxLineBytes {
                stopped = .damaged("\(lines): a line longer than \(RecordingCodec.maxLineBytes >> 20) MiB: not a recording line")
                return
            }
            if RecordingCodec.isKeyframe(l), let t = Self.leadingTime(l) {
                withoutEvent = 0
                if let start, start > 0 {
                    awaiting.append((RecordingIndex.Keyframe(at: t, offset: start, line: lines, from: t), TrafficSeries.recentTicks))
                }
                return
            }
            guard let t = Self.trailingTime(l) else {
                withoutEvent += 1
                if withoutEvent >= RecordingCodec.maxLinesWithoutEvent {
                    stopped = .damaged("\(lines): \(withoutEvent) lines in a row without an event: not a recording")
                }
                return
            }
            withoutEvent = 0
            index.duration = max(index.duration, t)
            if l.starts(with: Self.statsPrefix) {
                if awaiting.isEmpty { return }
                for j in awaiting.indices { awaiting[j].ticksLeft -= 1 }
                while let first = awaiting.first, first.ticksLeft <= 0 {
                    var k = first.keyframe
                    k.from = t
                    index.keyframes.append(k)
                    awaiting.removeFirst()
                }
            } else if l.starts(with: Self.markerPrefix) {
                index.markers.append(t)
            } else if l.starts(with: Self.snapshotPrefix) {
                index.snapshots = true
            }
        }

        /// The index as far as the file goes (keyframes that never got their ticks are left out).
        func finish() -> RecordingIndex { index }

        func result(truncated: Bool, size: Int64) -> Result {
            switch stopped {
            case .notARecording(let why)?:
                return Result(index: index, truncated: true, end: 0, notARecording: why, damaged: nil)
            case .damaged(let why)?:
                return Result(index: index, truncated: false, end: size, notARecording: nil, damaged: why)
            case nil:
                return Result(index: index, truncated: truncated, end: size, notARecording: nil, damaged: nil)
            }
        }

        static let formatName = Array(#""grpctop-recording""#.utf8)
        static func find(_ needle: [UInt8], in hay: UnsafeBufferPointer<UInt8>) -> Int? {
            guard hay.count >= needle.count, let first = needle.first else { return nil }
            var i = 0
            while i + needle.count <= hay.count {
                if hay[i] == first && hay[i..<i + needle.count].elementsEqual(needle) { return i }
                i += 1
            }
            return nil
        }

        static let statsPrefix = Array(#"{"e":{"stats":"#.utf8)
        static let markerPrefix = Array(#"{"e":{"marker":"#.utf8)
        static let snapshotPrefix = Array(#"{"snapshot":true"#.utf8)

        /// `{"t":N,…` (a keyframe).
        static func leadingTime(_ l: UnsafeBufferPointer<UInt8>) -> Millis? {
            var i = 5, v: Int64 = 0
            while i < l.count, i < 23, l[i] >= 0x30, l[i] <= 0x39 {
                v = v * 10 + Int64(l[i] - 0x30)
                i += 1
            }
            return i > 5 && i < 23 ? v : nil
        }

        /// `…,"t":N}` (an event or a snapshot mark: the encoder sorts keys, so "t" is last).
        static func trailingTime(_ l: UnsafeBufferPointer<UInt8>) -> Millis? {
            guard l.count > 6, l[l.count - 1] == UInt8(ascii: "}") else { return nil }
            var j = l.count - 2
            while j > 0, l[j] >= 0x30, l[j] <= 0x39 { j -= 1 }
            let digits = l.count - 2 - j
            guard digits > 0, digits <= 18, j >= 4, l[j] == UInt8(ascii: ":"), l[j - 1] == UInt8(ascii: "\""),
                  l[j - 2] == UInt8(ascii: "t"), l[j - 3] == UInt8(ascii: "\""), l[j - 4] == UInt8(ascii: ",") else { return nil }
            var v: Int64 = 0
            for k in (j + 1)..<(l.count - 1) { v = v * 10 + Int64(l[k] - 0x30) }
            return v
        }
    }
}
