/// round_robin: one subchannel per endpoint, each kept connected (`EndpointList`); RPCs go to the
/// READY ones in turn, from a random start.
public struct RoundRobin: EndpointListPolicy {
    public static let name = "round_robin"
    public var list = EndpointList()
    public init() {}
    init(legacy list: EndpointList) { self.list = list }

    public func pickNode(table: SubchannelTable) -> any PickNode { Pick(ready: list.ready) }

    /// READY subchannels in turn.
    public struct Pick: PickNode, Equatable {
        public var ready: [SubchannelID]
        public init(ready: [SubchannelID]) { self.ready = ready }
        public func makePicker(randomStart: Int) -> any SubchannelPicker { Picker(ready, start: randomStart) }

        final class Picker: SubchannelPicker {
            let ready: [SubchannelID]
            var next: Int
            init(_ ready: [SubchannelID], start: Int) {
                self.ready = ready
                self.next = ready.isEmpty ? 0 : abs(start % ready.count)
            }
            func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? {
                guard !ready.isEmpty else { return nil }
                if next >= ready.count { next = 0 }
                defer { next += 1 }
                return ready[next]
            }
        }
    }
}
