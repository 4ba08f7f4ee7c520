import TopologyCore

/// Targets that need no lookup (`ipv4:`, `ipv6:`, `unix:`, IP literals under `dns:`): one
/// update with every address as its own endpoint, then nothing (re-resolution changes nothing).
public final class StaticResolver: EndpointResolver, @unchecked Sendable {
    public let name = "static"
    private let endpoints: [Endpoint]

    public init(addresses: [EndpointAddress]) {
        self.endpoints = addresses.map { Endpoint(addresses: [$0]) }
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        sink(.resolverUpdated(ResolverResult(endpoints: endpoints, info: ["source": "target"])))
    }

    public func requestResolution(_ request: ResolutionRequest) {}
    public func stop() {}
}
