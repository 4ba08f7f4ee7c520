/// What the data plane picks from: the READY subchannels a policy (tree) chose and how to choose
/// among them, with the channel's state (TRANSIENT_FAILURE fails RPCs fast, others queue them).
/// The model builds one after every topology change; the engine turns it into a `Picker`.
public struct PickerSpec: Sendable, Equatable {
    public var node: any PickNode
    public var channelState: ConnectivityState

    public init(node: any PickNode, channelState: ConnectivityState) {
        self.node = node
        self.channelState = channelState
    }

    /// Every READY subchannel it may pick, in a stable order.
    public var ready: [SubchannelID] { node.ready }

    public static func == (a: PickerSpec, b: PickerSpec) -> Bool {
        a.channelState == b.channelState && a.node.isEqual(to: b.node)
    }
}

/// One node of a picker tree: a policy's choice among its READY subchannels (or its children's
/// pickers). Each policy file defines its own.
public protocol PickNode: Sendable {
    /// The READY subchannels it may pick, in a stable order.
    var ready: [SubchannelID] { get }
    /// The per-RPC picker, with its own mutable state (round_robin's position).
    func makePicker(randomStart: Int) -> any SubchannelPicker
    func isEqual(to other: any PickNode) -> Bool
}

extension PickNode where Self: Equatable {
    public func isEqual(to other: any PickNode) -> Bool { (other as? Self) == self }
}

/// Picks one subchannel per RPC, on the hot path.
public protocol SubchannelPicker: AnyObject {
    /// - Parameters:
    ///   - outstanding: RPCs in flight on a subchannel (least_request).
    ///   - random: a random integer source (least_request's two choices).
    func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID?
}

/// No READY subchannel: RPCs queue (or fail fast in TRANSIENT_FAILURE).
public struct NoPick: PickNode, Equatable {
    public init() {}
    public var ready: [SubchannelID] { [] }
    public func makePicker(randomStart: Int) -> any SubchannelPicker { Picker.Nothing() }
}

/// The engine's picker: made from a spec, picks on the hot path. Confined to the engine's loop.
public struct Picker: @unchecked Sendable {
    public let spec: PickerSpec
    private let root: any SubchannelPicker

    public init(spec: PickerSpec, randomStart: Int) {
        self.spec = spec
        self.root = spec.node.makePicker(randomStart: randomStart)
    }

    /// Returns a READY subchannel, or nil when there is none.
    public mutating func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? {
        root.pick(outstanding: outstanding, random: random)
    }

    final class Nothing: SubchannelPicker {
        func pick(outstanding: (SubchannelID) -> Int, random: () -> Int) -> SubchannelID? { nil }
    }
}
