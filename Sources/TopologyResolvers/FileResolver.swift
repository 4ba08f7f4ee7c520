import Foundation
import TopologyCore

/// `file:PATH`: reads the endpoint file (see `EndpointFile`) and watches it, publishing the
/// whole set again whenever its content changes — so a test or the demo can scale, delete and
/// drain endpoints live by rewriting the file (write a temp file and rename it over the old one
/// for an atomic change).
///
/// Errors follow the resolver contract: a missing or unreadable file is a `resolverFailed`
/// (the last good set stays); bad lines are skipped and reported in the event log.
public final class FileResolver: EndpointResolver, @unchecked Sendable {
    public let name = "file"
    public let path: String
    private let pollInterval: DispatchTimeInterval
    private let queue = DispatchQueue(label: "grpctop.file-resolver")
    private var timer: DispatchSourceTimer?
    private var sink: (@Sendable (Event) -> Void)?
    private var lastContent: Data?
    private var lastError: String?

    public init(path: String, pollInterval: DispatchTimeInterval = .milliseconds(100)) {
        self.path = path
        self.pollInterval = pollInterval
    }

    public func start(_ sink: @escaping @Sendable (Event) -> Void) {
        queue.sync {
            self.sink = sink
            self.check()
            let t = DispatchSource.makeTimerSource(queue: queue)
            t.schedule(deadline: .now() + pollInterval, repeating: pollInterval)
            t.setEventHandler { [weak self] in self?.check() }
            t.resume()
            self.timer = t
        }
    }

    public func requestResolution(_ request: ResolutionRequest) {
        queue.async { self.check() }
    }

    public func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
            sink = nil
        }
    }

    private func check() {
        guard let sink else { return }
        guard let data = FileManager.default.contents(atPath: path) else {
            let message = FileManager.default.fileExists(atPath: path) ? "cannot read \(path)" : "\(path): no such file"
            if lastError != message {
                lastError = message
                lastContent = nil
                sink(.resolverFailed(ResolverFailure(message: message)))
            }
            return
        }
        guard data != lastContent else { return }
        lastContent = data
        lastError = nil
        let text = String(decoding: data, as: UTF8.self)
        let (endpoints, errors) = EndpointFile.parse(text, lookup: Self.lookup)
        for e in errors {
            sink(.notice(Notice(.warning, "\(path):\(e.line): \(e.message) (line skipped)")))
        }
        sink(.resolverUpdated(ResolverResult(endpoints: endpoints, info: ["file": path])))
    }

    /// Host names in the file resolve through the system resolver (getaddrinfo).
    static func lookup(_ host: String) -> [String]? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var out: [String] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let ai = p {
            var buf = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(ai.pointee.ai_addr, ai.pointee.ai_addrlen, &buf, socklen_t(buf.count), nil, 0, NI_NUMERICHOST) == 0 {
                let s = String(cString: buf)
                if !out.contains(s) { out.append(s) }
            }
            p = ai.pointee.ai_next
        }
        return out
    }
}
