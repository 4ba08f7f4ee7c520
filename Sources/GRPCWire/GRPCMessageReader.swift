/// Pure (no NIO), so it is fuzzed with the other parsers of a server's bytes.

/// Reassembles whole messages from DATA frames, whatever their pieces. A length over `limit` is
/// refused before its bytes are buffered (a 4 GiB claim costs nothing).
public struct GRPCMessageReader: Sendable {
    public struct TooLarge: Error, Equatable, Sendable {
        public var length: Int
        public var limit: Int
    }

    public let limit: Int
    private var buffer: [UInt8] = []

    public init(limit: Int) { self.limit = limit }

    /// True while part of a message is buffered.
    public var hasPartialMessage: Bool { !buffer.isEmpty }

    /// The messages the new bytes complete.
    public mutating func read<Bytes: Collection>(_ bytes: Bytes) throws -> [[UInt8]] where Bytes.Element == UInt8 {
        buffer += bytes
        var out: [[UInt8]] = []
        var offset = 0
        while buffer.count - offset >= 5 {
            let len = Int(buffer[offset + 1]) << 24 | Int(buffer[offset + 2]) << 16 | Int(buffer[offset + 3]) << 8 | Int(buffer[offset + 4])
            guard len <= limit else {
                buffer.removeAll()
                throw TooLarge(length: len, limit: limit)
            }
            guard buffer.count - offset - 5 >= len else { break }
            out.append(Array(buffer[(offset + 5)..<(offset + 5 + len)]))
            offset += 5 + len
        }
        if offset > 0 { buffer.removeFirst(offset) }
        return out
    }
}

