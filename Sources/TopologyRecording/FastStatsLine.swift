import Foundation
import TopologyCore

/// A fast reader for the line that makes up most of a recording: a stats tick,
/// `{"e":{"stats":{"_0":{"b":[…],"s":[…],"u":[…],"q":N}}},"t":N}` (keys in any order).
///
/// `JSONDecoder` takes ~2 ms for a tick of 100 endpoints, so a 64× replay or a seek over 30 s of
/// ticks would spend most of its time there. This reads the same bytes ~20× faster, straight
/// into the values. It only has to be right on what it accepts: anything else — another event,
/// an escape in a string, a number it would have to think about, a reference to a backend the
/// tick does not have — returns nil, and the line goes to `JSONDecoder`, which reads it or says
/// what is wrong. A test holds the two to the same result on random ticks.
enum FastStatsLine {
    static func decode(_ bytes: Data.SubSequence) -> TimedEvent? {
        bytes.withUnsafeBytes { raw -> TimedEvent? in
            var p = Scanner(raw.bindMemory(to: UInt8.self))
            return p.line()
        }
    }

    private struct Scanner {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0
        init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

        mutating func ws() {
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x0A || b[i] == 0x0D { i += 1 }
        }

        mutating func eat(_ c: UInt8) -> Bool {
            ws()
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        mutating func peek() -> UInt8? {
            ws()
            return i < b.count ? b[i] : nil
        }

        /// `"k":` where k is one of a few short keys: returns its bytes packed in an Int.
        mutating func shortKey() -> UInt64? {
            guard eat(UInt8(ascii: "\"")) else { return nil }
            var k: UInt64 = 0
            var n = 0
            while i < b.count, b[i] != UInt8(ascii: "\"") {
                let c = b[i]
                guard n < 8, c >= 0x20, c < 0x80, c != UInt8(ascii: "\\") else { return nil }
                k = k << 8 | UInt64(c)
                n += 1
                i += 1
            }
            guard i < b.count else { return nil }
            i += 1
            return eat(UInt8(ascii: ":")) ? k : nil
        }

        static func packed(_ s: StaticString) -> UInt64 {
            var k: UInt64 = 0
            s.withUTF8Buffer { for c in $0 { k = k << 8 | UInt64(c) } }
            return k
        }

        /// An integer as JSON writes it (no fraction, exponent or leading zero), ≤ 18 digits.
        mutating func int() -> Int? {
            ws()
            var negative = false
            if i < b.count, b[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            let start = i
            var v = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                v = v &* 10 &+ Int(b[i] - 0x30)
                i += 1
            }
            let digits = i - start
            guard digits > 0, digits <= 18, !(digits > 1 && b[start] == 0x30) else { return nil }
            if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") { return nil }
            return negative ? -v : v
        }

        mutating func nonNegative() -> Int? {
            guard let v = int(), v >= 0 else { return nil }
            return v
        }

        /// A string without escapes or non-ASCII bytes.
        mutating func string() -> String? {
            guard eat(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < b.count, b[i] != UInt8(ascii: "\"") {
                guard b[i] >= 0x20, b[i] < 0x80, b[i] != UInt8(ascii: "\\") else { return nil }
                i += 1
            }
            guard i < b.count else { return nil }
            let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            i += 1
            return s
        }

        /// The whole line.
        mutating func line() -> TimedEvent? {
            guard eat(UInt8(ascii: "{")) else { return nil }
            var t: Int?
            var tick: StatsTick?
            repeat {
                switch shortKey() {
                case Self.packed("t"):
                    guard t == nil, let v = int() else { return nil }
                    t = v
                case Self.packed("e"):
                    guard tick == nil, eat(UInt8(ascii: "{")), shortKey() == Self.packed("stats"),
                          eat(UInt8(ascii: "{")), shortKey() == Self.packed("_0"),
                          let s = statsTick(), eat(UInt8(ascii: "}")), eat(UInt8(ascii: "}")) else { return nil }
                    tick = s
                default:
                    return nil
                }
            } while eat(UInt8(ascii: ","))
            guard eat(UInt8(ascii: "}")), let t, let tick else { return nil }
            ws()
            guard i == b.count else { return nil }
            return TimedEvent(at: Millis(t), .stats(tick))
        }

        mutating func statsTick() -> StatsTick? {
            guard eat(UInt8(ascii: "{")) else { return nil }
            var backends: [BackendTick]?
            var subs: [(id: Int, streams: Int, queued: Int, delta: RPCDelta?, ref: Int)]?
            var unassigned: RPCDelta?
            var queued: Int?
            if eat(UInt8(ascii: "}")) { return nil }
            repeat {
                switch shortKey() {
                case Self.packed("b"):
                    guard backends == nil, eat(UInt8(ascii: "[")) else { return nil }
                    var list: [BackendTick] = []
                    if !eat(UInt8(ascii: "]")) {
                        repeat {
                            guard eat(UInt8(ascii: "[")), let name = string(), eat(UInt8(ascii: ",")), let d = delta(), eat(UInt8(ascii: "]")) else { return nil }
                            list.append(BackendTick(name: name, delta: d))
                        } while eat(UInt8(ascii: ","))
                        guard eat(UInt8(ascii: "]")) else { return nil }
                    }
                    backends = list
                case Self.packed("s"):
                    guard subs == nil, eat(UInt8(ascii: "[")) else { return nil }
                    var list: [(id: Int, streams: Int, queued: Int, delta: RPCDelta?, ref: Int)] = []
                    if !eat(UInt8(ascii: "]")) {
                        repeat {
                            guard eat(UInt8(ascii: "[")), let id = int(), eat(UInt8(ascii: ",")), let streams = int(), eat(UInt8(ascii: ",")),
                                  let q = int(), eat(UInt8(ascii: ",")),
                                  (0...Int(Int32.max)).contains(streams), (0...Int(Int32.max)).contains(q) else { return nil }
                            if peek() == UInt8(ascii: "[") {
                                guard let d = delta() else { return nil }
                                list.append((id, streams, q, d, 0))
                            } else {
                                guard let ref = int(), ref < 0 else { return nil }
                                list.append((id, streams, q, nil, ref))
                            }
                            guard eat(UInt8(ascii: "]")) else { return nil }
                        } while eat(UInt8(ascii: ","))
                        guard eat(UInt8(ascii: "]")) else { return nil }
                    }
                    subs = list
                case Self.packed("u"):
                    guard unassigned == nil, let d = delta() else { return nil }
                    unassigned = d
                case Self.packed("q"):
                    guard queued == nil, let v = int(), (0...Int(Int32.max)).contains(v) else { return nil }
                    queued = v
                default:
                    return nil
                }
            } while eat(UInt8(ascii: ","))
            guard eat(UInt8(ascii: "}")), let backends, let subs else { return nil }
            var subchannels: [SubchannelTick] = []
            subchannels.reserveCapacity(subs.count)
            for s in subs {
                let d: RPCDelta
                if let own = s.delta {
                    d = own
                } else {
                    guard -s.ref - 1 < backends.count else { return nil }
                    d = backends[-s.ref - 1].delta
                }
                subchannels.append(SubchannelTick(id: s.id, activeStreams: s.streams, queued: s.queued, delta: d))
            }
            return StatsTick(subchannels: subchannels, backends: backends, unassigned: unassigned ?? RPCDelta(), channelQueued: queued ?? 0)
        }

        /// `[started, succeeded, failed, sent, received, [Δvalue, count, …], [code, n, …]?]`
        mutating func delta() -> RPCDelta? {
            var d = RPCDelta()
            guard eat(UInt8(ascii: "[")),
                  let started = int(), eat(UInt8(ascii: ",")),
                  let succeeded = int(), eat(UInt8(ascii: ",")),
                  let failed = int(), eat(UInt8(ascii: ",")),
                  let sent = int(), eat(UInt8(ascii: ",")),
                  let received = int(), eat(UInt8(ascii: ",")),
                  eat(UInt8(ascii: "[")) else { return nil }
            (d.started, d.succeeded, d.failed, d.messagesSent, d.messagesReceived) = (started, succeeded, failed, sent, received)
            if !eat(UInt8(ascii: "]")) {
                var value: UInt64 = 0
                repeat {
                    guard let step = nonNegative(), eat(UInt8(ascii: ",")), let count = nonNegative(), count <= Int(UInt32.max) else { return nil }
                    let (sum, overflow) = value.addingReportingOverflow(UInt64(step))
                    guard !overflow else { return nil }
                    value = sum
                    d.latency.values.append(value)
                    d.latency.counts.append(UInt32(count))
                } while eat(UInt8(ascii: ","))
                guard eat(UInt8(ascii: "]")) else { return nil }
            }
            if eat(UInt8(ascii: ",")) {
                guard eat(UInt8(ascii: "[")) else { return nil }
                if !eat(UInt8(ascii: "]")) {
                    repeat {
                        guard let code = int(), eat(UInt8(ascii: ",")), let n = int() else { return nil }
                        d.codes[code] = n
                    } while eat(UInt8(ascii: ","))
                    guard eat(UInt8(ascii: "]")) else { return nil }
                }
            }
            // Out of range: JSONDecoder reads it again and says what is wrong.
            return eat(UInt8(ascii: "]")) && d.problem == nil ? d : nil
        }
    }
}
