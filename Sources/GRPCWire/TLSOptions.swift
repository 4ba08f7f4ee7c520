import NIOSSL

/// Client TLS from PEM files (CA, certificate, key), ALPN h2: the transport's, etcd's, channelz's
/// and the xDS client's.
public struct TLSOptions: Sendable {
    public var caCertPath: String?
    public var certPath: String?
    public var keyPath: String?
    public var insecure = false
    public init(caCertPath: String? = nil, certPath: String? = nil, keyPath: String? = nil, insecure: Bool = false) {
        self.caCertPath = caCertPath
        self.certPath = certPath
        self.keyPath = keyPath
        self.insecure = insecure
    }

    /// A client TLS context offering ALPN h2.
    public func makeContext() throws -> NIOSSLContext {
        var c = TLSConfiguration.makeClientConfiguration()
        c.applicationProtocols = ["h2"]
        if let ca = caCertPath {
            c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
        }
        if let cert = certPath {
            c.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
        }
        if let key = keyPath {
            c.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        if insecure { c.certificateVerification = .none }
        return try NIOSSLContext(configuration: c)
    }
}
