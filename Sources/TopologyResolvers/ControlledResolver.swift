import Foundation
import TopologyCore

/// A resolver that a controller pushes endpoint sets into (the demo's "Kubernetes", tests).
/// It keeps the resolver contract: whole sets, and empty sets pushed as they are. Re-resolution
/// requests change nothing: the pushed set is the registry's answer until the next push.
public final class ControlledResolver: EndpointResolver, @unchecked Sendable {
    public let name: String
    private let lock = NSLock()
    private var sink: (@Sendable (Event) -> Void)?
    private var current: ResolverResult?

    public init(name: String = "demo") { self.name = name }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        lock.lock()
        self.sink = sink
        let now = current
        lock.unlock()
        if let now { sink(.resolverUpdated(now)) }
    }

    /// Publishes a new endpoint set (and, for a virtual IP, the pods behind it).
    public func push(_ endpoints: [Endpoint], backends: [String]? = nil) {
        let result = ResolverResult(endpoints: endpoints, backends: backends)
        lock.lock()
        current = result
        let s = sink
        lock.unlock()
        s?(.resolverUpdated(result))
    }

    public func requestResolution(_ request: ResolutionRequest) {}

    public func stop() {
        lock.lock()
        sink = nil
        lock.unlock()
    }
}
