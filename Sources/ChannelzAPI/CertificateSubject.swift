import Foundation

/// The subject of an X.509 certificate in DER or PEM (channelz's `Security.Tls.remote_certificate`
/// — the proto says DER; gRPC C++ and Python send PEM),
/// as one short line: `CN=web.shop, O=Shop` — and its subject alternative names when the subject
/// is empty or says little (a mesh's workload certificate names a SPIFFE id there:
/// `URI:spiffe://cluster.local/ns/shop/sa/web`). Untrusted bytes from another process: every
/// length is checked, nothing is trusted to nest sanely; nil when the bytes are not a
/// certificate.
public enum CertificateSubject {
    public static func text(certificate bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, bytes.count <= 1 << 20 else { return nil }
        let begin = Array("-----BEGIN CERTIFICATE-----".utf8)
        guard bytes.starts(with: begin) else { return text(der: bytes) }
        // The first PEM block: base64 up to the END line.
        let body = bytes.dropFirst(begin.count)
        let end = Array("-----END".utf8)
        var stop = body.endIndex
        if let i = body.indices.first(where: { body[$0...].starts(with: end) }) { stop = i }
        guard let der = Data(base64Encoded: Data(body[..<stop]), options: .ignoreUnknownCharacters) else { return nil }
        return text(der: [UInt8](der))
    }

    public static func text(der: [UInt8]) -> String? {
        guard !der.isEmpty, der.count <= 1 << 20 else { return nil }
        var r = DERReader(der[...])
        guard let cert = r.read(), cert.tag == 0x30 else { return nil }
        var c = DERReader(cert.body)
        guard let tbs = c.read(), tbs.tag == 0x30 else { return nil }
        var t = DERReader(tbs.body)
        guard var first = t.read() else { return nil }
        if first.tag == 0xA0 {  // [0] version
            guard let next = t.read() else { return nil }
            first = next
        }
        // serialNumber (first), signature, issuer, validity, subject.
        guard first.tag == 0x02, t.read()?.tag == 0x30, t.read()?.tag == 0x30, t.read()?.tag == 0x30,
              let subject = t.read(), subject.tag == 0x30 else { return nil }
        var parts = names(subject.body)
        // issuerUniqueID [1], subjectUniqueID [2], extensions [3].
        var alt: [String] = []
        while let field = t.read() {
            guard field.tag == 0xA3 else { continue }
            alt = alternativeNames(field.body)
        }
        if parts.isEmpty || !alt.isEmpty {
            parts += alt.prefix(3)
        }
        guard !parts.isEmpty else { return nil }
        let line = parts.joined(separator: ", ")
        return line.count > 200 ? String(line.prefix(199)) + "…" : line
    }

    /// `CN=…, O=…` from a Name (SEQUENCE OF SET OF {OID, value}).
    static func names(_ body: ArraySlice<UInt8>) -> [String] {
        let known: [[UInt8]: String] = [[0x55, 4, 3]: "CN", [0x55, 4, 10]: "O", [0x55, 4, 11]: "OU", [0x55, 4, 6]: "C", [0x55, 4, 7]: "L", [0x55, 4, 8]: "ST"]
        var out: [String] = []
        var rdns = DERReader(body)
        while let set = rdns.read(), out.count < 16 {
            guard set.tag == 0x31 else { continue }
            var atvs = DERReader(set.body)
            while let atv = atvs.read() {
                guard atv.tag == 0x30 else { continue }
                var f = DERReader(atv.body)
                guard let oid = f.read(), oid.tag == 0x06, let value = f.read(),
                      let name = known[Array(oid.body)], let text = string(value) else { continue }
                out.append("\(name)=\(text)")
            }
        }
        return out
    }

    /// DNS names, URIs and IP addresses of the subjectAltName extension (2.5.29.17).
    static func alternativeNames(_ explicit: ArraySlice<UInt8>) -> [String] {
        var outer = DERReader(explicit)
        guard let list = outer.read(), list.tag == 0x30 else { return [] }
        var exts = DERReader(list.body)
        while let ext = exts.read() {
            guard ext.tag == 0x30 else { continue }
            var f = DERReader(ext.body)
            guard let oid = f.read(), oid.tag == 0x06, Array(oid.body) == [0x55, 0x1D, 0x11] else { continue }
            var value = f.read()
            if value?.tag == 0x01 { value = f.read() }  // critical
            guard let octets = value, octets.tag == 0x04 else { return [] }
            var inner = DERReader(octets.body)
            guard let names = inner.read(), names.tag == 0x30 else { return [] }
            var out: [String] = []
            var g = DERReader(names.body)
            while let n = g.read(), out.count < 8 {
                switch n.tag {
                case 0x82: if let s = ascii(n.body) { out.append("DNS:\(s)") }
                case 0x86: if let s = ascii(n.body) { out.append("URI:\(s)") }
                case 0x87:
                    if n.body.count == 4 { out.append("IP:" + n.body.map(String.init).joined(separator: ".")) }
                    if n.body.count == 16 {
                        let b = Array(n.body)
                        out.append("IP:" + stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }.joined(separator: ":"))
                    }
                default: break
                }
            }
            return out
        }
        return []
    }

    /// A directory string (UTF8String, PrintableString, IA5String, T61String), control
    /// characters replaced.
    static func string(_ v: DERReader.Element) -> String? {
        guard [0x0C, 0x13, 0x16, 0x14].contains(v.tag) else { return nil }
        return clean(String(decoding: v.body.prefix(200), as: UTF8.self))
    }

    static func ascii(_ body: ArraySlice<UInt8>) -> String? {
        guard !body.isEmpty else { return nil }
        return clean(String(decoding: body.prefix(200), as: UTF8.self))
    }

    static func clean(_ s: String) -> String {
        String(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
    }
}

/// Reads DER TLVs one after another from a slice (single-byte tags, definite lengths up to
/// 4 bytes); nil at the end or at anything malformed.
struct DERReader {
    struct Element {
        var tag: UInt8
        var body: ArraySlice<UInt8>
    }
    private var rest: ArraySlice<UInt8>
    init(_ bytes: ArraySlice<UInt8>) { rest = bytes }

    mutating func read() -> Element? {
        var i = rest.startIndex
        guard i < rest.endIndex else { return nil }
        let tag = rest[i]
        guard tag & 0x1F != 0x1F else { rest = rest[rest.endIndex...]; return nil }
        i += 1
        guard i < rest.endIndex else { rest = rest[rest.endIndex...]; return nil }
        var length = Int(rest[i])
        i += 1
        if length & 0x80 != 0 {
            let n = length & 0x7F
            guard (1...4).contains(n), rest.endIndex - i >= n else { rest = rest[rest.endIndex...]; return nil }
            length = 0
            for _ in 0..<n {
                length = length << 8 | Int(rest[i])
                i += 1
            }
        }
        guard length >= 0, rest.endIndex - i >= length else { rest = rest[rest.endIndex...]; return nil }
        let body = rest[i..<(i + length)]
        rest = rest[(i + length)...]
        return Element(tag: tag, body: body)
    }
}
