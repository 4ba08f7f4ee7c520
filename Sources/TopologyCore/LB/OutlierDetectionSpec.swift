import Foundation

/// `--outlier-detection SPEC`: gRFC A50's settings as a user types them. Either gRPC's own JSON
/// (the `outlier_detection_experimental` object of a service config's `loadBalancingConfig`:
/// `{"interval":"10s","failurePercentageEjection":{"threshold":50}}`; `childPolicy` is `--lb`'s),
/// or a comma list of words and `key=value`s:
///
/// | item | A50 field |
/// |------|-----------|
/// | `success-rate` / `failure-percentage` | enable that algorithm with its defaults |
/// | `interval=10s`, `base-ejection-time=30s`, `max-ejection-time=300s` | the times |
/// | `max-ejection-percent=10` | |
/// | `stdev-factor=1.9`, `success-rate-enforcement=100`, `success-rate-minimum-hosts=5`, `success-rate-request-volume=100` | successRateEjection |
/// | `threshold=85` (= `failure-percentage-threshold`), `failure-percentage-enforcement=100`, `failure-percentage-minimum-hosts=5`, `failure-percentage-request-volume=50` | failurePercentageEjection |
///
/// Setting one of an algorithm's keys enables it. Every value is range-checked; a list that
/// enables neither algorithm is refused (it would eject nothing).
extension OutlierDetectionConfig {
    public static let specHelp = "success-rate, failure-percentage, interval=10s, base-ejection-time=30s, max-ejection-time=300s, max-ejection-percent=10, stdev-factor=1.9, threshold=85, minimum-hosts=5, request-volume=50 …, or A50's JSON"

    public static func parse(_ spec: String) -> Result<OutlierDetectionConfig, SpecError> {
        let text = spec.trimmingCharacters(in: .whitespaces)
        guard text.utf8.count <= 4096 else { return .failure(SpecError("is longer than 4096 bytes")) }
        if text.hasPrefix("{") { return parseJSON(text) }
        var c = OutlierDetectionConfig()
        var sr: SuccessRate?
        var fp: FailurePercentage?
        var maxTimeSet = false
        for raw in text.split(separator: ",", omittingEmptySubsequences: false) {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item == "success-rate" { sr = sr ?? SuccessRate(); continue }
            if item == "failure-percentage" { fp = fp ?? FailurePercentage(); continue }
            guard let eq = item.firstIndex(of: "=") else {
                return .failure(SpecError("has '\(item.prefix(40))', which is none of: \(specHelp)"))
            }
            let key = String(item[..<eq]), value = String(item[item.index(after: eq)...])
            func int(_ range: ClosedRange<Int>) -> Result<Int, SpecError> {
                guard let v = Int(value), range.contains(v) else {
                    return .failure(SpecError("\(key)=\(value.prefix(20)) is not a whole number from \(range.lowerBound) to \(range.upperBound)"))
                }
                return .success(v)
            }
            func duration() -> Result<Millis, SpecError> {
                guard let ms = DurationText.parseMillis(value) else {
                    return .failure(SpecError("\(key)=\(value.prefix(20)) is not a duration up to 366 days (write 500ms, 10s, 5m)"))
                }
                return .success(ms)
            }
            do {
                switch key {
                case "interval": c.intervalMs = try duration().get()
                case "base-ejection-time": c.baseEjectionTimeMs = try duration().get()
                case "max-ejection-time": c.maxEjectionTimeMs = try duration().get(); maxTimeSet = true
                case "max-ejection-percent": c.maxEjectionPercent = try int(0...100).get()
                case "stdev-factor":
                    guard let v = Double(value), v.isFinite, (0...1000).contains(v) else {
                        throw SpecError("stdev-factor=\(value.prefix(20)) is not a number from 0 to 1000 (1.9 is A50's default)")
                    }
                    sr = sr ?? SuccessRate()
                    sr!.stdevFactor = Int((v * 1000).rounded())
                case "success-rate-enforcement": sr = sr ?? SuccessRate(); sr!.enforcementPercentage = try int(0...100).get()
                case "success-rate-minimum-hosts": sr = sr ?? SuccessRate(); sr!.minimumHosts = try int(0...1_000_000).get()
                case "success-rate-request-volume": sr = sr ?? SuccessRate(); sr!.requestVolume = try int(0...1_000_000_000).get()
                case "threshold", "failure-percentage-threshold": fp = fp ?? FailurePercentage(); fp!.threshold = try int(0...100).get()
                case "failure-percentage-enforcement": fp = fp ?? FailurePercentage(); fp!.enforcementPercentage = try int(0...100).get()
                case "minimum-hosts", "failure-percentage-minimum-hosts": fp = fp ?? FailurePercentage(); fp!.minimumHosts = try int(0...1_000_000).get()
                case "request-volume", "failure-percentage-request-volume": fp = fp ?? FailurePercentage(); fp!.requestVolume = try int(0...1_000_000_000).get()
                default:
                    throw SpecError("has an unknown key '\(key.prefix(40))' (known: \(specHelp))")
                }
            } catch let e as SpecError {
                return .failure(e)
            } catch {
                return .failure(SpecError("\(error)"))
            }
        }
        guard sr != nil || fp != nil else {
            return .failure(SpecError("enables neither success-rate nor failure-percentage: it would eject nothing (add one, e.g. failure-percentage)"))
        }
        c.successRate = sr
        c.failurePercentage = fp
        if !maxTimeSet { c.maxEjectionTimeMs = max(c.maxEjectionTimeMs, c.baseEjectionTimeMs) }
        if c.intervalMs < 100 { return .failure(SpecError("interval=\(formatDuration(c.intervalMs)) is shorter than 100ms")) }
        if let p = c.problem { return .failure(SpecError(p)) }
        return .success(c)
    }

    /// A50's JSON form (proto3 JSON: durations as "10s" strings, numbers as numbers).
    static func parseJSON(_ text: String) -> Result<OutlierDetectionConfig, SpecError> {
        guard let any = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let o = any as? [String: Any] else {
            return .failure(SpecError("is not a JSON object (gRFC A50's outlier_detection_experimental config)"))
        }
        var c = OutlierDetectionConfig()
        let known: Set<String> = ["interval", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent", "successRateEjection", "failurePercentageEjection", "childPolicy"]
        if let k = o.keys.sorted().first(where: { !known.contains($0) }) {
            return .failure(SpecError("has an unknown field \"\(k.prefix(40))\" (A50's are \(known.sorted().joined(separator: ", ")))"))
        }
        func duration(_ key: String) throws -> Millis? {
            guard let v = o[key] else { return nil }
            // proto3 JSON: "1.5s"; a {seconds, nanos} object is accepted too.
            if let s = v as? String, s.hasSuffix("s"), !s.hasSuffix("ms"), let ms = DurationText.parseMillis(s) { return ms }
            if let d = v as? [String: Any] {
                let secs = (d["seconds"] as? NSNumber)?.doubleValue ?? Double(d["seconds"] as? String ?? "") ?? 0
                let nanos = (d["nanos"] as? NSNumber)?.doubleValue ?? 0
                let ms = secs * 1000 + nanos / 1_000_000
                if ms.isFinite, ms >= 0, ms <= Double(DurationText.maxMillis) { return Millis(ms.rounded()) }
            }
            throw SpecError("\"\(key)\" is not a duration (write \"10s\")")
        }
        func int(_ d: [String: Any], _ key: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let v = d[key] else { return nil }
            if let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), range.contains(i) { return i }
            throw SpecError("\"\(key)\" is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        do {
            if let v = try duration("interval") { c.intervalMs = v }
            if let v = try duration("baseEjectionTime") { c.baseEjectionTimeMs = v }
            if let v = try duration("maxEjectionTime") { c.maxEjectionTimeMs = v } else { c.maxEjectionTimeMs = max(c.maxEjectionTimeMs, c.baseEjectionTimeMs) }
            if let v = try int(o, "maxEjectionPercent", 0...100) { c.maxEjectionPercent = v }
            if let v = o["successRateEjection"] {
                guard let d = v as? [String: Any] else { throw SpecError("\"successRateEjection\" is not an object") }
                var s = SuccessRate()
                if let x = try int(d, "stdevFactor", 0...1_000_000) { s.stdevFactor = x }
                if let x = try int(d, "enforcementPercentage", 0...100) { s.enforcementPercentage = x }
                if let x = try int(d, "minimumHosts", 0...1_000_000) { s.minimumHosts = x }
                if let x = try int(d, "requestVolume", 0...1_000_000_000) { s.requestVolume = x }
                c.successRate = s
            }
            if let v = o["failurePercentageEjection"] {
                guard let d = v as? [String: Any] else { throw SpecError("\"failurePercentageEjection\" is not an object") }
                var f = FailurePercentage()
                if let x = try int(d, "threshold", 0...100) { f.threshold = x }
                if let x = try int(d, "enforcementPercentage", 0...100) { f.enforcementPercentage = x }
                if let x = try int(d, "minimumHosts", 0...1_000_000) { f.minimumHosts = x }
                if let x = try int(d, "requestVolume", 0...1_000_000_000) { f.requestVolume = x }
                c.failurePercentage = f
            }
        } catch let e as SpecError {
            return .failure(e)
        } catch {
            return .failure(SpecError("\(error)"))
        }
        if c.intervalMs < 100 { return .failure(SpecError("\"interval\" \(formatDuration(c.intervalMs)) is shorter than 100ms")) }
        if let p = c.problem { return .failure(SpecError(p)) }
        return .success(c)
    }

    public struct SpecError: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// The failure-percentage algorithm alone, with these numbers (what demos and tests run).
    public static func failurePercentage(threshold: Int, minimumHosts: Int, requestVolume: Int, intervalMs: Millis,
                                         baseEjectionTimeMs: Millis, maxEjectionPercent: Int) -> OutlierDetectionConfig {
        var c = OutlierDetectionConfig()
        c.intervalMs = intervalMs
        c.baseEjectionTimeMs = baseEjectionTimeMs
        c.maxEjectionTimeMs = max(c.maxEjectionTimeMs, baseEjectionTimeMs)
        c.maxEjectionPercent = maxEjectionPercent
        var f = FailurePercentage()
        f.threshold = threshold
        f.minimumHosts = minimumHosts
        f.requestVolume = requestVolume
        c.failurePercentage = f
        return c
    }

    /// One line: what runs, with which numbers.
    public var summary: String {
        var parts = ["interval \(formatDuration(intervalMs))", "ejection \(formatDuration(baseEjectionTimeMs))×n up to \(formatDuration(max(baseEjectionTimeMs, maxEjectionTimeMs)))",
                     "at most \(maxEjectionPercent)%"]
        if let s = successRate {
            parts.append("success rate < mean − \(Double(s.stdevFactor) / 1000)σ (≥ \(s.minimumHosts) hosts with ≥ \(s.requestVolume) RPCs, enforced \(s.enforcementPercentage)%)")
        }
        if let f = failurePercentage {
            parts.append("failures > \(f.threshold)% (≥ \(f.minimumHosts) hosts, ≥ \(f.requestVolume) RPCs, enforced \(f.enforcementPercentage)%)")
        }
        if successRate == nil && failurePercentage == nil { parts.append("no algorithm enabled: nothing is ejected") }
        return parts.joined(separator: ", ")
    }
}
