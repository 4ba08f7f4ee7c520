import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import TopologyCore

/// Where the Consul agent is and how to talk to it — the environment the `consul` CLI and the
/// official clients read: `CONSUL_HTTP_ADDR` (`host:port`, `http://…`, `https://…`),
/// `CONSUL_HTTP_SSL`, `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`/`CONSUL_CLIENT_KEY`,
/// `CONSUL_HTTP_SSL_VERIFY`, and the token from `--consul-token-file`, `CONSUL_HTTP_TOKEN_FILE`
/// or `CONSUL_HTTP_TOKEN`. The token is sent as `X-Consul-Token`, never shown or recorded:
/// what is shown is where it came from.
public struct ConsulConfig: Sendable {
    public var https = false
    public var agent: HostPort
    public var token: String?
    /// Where the token came from, for messages (`$CONSUL_HTTP_TOKEN`, `--consul-token-file F`, `no token`).
    public var tokenSource = "no token"
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var verify = true

    public var base: String { "\(https ? "https" : "http")://\(agent)" }

    public init(agent: HostPort, https: Bool = false) {
        self.agent = agent
        self.https = https
    }

    public struct Problem: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// The configuration for an agent named by a target (or `--register`), else the environment's.
    public static func resolve(agent: HostPort?, environment env: [String: String], tokenFile: String?) throws(Problem) -> ConsulConfig {
        var https = ["true", "1"].contains(env["CONSUL_HTTP_SSL"]?.lowercased() ?? "")
        var address = agent
        if let text = env["CONSUL_HTTP_ADDR"], !text.isEmpty {
            var rest = Substring(text)
            if rest.lowercased().hasPrefix("https://") {
                https = true
                rest = rest.dropFirst(8)
            } else if rest.lowercased().hasPrefix("http://") {
                rest = rest.dropFirst(7)
            } else if rest.lowercased().hasPrefix("unix:") {
                throw Problem("CONSUL_HTTP_ADDR '\(text)': a Unix socket agent is not supported; give host:port")
            }
            while rest.hasSuffix("/") { rest = rest.dropLast() }
            if address == nil {
                do { address = try Target.splitHostPort(String(rest), whole: text, bareIPv6: false, defaultPort: 8500) } catch {
                    throw Problem("CONSUL_HTTP_ADDR '\(text)': \(error)")
                }
            }
        }
        var c = ConsulConfig(agent: address ?? HostPort(host: "127.0.0.1", port: 8500), https: https)
        c.caFile = env["CONSUL_CACERT"].flatMap { $0.isEmpty ? nil : $0 }
        c.certFile = env["CONSUL_CLIENT_CERT"].flatMap { $0.isEmpty ? nil : $0 }
        c.keyFile = env["CONSUL_CLIENT_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        if ["false", "0"].contains(env["CONSUL_HTTP_SSL_VERIFY"]?.lowercased() ?? "") { c.verify = false }
        guard (c.certFile == nil) == (c.keyFile == nil) else { throw Problem("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together") }
        for (name, path) in [("CONSUL_CACERT", c.caFile), ("CONSUL_CLIENT_CERT", c.certFile), ("CONSUL_CLIENT_KEY", c.keyFile)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) { throw Problem("\(name) \(path): no such file (or not readable)") }
        }
        if let file = tokenFile ?? env["CONSUL_HTTP_TOKEN_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let d = FileManager.default.contents(atPath: file), d.count <= 4096 else {
                throw Problem("\(tokenFile != nil ? "--consul-token-file" : "CONSUL_HTTP_TOKEN_FILE") \(file): no such file, not readable or larger than 4 KiB")
            }
            c.token = String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            c.tokenSource = tokenFile != nil ? "--consul-token-file \(file)" : "$CONSUL_HTTP_TOKEN_FILE \(file)"
        } else if let t = env["CONSUL_HTTP_TOKEN"], !t.isEmpty {
            c.token = t.trimmingCharacters(in: .whitespacesAndNewlines)
            c.tokenSource = "$CONSUL_HTTP_TOKEN"
        }
        if let t = c.token {
            guard !t.isEmpty, t.utf8.count <= 1024, t.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
                throw Problem("the Consul token from \(c.tokenSource) is empty or not printable ASCII")
            }
        }
        return c
    }
}

/// What went wrong talking to the agent.
public enum ConsulError: Error, CustomStringConvertible, Sendable {
    /// An error status, with Consul's message (its bodies are plain text).
    case status(code: Int, message: String)
    /// No answer: refused, reset, TLS, timeout.
    case transport(String)

    public var description: String {
        switch self {
        case .status(let code, let m): return m.isEmpty ? "HTTP \(code)" : "HTTP \(code): \(m)"
        case .transport(let m): return m
        }
    }

    public var code: Int? { if case .status(let c, _) = self { c } else { nil } }
}

/// A small Consul HTTP API client over async-http-client (HTTP/1.1, TLS by swift-nio-ssl).
public final class ConsulClient: @unchecked Sendable {
    let config: ConsulConfig
    private let clientConfiguration: HTTPClient.Configuration
    private let lock = NSLock()
    /// Made by `open()`, so a command that fails its checks never holds a client to shut down.
    private var http: HTTPClient?

    public struct Answer: Sendable {
        public var status: Int
        public var body: Data
        public var headers: HTTPHeaders
    }

    public init(_ config: ConsulConfig) throws(ConsulConfig.Problem) {
        self.config = config
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = config.caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
            if let cert = config.certFile, let key = config.keyFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            }
        } catch {
            throw ConsulConfig.Problem("a Consul TLS file (CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY) is not valid PEM: \(error)")
        }
        if !config.verify { tls.certificateVerification = .none }
        var c = HTTPClient.Configuration(tlsConfiguration: tls, timeout: .init(connect: .seconds(5)))
        c.httpVersion = .http1Only
        clientConfiguration = c
    }

    public func open() {
        lock.withLock { if http == nil { http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration) } }
    }

    public func shutdown() async {
        let h = lock.withLock { http }
        try? await h?.shutdown()
    }

    /// One request; any status is returned (callers decide what an error means), bodies up to 64 MiB.
    public func send(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil, timeout: TimeAmount) async throws(ConsulError) -> Answer {
        guard let http = lock.withLock({ http }) else { throw .transport("the Consul client is not open") }
        var url = config.base + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        }
        var r = HTTPClientRequest(url: url)
        r.method = method
        r.headers.add(name: "User-Agent", value: "grpctop")
        if let t = config.token { r.headers.add(name: "X-Consul-Token", value: t) }
        if let body {
            r.headers.add(name: "Content-Type", value: "application/json")
            r.body = .bytes(ByteBuffer(data: body))
        }
        do {
            let response = try await http.execute(r, timeout: timeout)
            let collected = try await response.body.collect(upTo: 64 << 20)
            return Answer(status: Int(response.status.code), body: Data(buffer: collected), headers: response.headers)
        } catch {
            if Task.isCancelled { throw .transport("cancelled") }
            throw .transport(KubeClient.describe(error, server: config.base, refusedHint: " (is the Consul agent running? $CONSUL_HTTP_ADDR)"))
        }
    }

    /// `send`, and a non-2xx answer throws `.status` with Consul's message (one line, ≤ 300 characters).
    public func expectOK(_ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: Data? = nil, timeout: TimeAmount) async throws(ConsulError) -> Answer {
        let a = try await send(method, path, query: query, body: body, timeout: timeout)
        guard (200..<300).contains(a.status) else { throw .status(code: a.status, message: Self.message(a.body)) }
        return a
    }

    static func message(_ body: Data) -> String {
        String(ConsulHealth.clean(String(decoding: body.prefix(600), as: UTF8.self)).prefix(300))
    }

    public static func encode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}
