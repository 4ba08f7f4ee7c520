/// least_request (gRFC A48): round_robin's subchannel management (`EndpointList`); each RPC
/// samples `choiceCount` READY subchannels at random (with replacement) and takes the one with
/// the fewest RPCs outstanding.
public struct LeastRequest: EndpointListPolicy {
    public static let name = "least_request"
    /// A48's `choice_count` (default 2, 2…10).
    public static let choiceCount = 2
    public var list = EndpointList()
    public init() {}
    init(legacy list: EndpointList) { self.list = list }

    public func pickNode(table: SubchannelTable) -> any PickNode { Pick(ready: list.ready) }

    public struct Pick: PickNode, Equatable {
        public var ready: [SubchannelID]
        public init(ready: [SubchannelID]) { self.ready = ready }
        public func makePicker(randomStart: Int) -> any SubchannelPicker { Picker(ready) }

        final class Picker: SubchannelPicker {
            let ready: [SubchannelID]
            init(_ ready: [SubchannelID]) { self.ready = ready }
            func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? {
                guard !ready.isEmpty else { return nil }
                var best = ready[abs(random() % ready.count)]
                for _ in 1..<LeastRequest.choiceCount {
                    let other = ready[abs(random() % ready.count)]
                    if outstanding(other) < outstanding(best) { best = other }
                }
                return best
            }
        }
    }
}
