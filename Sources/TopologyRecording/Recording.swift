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
/// ```
/// `FILE.gz` is the same text, gzip-compressed (flushed in sync points, so a killed recorder
/// leaves a readable prefix).
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
    /// Bumped when a reader of the previous version could not read the new lines.
    public static let currentVersion = 1

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
}

/// What is wrong with a recording, as one line: `FILE:LINE: what`.
public struct RecordingError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Flags whose values never go into a recording, and header names whose `-H` values are
/// redacted (plus any named with `--redact-header`).
public enum Redaction {
    public static let secretHeaderWords = ["authorization", "cookie", "token", "secret", "password", "api-key", "apikey", "session"]
    public static let secretFlagWords = ["password", "token", "secret"]

    /// The command line with secret values replaced by `[redacted]`.
    public static func options(_ args: [String], extraSecretHeaders: [String] = []) -> [String] {
        var out: [String] = []
        var i = 0
        let extra = Set(extraSecretHeaders.map { $0.lowercased() })
        func secretHeader(_ h: String) -> Bool {
            guard let colon = h.firstIndex(of: ":") else { return false }
            let name = h[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            return extra.contains(name) || secretHeaderWords.contains { name.contains($0) }
        }
        func redactHeader(_ h: String) -> String {
            guard secretHeader(h), let colon = h.firstIndex(of: ":") else { return h }
            return h[...colon] + " [redacted]"
        }
        while i < args.count {
            let a = args[i]
            if a == "-H" || a == "--header", i + 1 < args.count {
                out += [a, redactHeader(args[i + 1])]
                i += 2
                continue
            }
            if a.hasPrefix("--header=") {
                out.append("--header=" + redactHeader(String(a.dropFirst("--header=".count))))
            } else if a.hasPrefix("--"), secretFlagWords.contains(where: { a.lowercased().contains($0) }) {
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
