import Foundation
import FuzzParsers
import TopologyCore
import TopologyRecording
import TopologyView

// libFuzzer entry points for every parser of untrusted input (issue 15). One binary; the target
// is chosen by GRPCTOP_FUZZ_TARGET (scripts/fuzz sets it). Each target feeds the bytes to the
// parser as grpctop would receive them and, where the parser produces something, uses it the
// way grpctop does next (apply, render, seek), so a crash anywhere downstream is found too.
// Built with libFuzzer and AddressSanitizer by scripts/fuzz, never in the
// binary users run.

enum FuzzTarget: String, CaseIterable {
    case flags, recordingText, recordingFile, kube, etcdValue, etcdMessage, grpcResponse, keys, dns, channelz, xds, envoy, consul
}

let selected: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["GRPCTOP_FUZZ_TARGET"] ?? ""
    guard let t = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("GRPCTOP_FUZZ_TARGET must be one of \(FuzzTarget.allCases.map(\.rawValue))\n".utf8))
        exit(2)
    }
    return t
}()

let scratch = NSTemporaryDirectory() + "grpctop-fuzz-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    switch selected {
    case .flags: fuzzFlags(bytes)
    case .recordingText: fuzzRecordingText(bytes)
    case .recordingFile: fuzzRecordingFile(bytes)
    case .kube: fuzzKube(bytes)
    case .etcdValue: fuzzEtcdValue(bytes)
    case .etcdMessage: fuzzEtcdMessage(bytes)
    case .grpcResponse: fuzzGRPCResponse(bytes)
    case .keys: fuzzKeys(bytes)
    case .dns: fuzzDNS(bytes)
    case .channelz: fuzzChannelz(bytes)
    case .xds: fuzzXDS(bytes)
    case .envoy: fuzzEnvoy(bytes)
    case .consul: fuzzConsul(bytes)
    }
    return 0
}

/// Targets, durations, sizes and times as typed at a flag or a prompt.
func fuzzFlags(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    if case .success(let ms) = DurationText.parse(text) {
        precondition(ms >= 0 && ms <= DurationText.maxMillis)
        _ = grpcTimeoutHeader(ms: ms)
    }
    _ = ByteSizeText.parse(text)
    if let t = ViewState.parseTime(text) { precondition(t >= 0 && t <= DurationText.maxMillis) }
    if let target = try? Target.parse(text) {
        _ = target.defaultAuthority
        _ = target.staticAddresses
    }
    if case .success(let od) = OutlierDetectionConfig.parse(text) {
        precondition(od.problem == nil && od.intervalMs >= 100)
        _ = od.summary
    }
}

/// A whole recording's text (read whole), replayed to the end and rendered.
func fuzzRecordingText(_ bytes: [UInt8]) {
    guard let r = try? Recording.parse(Data(bytes), name: "fuzz", version: "0.1.0") else { return }
    var replayer = Replayer(r)
    replayer.advance(to: r.duration)
    _ = Snapshot(replayer.model)
    _ = Summary(replayer.model)
    _ = Dashboard.render(model: replayer.model, state: ViewState(), width: 120, height: 40)
}

/// A recording file (plain or gzip, with or without an index): opened as replay opens it, seeked
/// about, rendered.
func fuzzRecordingFile(_ bytes: [UInt8]) {
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    let path = scratch + "/input" + (bytes.starts(with: [0x1f, 0x8b]) ? ".jsonl.gz" : ".jsonl")
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { return }
    guard let source = try? ReplaySource.open(path: path, version: "0.1.0") else { return }
    var player = ReplayPlayer(source)
    for t in [source.duration, source.duration / 2, 0] { player.seek(to: t) }
    _ = Dashboard.render(model: player.model, state: ViewState(), width: 100, height: 30)
}

/// A watch stream's bytes (chunked at the first byte's value), each line decoded as an
/// EndpointSlice or core/v1 Endpoints event, applied to the slice set, the union turned into
/// a resolver update and applied to the model.
func fuzzKube(_ bytes: [UInt8]) {
    guard let first = bytes.first else { return }
    let chunk = max(1, Int(first))
    var splitter = WatchLineSplitter()
    var slices = SliceSet(port: .name("grpc"))
    var model = Model()
    var lines: [Data] = []
    var i = 1
    while i < bytes.count {
        guard let more = try? splitter.feed(bytes[i..<min(bytes.count, i + chunk)]) else { return }
        lines += more
        i += chunk
    }
    if let rest = splitter.finish() { lines.append(rest) }
    for line in lines {
        for core in [false, true] {
            guard let event = try? KubeWatchEvent.decode(line, coreEndpoints: core) else { continue }
            for slice in event.slices { slices.put(slice) }
        }
    }
    let union = slices.union()
    _ = model.apply(TimedEvent(at: 1, .resolverUpdated(ResolverResult(endpoints: union.endpoints))))
}

/// An etcd value under a key (the first line of the input is the key).
func fuzzEtcdValue(_ bytes: [UInt8]) {
    let nl = bytes.firstIndex(of: 0x0A) ?? bytes.count
    let key = String(decoding: bytes[..<nl], as: UTF8.self)
    let value = Array(bytes[min(bytes.count, nl + 1)...])
    if case .endpoint(let e, _) = EtcdRegistration.parse(key: key, value: value, prefix: "/services/") {
        var model = Model()
        _ = model.apply(TimedEvent(at: 1, .resolverUpdated(ResolverResult(endpoints: [e]))))
    }
}

/// etcd's responses as the server sends them (protobuf), each message type.
func fuzzEtcdMessage(_ bytes: [UInt8]) {
    _ = try? RangeResponse(serialized: bytes)
    _ = try? WatchResponse(serialized: bytes)
    _ = try? LeaseGrantResponse(serialized: bytes)
    _ = try? LeaseKeepAliveResponse(serialized: bytes)
    _ = try? LeaseTimeToLiveResponse(serialized: bytes)
    _ = try? AuthenticateResponse(serialized: bytes)
    _ = try? PutResponse(serialized: bytes)
    _ = try? DeleteRangeResponse(serialized: bytes)
}

/// A server's response: the first bytes of the connection, the body in DATA-frame pieces,
/// grpc-status and grpc-message.
func fuzzGRPCResponse(_ bytes: [UInt8]) {
    _ = ServerPreface.verdict(Array(bytes.prefix(9)))
    guard bytes.count >= 2 else { return }
    let piece = max(1, Int(bytes[0]))
    let limit = Int(bytes[1]) << 8
    var framer = GRPCMessageFramer()
    // The reader (the etcd client's, the channelz and xDS clients') must agree with the counter
    // (the data plane's) on the same pieces.
    var reader = GRPCMessageReader(limit: limit)
    var whole: [[UInt8]] = []
    var tooLarge = false
    var i = 2
    bytes.withUnsafeBytes { raw in
        while i < raw.count {
            let end = min(raw.count, i + piece)
            framer.consume(UnsafeRawBufferPointer(rebasing: raw[i..<end]), limit: limit)
            if !tooLarge {
                do { whole += try reader.read(raw[i..<end]) } catch { tooLarge = true }
            }
            i = end
        }
    }
    if let o = framer.oversized { precondition(Int(o) > limit) }
    precondition(tooLarge == (framer.oversized != nil))
    if !tooLarge {
        precondition(whole.count == framer.messages)
        precondition(whole.allSatisfy { $0.count <= limit })
    }
    let text = String(decoding: bytes.dropFirst(2), as: UTF8.self)
    if let code = GRPCStatusText.code(text) { precondition((0...16).contains(code)) }
    precondition(GRPCStatusText.message(text).utf8.count <= 4 * 1024)
    // What a server writes, a client reads back (within the reader's 1,024-byte cap).
    if text.utf8.count <= 300 { precondition(GRPCStatusText.message(GRPCStatusText.encodeMessage(text)) == text) }
}

/// Keys as curses hands them over (4-byte codes), through the view state and its prompts
/// (filter, go-to-time, marker), over a busy model, rendered after each.
func fuzzKeys(_ bytes: [UInt8]) {
    let model = fuzzModel
    var state = ViewState()
    var rows = PaneRows(model: model, state: state)
    var i = 0
    while i + 4 <= bytes.count {
        let code = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
        i += 4
        let special: [Key] = [.up, .down, .left, .right, .pageUp, .pageDown, .home, .end, .shiftLeft, .shiftRight, .backTab, .resize]
        let key = code >= 0xFFFF_FF00 ? special[Int(code & 0xFF) % special.count] : Key.fromCharacterCode(code)
        guard let key else { continue }
        _ = state.handle(key, rows: rows, model: model)
        rows = PaneRows(model: model, state: state)
    }
    _ = Dashboard.render(model: model, state: state, width: 100, height: 30)
}

let fuzzModel: Model = {
    var m = Model()
    _ = m.apply(TimedEvent(at: 0, .sessionStarted(SessionInfo(target: "fuzz", resolver: "static", policy: .roundRobin, rpc: "x",
                                                                  identityHeader: nil, traffic: .rate(10), startedAt: 0, host: "h", version: "v"))))
    let endpoints = (0..<5).map { Endpoint(addresses: [.tcp(host: "10.0.0.\($0)", port: 50051)], hostname: "pod-\($0)") }
    _ = m.apply(TimedEvent(at: 10, .resolverUpdated(ResolverResult(endpoints: endpoints))))
    return m
}()

/// A DNS server's answer as c-ares hands it over (the first byte picks A, AAAA or SRV), read,
/// turned into endpoints as the DNS resolver does, and applied.
func fuzzDNS(_ bytes: [UInt8]) {
    guard let kind = bytes.first else { return }
    let answer = Array(bytes.dropFirst())
    var endpoints: [Endpoint] = []
    switch kind % 3 {
    case 0:
        endpoints = DNSReplies.parseA(answer).map { Endpoint(addresses: [.tcp(host: $0.ip, port: 50051)], hostname: "web") }
    case 1:
        endpoints = DNSReplies.parseAAAA(answer).map { Endpoint(addresses: [.tcp(host: $0.ip, port: 50051)], hostname: "web") }
    default:
        if case .success(let records) = DNSReplies.parseSRV(answer) {
            endpoints = records.map { r in
                precondition((0...65535).contains(r.port))
                return Endpoint(addresses: [.tcp(host: r.target, port: r.port)], hostname: r.target,
                                metadata: ["srv": "\(r.target):\(r.port) priority \(r.priority) weight \(r.weight)"])
            }
        }
    }
    var model = Model()
    _ = model.apply(TimedEvent(at: 1, .resolverUpdated(ResolverResult(endpoints: endpoints))))
}

/// channelz responses as another process's channelz service sends them (`grpctop attach`):
/// decoded as each response type; what decodes re-encodes to the same message.
func fuzzChannelz(_ bytes: [UInt8]) {
    if let r = try? Channelz.GetTopChannelsResponse(serialized: bytes) {
        precondition((try? Channelz.GetTopChannelsResponse(serialized: r.serialized())) == r)
    }
    if let r = try? Channelz.GetSubchannelResponse(serialized: bytes) {
        precondition((try? Channelz.GetSubchannelResponse(serialized: r.serialized())) == r)
    }
    if let r = try? Channelz.GetSocketResponse(serialized: bytes) {
        precondition((try? Channelz.GetSocketResponse(serialized: r.serialized())) == r)
        if let cert = r.socket?.security?.tls?.remoteCertificate, let subject = CertificateSubject.text(certificate: cert) {
            precondition(subject.count <= 200 && !subject.unicodeScalars.contains { $0.value < 0x20 })
        }
    }
    // The peer certificate (DER or PEM) as its own input too.
    if let subject = CertificateSubject.text(certificate: bytes) {
        precondition(subject.count <= 200 && !subject.unicodeScalars.contains { $0.value < 0x20 })
    }
    if let r = try? Channelz.GetServersResponse(serialized: bytes) {
        precondition((try? Channelz.GetServersResponse(serialized: r.serialized())) == r)
    }
    _ = try? Channelz.GetServerSocketsResponse(serialized: bytes)
}

/// xDS as a control plane sends it (`xds:///`): the first byte picks the input — 0, a bootstrap
/// (JSON); else a DiscoveryResponse, handled after a valid listener → routes → cluster chain so
/// every resource type is reached. The requests it answers with re-encode to themselves; the
/// endpoints it leads to are applied to a model (the xDS policy tree) and rendered.
func fuzzXDS(_ bytes: [UInt8]) {
    guard let mode = bytes.first else { return }
    let rest = Array(bytes.dropFirst())
    if mode == 0 {
        _ = try? XDSBootstrap.parse(rest, source: "fuzz")
        return
    }
    var state = XDSState(listenerName: "greeter", rpcPath: "/helloworld.Greeter/SayHello", node: XDS.Node())
    _ = state.streamStarted()
    for r in xdsChain { _ = state.handle(r, now: 1) }
    guard let response = try? XDS.DiscoveryResponse(serialized: rest) else { return }
    for _ in 0..<2 {
        let out = state.handle(response, now: 2)
        for r in out.requests { precondition((try? XDS.DiscoveryRequest(serialized: r.serialized())) == r) }
    }
    _ = state.status(server: "cp:1", connection: "connected", since: 1)
    var model = Model()
    _ = model.apply(TimedEvent(at: 1, .resolverUpdated(ResolverResult(endpoints: state.endpoints(), lbTree: "xds"))))
    _ = model.apply(TimedEvent(at: 2, .xdsStatus(state.status(server: "cp:1", connection: "connected", since: 1))))
    _ = model.apply(TimedEvent(at: 250, .stats(StatsTick())))
    _ = Dashboard.render(model: model, state: ViewState(), width: 100, height: 30)
}

/// A valid chain up to the cluster `greeter` (EDS `greeter-eds`), built with grpctop's own
/// messages.
let xdsChain: [XDS.DiscoveryResponse] = {
    func any(_ url: String, _ bytes: [UInt8]) -> XDS.AnyMessage {
        var a = XDS.AnyMessage()
        a.typeUrl = url
        a.value = bytes
        return a
    }
    func response(_ t: XDSType, _ resource: [UInt8]) -> XDS.DiscoveryResponse {
        var r = XDS.DiscoveryResponse()
        r.typeUrl = t.url
        r.versionInfo = "1"
        r.nonce = "1"
        r.resources = [any(t.url, resource)]
        return r
    }
    var hcm = XDS.HttpConnectionManager()
    var rds = XDS.Rds()
    var source = XDS.ConfigSource()
    source.ads = XDS.AggregatedConfigSource()
    rds.configSource = source
    rds.routeConfigName = "greeter-routes"
    hcm.rds = rds
    var router = XDS.HttpFilter()
    router.name = "envoy.filters.http.router"
    router.typedConfig = any(XDSType.routerURL, [])
    hcm.httpFilters = [router]
    var listener = XDS.Listener()
    listener.name = "greeter"
    var api = XDS.ApiListener()
    api.apiListener = any(XDSType.hcmURL, hcm.serialized())
    listener.apiListener = api
    var rc = XDS.RouteConfiguration()
    rc.name = "greeter-routes"
    var vh = XDS.VirtualHost()
    vh.domains = ["*"]
    var route = XDS.Route()
    route.match = XDS.RouteMatch()
    var action = XDS.RouteAction()
    action.cluster = "greeter"
    route.route = action
    vh.routes = [route]
    rc.virtualHosts = [vh]
    var cluster = XDS.Cluster()
    cluster.name = "greeter"
    cluster.type = 3
    var eds = XDS.EdsClusterConfig()
    eds.edsConfig = source
    eds.serviceName = "greeter-eds"
    cluster.edsClusterConfig = eds
    return [response(.lds, listener.serialized()), response(.rds, rc.serialized()), response(.cds, cluster.serialized())]
}()

/// An Envoy admin answer (`/clusters?format=json`, `/server_info`) as a proxy sends it: the
/// clusters read, the default one reported twice (deltas), applied as an observed channel and as
/// the proxy level beside a driven one, rendered.
func fuzzEnvoy(_ bytes: [UInt8]) {
    _ = EnvoyAdmin.serverInfo(json: bytes)
    let stats = EnvoyAdmin.stats(json: bytes)
    guard let clusters = try? EnvoyAdmin.clusters(json: bytes) else { return }
    for c in clusters { _ = EnvoyAdmin.istioName(c.name); _ = EnvoyAdmin.displayName(c.name) }
    guard let chosen = EnvoyObserver.defaultCluster(clusters, preferred: nil) else { return }
    var observer = EnvoyObserver(source: "fuzz")
    var observed = Model()
    var driven = Model()
    for t in 1...2 {
        _ = EnvoyAdmin.statsPath(cluster: chosen.name)
        var report = observer.report(cluster: chosen, clusters: clusters, version: "1.40.0", stats: stats)
        report.intervalMs = 1000
        _ = observed.apply(TimedEvent(at: Millis(t * 1000), .observedChannel(report)))
        _ = driven.apply(TimedEvent(at: Millis(t * 1000), .proxyReport(report)))
    }
    _ = Snapshot(driven)
    _ = Dashboard.render(model: observed, state: ViewState(), width: 100, height: 30)
    _ = Dashboard.render(model: driven, state: ViewState(), width: 100, height: 30)
}

/// A Consul agent's `/v1/health/service/:service` answer (`consul://`) and its X-Consul-Index:
/// decoded both ways (passing=true or not), applied as the resolver applies it, rendered.
func fuzzConsul(_ bytes: [UInt8]) {
    var index = ConsulBlockingIndex()
    let header = String(decoding: bytes.prefix(24), as: UTF8.self)
    _ = index.update(header: header)
    _ = index.update(header: String(header.reversed()))
    precondition(index.delayBeforeNext(lastStartMs: 0, nowMs: 100) <= index.minSpacingMs)
    var model = Model()
    for (t, passing) in [(1, false), (2, true)] {
        guard let d = try? ConsulHealth.decode(Data(bytes), passingOnly: passing) else { return }
        precondition(d.endpoints.count + d.skipped.count <= d.instances)
        _ = model.apply(TimedEvent(at: Millis(t * 1000), .resolverUpdated(ResolverResult(endpoints: d.endpoints, info: ["watch": "up"]))))
    }
    _ = Snapshot(model)
    _ = Dashboard.render(model: model, state: ViewState(), width: 100, height: 30)
}
