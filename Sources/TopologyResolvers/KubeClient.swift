import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// What went wrong talking to the API server.
public enum KubeAPIError: Error, CustomStringConvertible, Sendable {
    /// The server answered with an error status (and, usually, a meta/v1 Status body).
    case status(code: Int, KubeStatus?, path: String)
    /// No answer: connection refused, TLS failure, reset, timeout.
    case transport(String)
    /// An answer that is not what the API returns.
    case malformed(String)

    public var description: String {
        switch self {
        case .status(let code, let s, _):
            if let m = s?.message, !m.isEmpty { return "HTTP \(code) \(s?.reason ?? ""): \(m)".replacingOccurrences(of: "  ", with: " ") }
            return "HTTP \(code)"
        case .transport(let m): return m
        case .malformed(let m): return m
        }
    }

    public var code: Int? { if case .status(let c, _, _) = self { return c } else { return nil } }
}

/// A small Kubernetes API client over async-http-client: GET JSON and stream a watch line by
/// line. TLS (server CA, client certificates, insecure only when the kubeconfig says so) is
/// swift-nio-ssl's; the bearer token is re-read from its file every minute and on demand.
final class KubeClient: @unchecked Sendable {
    let config: KubeAPIConfig
    private let clientConfiguration: HTTPClient.Configuration
    /// Made by `open()` (when the resolver starts), so a command that fails its option checks
    /// never holds a client that must be shut down.
    private var http: HTTPClient!
    private let lock = NSLock()
    private var cachedToken: String?
    private var tokenReadAt: Date?
    /// Re-read a token file this often (client-go's rest config does the same for bound tokens).
    static let tokenRefresh: TimeInterval = 60

    init(_ config: KubeAPIConfig) throws(KubeConfigError) {
        self.config = config
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = config.caPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
            if let cert = config.clientCertPEM, let key = config.clientKeyPEM {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw KubeConfigError("\(config.source): a certificate or key is not valid PEM (\(error))")
        }
        if config.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var c = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(5)))
        c.httpVersion = .http1Only
        clientConfiguration = c
    }

    func open() {
        lock.withLock { if http == nil { http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration) } }
    }

    func shutdown() async {
        let h = lock.withLock { http }
        try? await h?.shutdown()
    }

    /// The bearer token to send now; `force` re-reads its file (after a 401).
    func token(force: Bool = false) -> String? {
        switch config.token {
        case .none: return nil
        case .fixed(let t): return t
        case .file(let path):
            lock.lock()
            defer { lock.unlock() }
            if force || cachedToken == nil || (tokenReadAt.map { Date().timeIntervalSince($0) > Self.tokenRefresh } ?? true) {
                if let d = FileManager.default.contents(atPath: path) {
                    cachedToken = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                }
                tokenReadAt = Date()
            }
            return cachedToken
        }
    }

    private func request(_ path: String) -> HTTPClientRequest {
        var base = config.server
        while base.hasSuffix("/") { base.removeLast() }
        var r = HTTPClientRequest(url: base + path)
        r.headers.add(name: "Accept", value: "application/json")
        r.headers.add(name: "User-Agent", value: "grpctop")
        if let t = token() { r.headers.add(name: "Authorization", value: "Bearer \(t)") }
        return r
    }

    /// GET a JSON document; a non-2xx answer throws `.status` with the decoded Status.
    func get(_ path: String, timeout: TimeAmount = .seconds(30)) async throws(KubeAPIError) -> Data {
        do {
            let response = try await http.execute(request(path), timeout: timeout)
            let body = try await response.body.collect(upTo: 256 << 20)
            let data = Data(buffer: body)
            try Self.check(response.status, data, path: path)
            return data
        } catch let e as KubeAPIError {
            throw e
        } catch {
            throw .transport(Self.describe(error, server: config.server))
        }
    }

    /// Streams a watch: calls `onLine` for each complete JSON line until the server ends the
    /// response (normal: the watch's timeoutSeconds) or something fails.
    /// `onOpen` runs once the server has answered 200.
    func watch(_ path: String, deadline: NIODeadline, onOpen: () -> Void, onLine: (Data) throws -> Void) async throws {
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request(path), deadline: deadline)
        } catch {
            throw KubeAPIError.transport(Self.describe(error, server: config.server))
        }
        if response.status != .ok {
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Data(buffer: $0) } ?? Data()
            try Self.check(response.status, body, path: path)
        }
        onOpen()
        var splitter = WatchLineSplitter()
        do {
            for try await chunk in response.body {
                for line in try splitter.feed(chunk.readableBytesView) { try onLine(line) }
            }
        } catch let e as KubeWatchEvent.DecodeError {
            throw KubeAPIError.malformed(e.description)
        } catch let e as KubeAPIError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw KubeAPIError.transport("watch cut: " + Self.describe(error, server: config.server))
        }
        if let rest = splitter.finish() { try onLine(rest) }
    }

    static func check(_ status: HTTPResponseStatus, _ body: Data, path: String) throws(KubeAPIError) {
        guard !(200..<300).contains(Int(status.code)) else { return }
        let s = try? JSONDecoder().decode(KubeStatus.self, from: body)
        throw .status(code: Int(status.code), s?.kind == "Status" ? s : nil, path: path)
    }

    /// One line for a transport error, in the words a user knows (the Kubernetes and Consul
    /// clients share it; `refusedHint` is what to check when nothing listens).
    static func describe(_ error: Error, server: String, refusedHint: String = "") -> String {
        let text = "\(error)"
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "\(server): connect timed out"
            case .deadlineExceeded: return "\(server): no answer in time"
            case .remoteConnectionClosed: return "\(server) closed the connection"
            default: break
            }
        }
        if let e = error as? NIOSSLError { return "\(server): TLS failed: \(e)" }
        if text.contains("connection reset") || text.contains("Connection reset") { return "\(server): connection reset" }
        if text.contains("refused") { return "\(server): connection refused" + refusedHint }
        if text.contains("handshakeFailed") || text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate") {
            return "\(server): TLS failed: \(text.prefix(160))"
        }
        return "\(server): \(text.prefix(200))"
    }
}
