import Foundation
import TopologyCore

/// The batch output's text tables (`--output table`): a top-style block per snapshot and the
/// exit summary. The JSON lines are the same values encoded (`Snapshot`, `Summary`).
extension Snapshot {
    /// A top-style text block for `--output table`.
    public func table() -> String {
        var out = ""
        let fair = fairness.map { String(format: "%.2f", $0) } ?? "-"
        let extras = (healthCheck != nil ? " +health" : "") + (outlierDetection.map { " +outlier (\($0.prefix { $0 != ";" }))" } ?? "")
        out += "t=\(String(format: "%.1f", t))s  \(target)  \(policy)\(extras)  channel \(channel)  "
            + "\(String(format: "%.1f", rps)) rps  \(String(format: "%.1f", errorsPerSecond)) err/s  fairness \(fair) (\(fairnessWord))"
        if queued > 0 { out += "  queued \(queued)" }
        out += "\n"
        var res = "resolver \(resolver.name): \(resolver.endpoints) endpoints, \(resolver.updates) updates"
        if let r = resolver.info["refresh"] { res += ", refresh \(r)" }
        if let t = resolver.info["ttl"] { res += ", TTL \(t)" }
        if let e = resolver.error { res += ", ERROR \(e) (for \(formatDuration(resolver.errorForMs ?? 0)), keeping \(resolver.endpoints))" }
        out += res + "\n"
        var rows = [["ENDPOINT", "ADDRESS", "CONDITION", "ZONE", "AGE", ""]]
        for e in endpoints {
            rows.append([e.name, e.addresses.joined(separator: ","), e.condition, e.zone ?? "-", formatDuration(e.ageMs), e.mark ?? ""])
        }
        out += formatTable(rows)
        rows = [["SUB", "ENDPOINT", "STATE", "FOR", "STREAMS", "QUEUED", "STARTED", "OK", "FAILED", "RTT", "LAST REASON"]]
        for s in subchannels {
            let streams = "\(s.streams)\(s.health?.stream == true ? "+1" : "")/\(s.maxStreams.map(String.init) ?? "100*")"
            var reason = s.lastReason ?? "-"
            if let b = s.backoffMs, s.state == "TRANSIENT_FAILURE" { reason += " (retry in \(formatDuration(b)))" }
            if let o = s.outlier, o.ejected {
                reason = "ejected ×\(o.multiplier), back in \(formatDuration(o.backInMs ?? 0)): \(o.why ?? "?")"
            } else if let h = s.health, s.shown != nil {
                reason = "health \(h.status)\(h.detail.map { ": \($0)" } ?? "")"
            }
            rows.append(["#\(s.id)", s.endpoint, s.shown ?? s.state, formatDuration(s.forMs), streams, "\(s.queued)", "\(s.started)",
                         "\(s.ok)", "\(s.failed)", s.rttMs.map { String(format: "%.2fms", $0) } ?? "-", reason])
        }
        out += formatTable(rows)
        rows = [["BACKEND", "RPS", "SHARE", "P50", "P99", "TOTAL", "FAILED"]]
        for b in backends {
            rows.append([b.name, String(format: "%.1f", b.rps), String(format: "%.1f%%", b.share * 100), ms(b.p50Ms), ms(b.p99Ms), "\(b.total)", "\(b.failed)"])
        }
        out += formatTable(rows)
        if let p = process { out += Self.processTables(p) }
        if let x = xds { out += Self.xdsTables(x) }
        if let p = proxy {
            out += "proxy \(p.kind ?? p.source), cluster \(p.cluster)\(p.balancing.map { ": \($0)" } ?? "")\(p.error.map { ", ERROR \($0)" } ?? "")\n"
            var rows = [["HOST", "STATE", "RPS", "SHARE", "ACTIVE", "REQUESTS", "OK", "FAILED", "WHY"]]
            for h in p.hosts {
                rows.append([h.name, h.state, String(format: "%.1f", h.rps), String(format: "%.1f%%", h.share * 100), "\(h.active)",
                             h.total.map(String.init) ?? "-", h.ok.map(String.init) ?? "-", h.failed.map(String.init) ?? "-", h.reason ?? ""])
            }
            out += formatTable(rows)
        }
        return out
    }

    /// An xDS target's control plane line and tree.
    static func xdsTables(_ x: XDSSnapshot) -> String {
        var out = ""
        if let s = x.status { out += XDSStatusText.line(s, now: nil) + "\n" }
        var rows = [["XDS", "STATE", "WEIGHT", "WANT", "GOT", "READY", "NOTE"]]
        for r in x.tree {
            let indent = r.kind == .cluster ? "" : (r.kind == .priority ? "  " : "    ")
            let name = r.kind == .cluster ? "cluster \(r.cluster)" : (r.kind == .priority ? "priority \(r.priority ?? 0)" : (r.locality ?? ""))
            let note = r.kind == .priority ? (r.inUse == true ? "in use" : "") : (r.note ?? "")
            rows.append([indent + name, r.state?.rawValue ?? "-", r.weight.map(String.init) ?? "-",
                         r.expectedShare.map { String(format: "%.1f%%", $0 * 100) } ?? "-",
                         r.observedShare.map { String(format: "%.1f%%", $0 * 100) } ?? "-", "\(r.ready)/\(r.total)", note])
        }
        out += formatTable(rows)
        return out
    }

    /// An observed process's channels and the client connections its servers hold.
    static func processTables(_ p: ObservedProcess) -> String {
        var out = ""
        var rows = [["CHANNEL", "PARENT", "TARGET", "STATE", "SUBCHANNELS", "STARTED", "OK", "FAILED", ""]]
        for c in p.channels {
            rows.append(["#\(c.id)", c.parent.map { "#\($0)" } ?? "-", c.target, c.state.rawValue, "\(c.subchannels)",
                         "\(c.callsStarted)", "\(c.callsSucceeded)", "\(c.callsFailed)", c.id == p.watched ? "watched" : ""])
        }
        out += formatTable(rows)
        for server in p.servers {
            out += "server #\(server.id) \(server.listen.joined(separator: ",")): \(server.socketCount) client connection\(server.socketCount == 1 ? "" : "s"), "
                + "\(server.callsStarted) calls, \(server.callsSucceeded) ok, \(server.callsFailed) failed\n"
            rows = [["SOCKET", "REMOTE", "STREAMS", "OK", "FAILED", "MSGS IN", "MSGS OUT", "KEEPALIVES"]]
            for so in server.sockets {
                rows.append(["#\(so.id)", so.remote, "\(so.streamsStarted)", "\(so.streamsSucceeded)", "\(so.streamsFailed)",
                             "\(so.messagesReceived)", "\(so.messagesSent)", "\(so.keepAlivesSent)"])
            }
            out += formatTable(rows)
        }
        return out
    }
}

extension Summary {
    public func table() -> String {
        var out = "summary: \(String(format: "%.1f", seconds))s  \(target)  \(policy)  \(total) RPCs, \(ok) ok, \(failed) failed"
        if !errors.isEmpty { out += " (" + errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")" }
        out += "  fairness \(fairness.map { String(format: "%.3f", $0) } ?? "-") (\(fairnessWord))"
        if goAways > 0 || reconnects > 0 { out += "  goaways \(goAways), reconnects \(reconnects)" }
        out += "\n"
        var rows = [["BACKEND", "TOTAL", "SHARE", "OK", "FAILED", "ERRORS", "P50", "P99"]]
        for b in backends {
            let errs = b.errors.isEmpty ? "-" : b.errors.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
            rows.append([b.name, "\(b.total)", String(format: "%.1f%%", b.share * 100), "\(b.ok)", "\(b.failed)", errs, ms(b.p50Ms), ms(b.p99Ms)])
        }
        if unassignedFailed > 0 {
            rows.append(["(no subchannel)", "\(unassignedFailed)", "-", "0", "\(unassignedFailed)", "-", "-", "-"])
        }
        out += formatTable(rows)
        return out
    }
}


/// Left-aligned columns separated by two spaces; the last column is not padded.
public func formatTable(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max(), width > 0 else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    var out = ""
    for r in rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
        }
        while line.hasSuffix(" ") { line.removeLast() }
        out += line + "\n"
    }
    return out
}

func ms(_ v: Double?) -> String { v.map { String(format: "%.2fms", $0) } ?? "-" }

/// The xDS status line: `xDS 127.0.0.1:18000 connected · LDS greeter v3 ACK · … · EDS greeter v7
/// NACK (keeping v6): reason`.
public enum XDSStatusText {
    /// `now` (seconds since 1970) adds the ages; nil leaves them out (batch tables).
    public static func line(_ s: XDSStatus, now: Double?) -> String {
        func age(_ t: Double?) -> String {
            guard let t, let now else { return "" }
            return " " + formatDuration(Millis(max(0, min(1e12, (now - t) * 1000))))
        }
        var parts = ["xDS \(s.server) \(s.connection)\(age(s.since))"]
        // One entry per type (the names are in the xDS pane); a NACK first, with its reason.
        var nacks: [String] = []
        for type in ["LDS", "RDS", "CDS", "EDS"] {
            let rs = s.resources.filter { $0.type == type }
            guard let r = rs.first else { continue }
            let count = rs.count > 1 ? "×\(rs.count)" : ""
            switch r.state {
            case "nacked":
                nacks.append("\(type) \(r.name) NACK\(r.version.isEmpty ? "" : " (keeping v\(r.version))"): \(r.nackReason ?? "")")
            case "acked":
                parts.append("\(type)\(count) v\(r.version) ACK\(age(rs.compactMap(\.updated).max()))")
            default:
                parts.append("\(type)\(count) requested")
            }
        }
        return (parts.prefix(1) + nacks + parts.dropFirst()).joined(separator: " · ")
    }
}
