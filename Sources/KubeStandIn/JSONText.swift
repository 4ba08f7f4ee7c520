import Foundation

/// JSON text with sorted keys, written directly (Foundation's JSONSerialization on Linux takes
/// milliseconds for one 100-endpoint slice; an apiserver serialises in microseconds).
enum JSONText {
    struct Unsupported: Error { var value: String }

    static func encode(_ value: Any) throws -> Data {
        var out = ""
        out.reserveCapacity(256)
        try write(value, &out)
        return Data(out.utf8)
    }

    static func write(_ value: Any, _ out: inout String) throws {
        switch value {
        case let s as String: string(s, &out)
        case let b as Bool: out += b ? "true" : "false"
        case let i as Int: out += String(i)
        case let d as Double: out += String(d)
        case is NSNull: out += "null"
        case let a as [Any]:
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                try write(v, &out)
            }
            out += "]"
        case let o as [String: Any]:
            out += "{"
            for (i, k) in o.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                string(k, &out)
                out += ":"
                try write(o[k]!, &out)
            }
            out += "}"
        default: throw Unsupported(value: "\(type(of: value))")
        }
    }

    static func string(_ s: String, _ out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        out += "\""
    }
}
