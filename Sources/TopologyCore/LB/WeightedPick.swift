/// A parent policy's picker (weighted_target, A28's weighted clusters, xDS localities): each RPC
/// goes to a child with a READY subchannel, chosen in proportion to the children's weights, then
/// to the child's own pick.
public struct WeightedPick: PickNode {
    public var children: [(weight: UInt32, node: any PickNode)]
    public init(_ children: [(weight: UInt32, node: any PickNode)]) { self.children = children }

    public var ready: [SubchannelID] { children.flatMap(\.node.ready) }

    public func makePicker(randomStart: Int) -> any SubchannelPicker {
        let usable = children.filter { $0.weight > 0 && !$0.node.ready.isEmpty }
        return Picker(usable.enumerated().map { i, c in (UInt64(c.weight), c.node.makePicker(randomStart: randomStart &+ i)) })
    }

    public func isEqual(to other: any PickNode) -> Bool {
        guard let o = other as? WeightedPick, o.children.count == children.count else { return false }
        return zip(children, o.children).allSatisfy { $0.weight == $1.weight && $0.node.isEqual(to: $1.node) }
    }

    final class Picker: SubchannelPicker {
        let children: [(weight: UInt64, picker: any SubchannelPicker)]
        let total: UInt64
        init(_ children: [(weight: UInt64, picker: any SubchannelPicker)]) {
            self.children = children
            self.total = children.reduce(0) { $0 + $1.weight }
        }
        func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? {
            guard total > 0 else { return nil }
            var r = UInt64(truncatingIfNeeded: random()) % total
            for c in children {
                if r < c.weight { return c.picker.pick(outstanding: outstanding, random: random) }
                r -= c.weight
            }
            return nil
        }
    }
}
