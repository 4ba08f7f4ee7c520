/// `grpc-timeout` as PROTOCOL-HTTP2.md writes it: at most 8 digits and a unit, so a long
/// deadline goes up a unit (m → S → M → H, rounded up) rather than past 8 digits.
public func grpcTimeoutHeader(ms: Int64) -> String {
    func up(_ v: Int64, _ by: Int64) -> Int64 { v / by + (v % by > 0 ? 1 : 0) }
    let ms = max(1, ms)
    if ms <= 99_999_999 { return "\(ms)m" }
    let s = up(ms, 1000)
    if s <= 99_999_999 { return "\(s)S" }
    let m = up(s, 60)
    if m <= 99_999_999 { return "\(m)M" }
    return "\(min(up(m, 60), 99_999_999))H"
}
