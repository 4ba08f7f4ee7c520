import TopologyCore

enum DurationParse {
    static func millis(_ text: String) -> Int64? { DurationText.parseMillis(text) }
}
