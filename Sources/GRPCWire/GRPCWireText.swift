/// The parts of gRPC's wire format (grpc/grpc doc/PROTOCOL-HTTP2.md) that read a server's bytes,
/// without I/O, so they can be fuzzed and unit-tested: message framing, grpc-status,
/// grpc-message, and the first bytes of an HTTP/2 server.

/// Counts the length-prefixed messages of a response body (1-byte flag, 4-byte big-endian
/// length, that many bytes), fed in whatever pieces DATA frames bring. Nothing is buffered: a
/// prefix that claims more than `limit` bytes stops the count (`oversized`), as gRPC's receive
/// limit (4 MiB by default) does, so a 4 GiB claim costs nothing.
public struct GRPCMessageFramer: Sendable {
    public private(set) var messages = 0
    /// The claimed length of a message over the limit; counting stops there.
    public private(set) var oversized: UInt32?
    private var prefixRead = 0
    private var length: UInt32 = 0
    private var bodyRemaining = 0

    public init() {}

    /// True while a message has begun and not all of it has arrived.
    public var insideMessage: Bool { prefixRead > 0 || bodyRemaining > 0 }

    public mutating func consume(_ bytes: UnsafeRawBufferPointer, limit: Int) {
        guard oversized == nil else { return }
        var index = 0
        let count = bytes.count
        while index < count {
            if bodyRemaining > 0 {
                let take = min(bodyRemaining, count - index)
                bodyRemaining -= take
                index += take
                if bodyRemaining == 0 { messages += 1 }
                continue
            }
            let byte = bytes[index]
            index += 1
            if prefixRead > 0 { length = length << 8 | UInt32(byte) }
            prefixRead += 1
            if prefixRead == 5 {
                prefixRead = 0
                if Int(length) > limit {
                    oversized = length
                    return
                }
                bodyRemaining = Int(length)
                length = 0
                if bodyRemaining == 0 { messages += 1 }
            }
        }
    }
}

public enum GRPCStatusText {
    /// `grpc-status` is 1*DIGIT; a value that is not one of the 17 codes is UNKNOWN (2), as the
    /// spec has clients treat it, so nothing out of range reaches the counters.
    public static func code(_ text: String?) -> Int? {
        guard let text, !text.isEmpty, text.utf8.count <= 3, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = Int(text) else {
            return text == nil ? nil : 2
        }
        return (0...16).contains(v) ? v : 2
    }

    /// `grpc-message` as a server writes it: UTF-8, with every byte outside printable ASCII
    /// (0x20…0x7E) and `%` itself percent-encoded.
    public static func encodeMessage(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in text.utf8 {
            if b >= 0x20 && b <= 0x7E && b != 0x25 {
                out.append(b)
            } else {
                out += [0x25, hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `grpc-message` is percent-encoded UTF-8; a bad escape is kept as it is (the spec: decode
    /// leniently), invalid UTF-8 becomes U+FFFD, and only the first 1,024 bytes are kept.
    public static func message(_ text: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8.prefix(4096))
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while i < bytes.count && out.count < 1024 {
            if bytes[i] == 0x25, i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The first bytes an HTTP/2 server sends are a SETTINGS frame (RFC 9113 §3.4): 3-byte length,
/// type 4, flags 0, stream 0. Anything else says what the port really is.
public enum ServerPreface {
    /// Nil while `first` (the first up to 9 bytes) may still be a SETTINGS frame header.
    public static func verdict(_ b: [UInt8]) -> String? {
        let http1 = Array("HTTP/".utf8)
        if b.count >= 1 && Array(http1.prefix(b.count)) == Array(b.prefix(http1.count)) {
            return b.count >= 4 ? "the server does not speak HTTP/2 (an HTTP/1.1 port?)" : nil
        }
        if b.count >= 1 && b[0] == 0x15 { return "the server answered with TLS (a TLS port? try --tls)" }
        if b.count >= 4 && b[3] != 0x04 { return "the server does not speak HTTP/2 (an HTTP/1.1 port?)" }
        if b.count >= 9 && (b[4] != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0 || b[8] != 0) {
            return "the server does not speak HTTP/2 (an HTTP/1.1 port?)"
        }
        return nil
    }
}
