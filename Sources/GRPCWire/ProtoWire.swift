/// Just enough of the protobuf wire format for the messages grpctop sends and serves itself
/// (HelloRequest/HelloReply, grpc.health.v1 HealthCheckRequest/Response): varints and
/// length-delimited fields. Field numbers are upstream's.
public enum ProtoWire {
    public static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// A length-delimited field (strings, bytes, sub-messages).
    public static func appendBytes(field: Int, _ bytes: [UInt8], to out: inout [UInt8]) {
        appendVarint(UInt64(field << 3 | 2), to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out += bytes
    }

    public static func appendVarintField(field: Int, _ value: UInt64, to out: inout [UInt8]) {
        appendVarint(UInt64(field << 3), to: &out)
        appendVarint(value, to: &out)
    }

    /// A message with a single string field (HelloRequest.name = 1, HelloReply.message = 1,
    /// HealthCheckRequest.service = 1). An empty string encodes as no bytes, as proto3 does.
    public static func stringMessage(field: Int = 1, _ s: String) -> [UInt8] {
        var out: [UInt8] = []
        if !s.isEmpty { appendBytes(field: field, Array(s.utf8), to: &out) }
        return out
    }

    /// Fields of a message: (field number, wire type, varint value or bytes). Nil if malformed.
    public static func fields(_ bytes: [UInt8]) -> [(field: Int, varint: UInt64?, bytes: [UInt8]?)]? {
        var out: [(Int, UInt64?, [UInt8]?)] = []
        var i = 0
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count && shift < 64 {
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }
        while i < bytes.count {
            guard let tag = varint() else { return nil }
            let field = Int(tag >> 3)
            guard field > 0 else { return nil }
            switch tag & 7 {
            case 0:
                guard let v = varint() else { return nil }
                out.append((field, v, nil))
            case 2:
                guard let len = varint(), len <= UInt64(bytes.count - i) else { return nil }
                out.append((field, nil, Array(bytes[i..<i + Int(len)])))
                i += Int(len)
            case 1:
                guard i + 8 <= bytes.count else { return nil }
                i += 8
            case 5:
                guard i + 4 <= bytes.count else { return nil }
                i += 4
            default:
                return nil
            }
        }
        return out
    }

    /// The first string field with this number, "" if absent; nil if the message is malformed.
    public static func string(field: Int = 1, in bytes: [UInt8]) -> String? {
        guard let fs = fields(bytes) else { return nil }
        for f in fs where f.field == field {
            if let b = f.bytes { return String(decoding: b, as: UTF8.self) }
        }
        return ""
    }

    /// The first varint field with this number, 0 if absent; nil if malformed.
    public static func varint(field: Int, in bytes: [UInt8]) -> UInt64? {
        guard let fs = fields(bytes) else { return nil }
        for f in fs where f.field == field {
            if let v = f.varint { return v }
        }
        return 0
    }

    /// Parses hex ("0a03626f62", spaces and a 0x prefix allowed).
    public static func hex(_ text: String) -> [UInt8]? {
        var s = text.replacingWhitespace()
        if s.hasPrefix("0x") || s.hasPrefix("0X") { s = String(s.dropFirst(2)) }
        guard s.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 2)
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let hi = a.hexDigitValue, let lo = b.hexDigitValue else { return nil }
            out.append(UInt8(hi << 4 | lo))
        }
        return out
    }
}

extension String {
    fileprivate func replacingWhitespace() -> String { String(filter { !$0.isWhitespace }) }
}

/// The RPC kinds grpctop can send.
public enum RPCKind: Sendable, Equatable, CustomStringConvertible {
    /// grpc.health.v1.Health/Check with this service name ("" = the whole server).
    case health(service: String)
    /// helloworld.Greeter/SayHello with this name.
    case greeter(name: String)
    /// Any unary method with a raw payload.
    case custom(path: String, payload: [UInt8])

    public var path: String {
        switch self {
        case .health: "/grpc.health.v1.Health/Check"
        case .greeter: "/helloworld.Greeter/SayHello"
        case .custom(let path, _): path
        }
    }

    public var payload: [UInt8] {
        switch self {
        case .health(let service): ProtoWire.stringMessage(service)
        case .greeter(let name): ProtoWire.stringMessage(name)
        case .custom(_, let payload): payload
        }
    }

    public var description: String {
        switch self {
        case .health(let s): s.isEmpty ? "Health/Check" : "Health/Check(\(s))"
        case .greeter: "Greeter/SayHello"
        case .custom(let path, _): String(path.dropFirst())
        }
    }
}

/// A protobuf message that could not be decoded.
public struct ProtoDecodingError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }

    public static func bytes(_ f: (field: Int, varint: UInt64?, bytes: [UInt8]?), _ name: String) throws(ProtoDecodingError) -> [UInt8] {
        guard let b = f.bytes else { throw ProtoDecodingError("\(name): expected a length-delimited field") }
        return b
    }

    public static func varint(_ f: (field: Int, varint: UInt64?, bytes: [UInt8]?), _ name: String) throws(ProtoDecodingError) -> UInt64 {
        guard let v = f.varint else { throw ProtoDecodingError("\(name): expected a varint") }
        return v
    }
}
