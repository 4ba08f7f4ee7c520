import Foundation
import TopologyCore

/// A recording: what the model consumed, not what the screen showed (../shared/DESIGN.md), so a
/// replay re-renders at any size with a newer renderer.
///
/// The file is JSON Lines. Line 1 is the header; then one line per event, in the order the
/// model applied them, each stamped with the session time in ms:
///
/// ```
/// {"format":"grpctop-recording","version":1,"grpctop":"0.1.0","target":"…","options":[…],"startedAt":…,"host":"…"}
/// {"t":0,"e":{"sessionStarted":{…}}}
/// {"t":250,"e":{"stats":{…}}}
/// {"t":1000,"snapshot":true}        ← a live --batch snapshot was printed here
/// {"t":10000,"keyframe":{…}}        ← the model after the lines before it, but the last 10 s of
///                                     latency samples (format 2 had them; 3 does not)
/// {"index":{"keyframes":[[10000,81234,41,20000],…],"markers":[…],"duration":…,"snapshots":false}}
/// ```
/// The index (format 2) is the last line of a recording whose recorder closed it; a killed
/// recorder leaves none, and a reader then reads the file whole. `FILE.gz` is the same text,
/// gzip-compressed: flushed in sync points (a killed recorder leaves a readable prefix), with a
/// new gzip member at each keyframe and for the index, so reading can start at any of them.
public struct RecordingHeader: Codable, Sendable, Equatable {
    public var format: String
    public var version: Int
    /// The grpctop that wrote it.
    public var grpctop: String
    public var target: String
    /// The command line, secrets redacted.
    public var options: [String]
    /// Wall-clock start, seconds since 1970.
    public var startedAt: Double
    public var host: String

    public static let formatName = "grpctop-recording"
    /// Bumped when a reader of the previous version could not read the new lines: 2 added
    /// keyframes and the index; 3 left the last 10 s of latency samples out of keyframes (a
    /// keyframe is a restart point from its index entry's `from` on). Format 1 and 2 files are
    /// still read.
    public static let currentVersion = 3

    public init(grpctop: String, target: String, options: [String], startedAt: Double, host: String) {
        format = Self.formatName
        version = Self.currentVersion
        self.grpctop = grpctop
        self.target = target
        self.options = options
        self.startedAt = startedAt
        self.host = host
    }
}

/// One line after the header.
public enum RecordedLine: Sendable, Equatable {
    case event(TimedEvent)
    /// A live `--batch` run printed a snapshot after the events before this line.
    case snapshot(at: Millis)

    public var at: Millis {
        switch self {
        case .event(let e): e.at
        case .snapshot(let t): t
        }
    }
}

enum RecordingCodec {
    struct EventLine: Codable {
        var t: Millis
        var e: Event?
        var snapshot: Bool?
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    static func encodeEvent(_ e: TimedEvent) throws -> Data {
        try encoder.encode(EventLine(t: e.at, e: e.event, snapshot: nil))
    }

    static func encodeSnapshotMark(_ at: Millis) throws -> Data {
        try encoder.encode(EventLine(t: at, e: nil, snapshot: true))
    }

    /// `{"t":…,"keyframe":…}`, the time first, so a reader tells a keyframe line from its first
    /// bytes and can pass over it without decoding the model.
    static let keyframeMarker = Data(#","keyframe":"#.utf8)
    static func encodeKeyframe(at: Millis, _ model: Model) throws -> Data {
        var d = Data(#"{"t":\#(at)"#.utf8)
        d.append(keyframeMarker)
        d.append(try encoder.encode(model))
        d.append(UInt8(ascii: "}"))
        return d
    }

    struct KeyframeLine: Decodable {
        var t: Millis
        var keyframe: Model
    }

    static let indexPrefix = Data(#"{"index":"#.utf8)
    struct IndexLine: Codable { var index: RecordingIndex }
    static func encodeIndex(_ index: RecordingIndex) throws -> Data {
        try encoder.encode(IndexLine(index: index))
    }

    /// Whether a line (without its newline) is a keyframe: `{"t":DIGITS,"keyframe":`.
    static func isKeyframe<C: Collection>(_ line: C) -> Bool where C.Element == UInt8 {
        guard line.starts(with: timePrefix) else { return false }
        var i = line.index(line.startIndex, offsetBy: timePrefix.count)
        while i < line.endIndex, line[i] >= 0x30 && line[i] <= 0x39 { line.formIndex(after: &i) }
        return line[i...].starts(with: keyframeMarker)
    }
    static let timePrefix = Data(#"{"t":"#.utf8)

    /// The longest line a reader accepts: a keyframe of 5,000 endpoints is a few MB.
    static let maxLineBytes = 64 << 20
    /// The longest header line (the first line: it decides whether this is a recording at all).
    static let maxHeaderBytes = 1 << 20
    /// The most lines in a row that carry no event before a reader stops (a file of newlines).
    static let maxLinesWithoutEvent = 1_000
    /// The most text one segment (or a recording read whole) may inflate to.
    static let maxSegmentBytes = 128 << 20
}

/// The last line of a closed recording: where each keyframe starts, the markers and the length.
public struct RecordingIndex: Codable, Sendable, Equatable {
    public struct Keyframe: Codable, Sendable, Equatable {
        public var at: Millis
        /// Byte offset of the keyframe line in the file (gzip: of the member it starts).
        public var offset: Int64
        /// Its line number (1 = the header).
        public var line: Int
        /// The first moment a seek may start from it: a keyframe leaves out the per-tick latency
        /// samples of the last 10 s (¾ of its size — they are in the stats lines before it), so
        /// the model read from it is the live one again once `TrafficSeries.recentTicks` stats
        /// ticks after it have been applied. (Format 2 keyframes held them: `from` = `at`.)
        public var from: Millis
        public init(at: Millis, offset: Int64, line: Int, from: Millis) {
            self.at = at
            self.offset = offset
            self.line = line
            self.from = from
        }
        public init(from decoder: Decoder) throws {
            var c = try decoder.unkeyedContainer()
            let at = try c.decode(Millis.self), offset = try c.decode(Int64.self), line = try c.decode(Int.self)
            self.init(at: at, offset: offset, line: line, from: c.isAtEnd ? at : try c.decode(Millis.self))
        }
        public func encode(to encoder: Encoder) throws {
            var c = encoder.unkeyedContainer()
            try c.encode(at)
            try c.encode(offset)
            try c.encode(line)
            try c.encode(from)
        }
    }
    public var keyframes: [Keyframe] = []
    public var markers: [Millis] = []
    /// Session time of the last line.
    public var duration: Millis = 0
    /// Whether a live `--batch` run printed snapshots (`{"snapshot":true}` lines).
    public var snapshots = false
    /// Where the index line starts: the file's size before it. A reader checks it (and what
    /// each keyframe offset points at) against the file, so a file whose bytes moved — a `.gz`
    /// recording gunzipped, an edited one — gets its index rebuilt instead of trusted. Absent in
    /// recordings made before it existed.
    public var bytes: Int64?
    public init() {}
}

/// What is wrong with a recording, as one line: `FILE:LINE: what`.
public struct RecordingError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Flags whose values never go into a recording, and header names whose `-H` values are
/// redacted (plus any named with `--redact-header`).
public enum Redaction {
    public static let secretFlagWords = ["password", "token", "secret"]
    /// Metadata whose values are known to be harmless (request ids, trace context): the only
    /// `-H` values a recording keeps unless `--keep-header` names more.
    public static let harmlessHeaders: Set<String> = [
        "x-request-id", "x-correlation-id", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid",
        "x-b3-parentspanid", "x-b3-sampled", "x-cloud-trace-context", "x-grpctop-test",
    ]

    /// The command line as a recording keeps it. Secrets are found from the *parsed* options,
    /// not from argv spellings: every argument that carries one of `headers` (the `-H` values as
    /// parsed, in any form: `-H v`, `-Hv`, `-H=v`, `--header=v`) keeps the key and loses the
    /// value, unless the key is harmless or in `keep`; every argument that is, or ends with
    /// `=` and, one of `secrets` (passwords given as flags) becomes `[redacted]`; and a flag whose
    /// name says password/token/secret loses its value however it was given.
    public static func options(_ args: [String], headers: [String] = [], keep: [String] = [], secrets: [String] = []) -> [String] {
        let kept = harmlessHeaders.union(keep.map { $0.lowercased() })
        var out: [String] = []
        var i = 0
        while i < args.count {
            var a = args[i]
            for raw in headers where !raw.isEmpty && (a == raw || a.hasSuffix(raw)) {
                guard let colon = raw.firstIndex(of: ":") else { continue }
                let key = raw[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                if kept.contains(key) { continue }
                a = String(a.dropLast(raw.count)) + raw[...colon] + " [redacted]"
                break
            }
            for secret in secrets where !secret.isEmpty {
                if a == secret { a = "[redacted]" } else if a.hasSuffix("=" + secret) { a = String(a.dropLast(secret.count)) + "[redacted]" }
            }
            if a.hasPrefix("--"), secretFlagWords.contains(where: { a.lowercased().contains($0) }), !a.hasPrefix("--etcd-password-file") {
                if let eq = a.firstIndex(of: "=") {
                    out.append(a[...eq] + "[redacted]")
                } else {
                    out.append(a)
                    if i + 1 < args.count {
                        out.append("[redacted]")
                        i += 1
                    }
                }
            } else {
                out.append(a)
            }
            i += 1
        }
        return out
    }
}
