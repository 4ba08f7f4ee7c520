/// What `-H` may send. gRPC metadata (PROTOCOL-HTTP2.md): keys of lower-case letters, digits
/// and `-_.`; ASCII values are printable (%x20-%x7E); `-bin` values are base64. HTTP/2 forbids
/// connection-specific headers (RFC 9113 §8.2.2), and gRPC reserves `grpc-*` and the headers the
/// client sends itself: accepting those would break every RPC, so they are refused at the flag.
public enum GRPCMetadata {
    public static let reserved: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
                                        "host", "content-type", "content-length", "user-agent"]

    /// What is wrong with `key: value` as metadata to send (`whole`: the flag as typed, for the
    /// message), or nil when it may be sent.
    public static func problem(key k: String, value v: String, whole h: String) -> String? {
        guard !k.isEmpty, !k.hasPrefix(":"), k.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) }) else {
            return "-H '\(h.debugDescription.dropFirst().dropLast())': '\(k)' is not a valid metadata key (lower-case letters, digits, - _ .)"
        }
        if reserved.contains(k) || k.hasPrefix("grpc-") {
            return "-H '\(k)': a header grpctop or HTTP/2 sets itself (connection-specific, te, content-type, grpc-*); leave it out"
        }
        if k.hasSuffix("-bin") {
            guard v.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "+/=".unicodeScalars.contains($0) }) else {
                return "-H '\(k)': a -bin header's value must be base64"
            }
        } else {
            guard v.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value <= 0x7e }) else {
                return "-H '\(k)': the value must be printable ASCII (no line breaks or control characters); use a -bin key for bytes"
            }
        }
        return nil
    }
}
