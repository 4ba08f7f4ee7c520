import TopologyCore
@testable import TopologyView

/// The scripted models live in TopologyView (`ScriptedModel`) so `grpctop bench --view` renders
/// the same situations the golden frames show.
typealias Script = ScriptedModel

extension ScriptedModel {
    static func thousandEndpoints() -> Model { manyEndpoints(1000) }
}
