import Foundation
import Yams

/// Where the Kubernetes API is and how to authenticate, found the way kubectl and client-go
/// find it: `--kube-api URL` (e.g. `kubectl proxy`), else `--kubeconfig FILE`, else
/// `$KUBECONFIG` (a `:`-separated list, merged: the first file to set a value wins), else the
/// in-cluster service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and its token, CA and
/// namespace files), else `~/.kube/config`.
public struct KubeAPIConfig: Sendable {
    public enum Token: Sendable, Equatable {
        case none
        case fixed(String)
        /// Re-read every minute and after a 401 (bound service-account tokens rotate).
        case file(String)
    }

    public var server: String
    public var caPEM: [UInt8]?
    public var insecureSkipTLSVerify = false
    public var token: Token = .none
    public var clientCertPEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// The namespace a target without one uses.
    public var namespace: String?
    /// How this configuration was found, for the header and errors.
    public var source: String

    public init(server: String, source: String) {
        self.server = server
        self.source = source
    }

    /// The service-account directory inside a pod. `GRPCTOP_SERVICEACCOUNT_DIR` overrides it
    /// (tests use a temp dir).
    public static let serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

    public static func load(kubeAPI: String?, kubeconfig: String?, context: String?, env: [String: String] = ProcessInfo.processInfo.environment) throws(KubeConfigError) -> KubeAPIConfig {
        if let kubeAPI {
            guard let url = URL(string: kubeAPI), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                throw KubeConfigError("--kube-api '\(kubeAPI)' is not an http(s) URL: write --kube-api http://127.0.0.1:8001 (what `kubectl proxy` serves)")
            }
            return KubeAPIConfig(server: kubeAPI, source: "--kube-api \(kubeAPI)")
        }
        if let kubeconfig { return try fromKubeconfig(paths: [kubeconfig], context: context, env: env, origin: "--kubeconfig") }
        if let list = env["KUBECONFIG"], !list.isEmpty {
            let paths = list.split(separator: ":").map(String.init).filter { !$0.isEmpty }
            return try fromKubeconfig(paths: paths, context: context, env: env, origin: "KUBECONFIG")
        }
        if let host = env["KUBERNETES_SERVICE_HOST"], !host.isEmpty, context == nil {
            return try inCluster(env: env)
        }
        let home = env["HOME"] ?? NSHomeDirectory()
        let path = home + "/.kube/config"
        if FileManager.default.fileExists(atPath: path) {
            return try fromKubeconfig(paths: [path], context: context, env: env, origin: "~/.kube/config")
        }
        throw KubeConfigError("no Kubernetes API configured: not in a pod (KUBERNETES_SERVICE_HOST unset) and no kubeconfig (~/.kube/config, KUBECONFIG, --kubeconfig); or run `kubectl proxy` and use --kube-api http://127.0.0.1:8001")
    }

    /// The pod's service account, as client-go's rest.InClusterConfig reads it.
    public static func inCluster(env: [String: String]) throws(KubeConfigError) -> KubeAPIConfig {
        let host = env["KUBERNETES_SERVICE_HOST"] ?? ""
        guard let port = env["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeConfigError("in a pod but KUBERNETES_SERVICE_PORT is unset: the pod's Kubernetes service variables are incomplete")
        }
        let dir = env["GRPCTOP_SERVICEACCOUNT_DIR"] ?? serviceAccountDir
        let tokenPath = dir + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeConfigError("in a pod but no service-account token at \(tokenPath): set automountServiceAccountToken: true on the pod (deploy/debug-pod.yaml does)")
        }
        let hostText = host.contains(":") ? "[\(host)]" : host
        var c = KubeAPIConfig(server: "https://\(hostText):\(port)", source: "in-cluster service account")
        c.token = .file(tokenPath)
        c.caPEM = FileManager.default.contents(atPath: dir + "/ca.crt").map { Array($0) }
        if c.caPEM == nil { throw KubeConfigError("in a pod but no CA certificate at \(dir)/ca.crt: the service-account volume is incomplete") }
        if let ns = FileManager.default.contents(atPath: dir + "/namespace").map({ String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }), !ns.isEmpty {
            c.namespace = ns
        }
        return c
    }

    // MARK: - kubeconfig

    struct File: Decodable {
        struct Named<T: Decodable>: Decodable {
            var name: String
            var value: T?
            enum CodingKeys: String, CodingKey { case name, cluster, context, user }
            init(from d: Decoder) throws {
                let c = try d.container(keyedBy: CodingKeys.self)
                name = try c.decode(String.self, forKey: .name)
                value = try c.decodeIfPresent(T.self, forKey: .cluster) ?? c.decodeIfPresent(T.self, forKey: .context) ?? c.decodeIfPresent(T.self, forKey: .user)
            }
        }
        struct Cluster: Decodable {
            var server: String?
            var certificateAuthority: String?
            var certificateAuthorityData: String?
            var insecureSkipTLSVerify: Bool?
            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthority = "certificate-authority"
                case certificateAuthorityData = "certificate-authority-data"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            }
        }
        struct Context: Decodable {
            var cluster: String?
            var user: String?
            var namespace: String?
        }
        struct User: Decodable {
            var token: String?
            var tokenFile: String?
            var clientCertificate: String?
            var clientCertificateData: String?
            var clientKey: String?
            var clientKeyData: String?
            var exec: Exec?
            var authProvider: AuthProvider?
            var username: String?
            struct Exec: Decodable { var command: String? }
            struct AuthProvider: Decodable { var name: String? }
            enum CodingKeys: String, CodingKey {
                case token, tokenFile, username, exec
                case clientCertificate = "client-certificate"
                case clientCertificateData = "client-certificate-data"
                case clientKey = "client-key"
                case clientKeyData = "client-key-data"
                case authProvider = "auth-provider"
            }
        }
        var currentContext: String?
        var clusters: [Named<Cluster>]?
        var contexts: [Named<Context>]?
        var users: [Named<User>]?
        enum CodingKeys: String, CodingKey {
            case clusters, contexts, users
            case currentContext = "current-context"
        }
    }

    /// A kubeconfig (or several, merged with KUBECONFIG's rules: the first file that names a
    /// cluster, context or user or sets current-context wins; relative paths are relative to
    /// the file that holds them).
    public static func fromKubeconfig(paths: [String], context wanted: String?, env: [String: String], origin: String) throws(KubeConfigError) -> KubeAPIConfig {
        var current: String?
        var clusters: [String: (File.Cluster, dir: String)] = [:]
        var contexts: [String: File.Context] = [:]
        var users: [String: (File.User, dir: String)] = [:]
        var read: [String] = []
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else {
                // KUBECONFIG may list files that do not exist (kubectl skips them); an explicit one must exist.
                if origin == "--kubeconfig" { throw KubeConfigError("kubeconfig \(path) cannot be read: check the path given to --kubeconfig") }
                continue
            }
            read.append(path)
            let file: File
            do {
                file = try YAMLDecoder().decode(File.self, from: String(decoding: data, as: UTF8.self))
            } catch {
                throw KubeConfigError("kubeconfig \(path) is not a valid kubeconfig: \(Self.describe(error))")
            }
            let dir = (path as NSString).deletingLastPathComponent
            if current == nil, let c = file.currentContext, !c.isEmpty { current = c }
            for c in file.clusters ?? [] where clusters[c.name] == nil { if let v = c.value { clusters[c.name] = (v, dir) } }
            for c in file.contexts ?? [] where contexts[c.name] == nil { if let v = c.value { contexts[c.name] = v } }
            for u in file.users ?? [] where users[u.name] == nil { if let v = u.value { users[u.name] = (v, dir) } }
        }
        guard !read.isEmpty else { throw KubeConfigError("\(origin) names no readable kubeconfig (\(paths.joined(separator: ":")))") }
        let where_ = read.count == 1 ? read[0] : read.joined(separator: ":")
        guard let name = wanted ?? current else {
            throw KubeConfigError("kubeconfig \(where_) has no current-context: pass --context NAME (one of: \(contexts.keys.sorted().joined(separator: ", ")))")
        }
        guard let ctx = contexts[name] else {
            throw KubeConfigError("context '\(name)' is not in kubeconfig \(where_): it has \(contexts.keys.sorted().joined(separator: ", "))")
        }
        guard let clusterName = ctx.cluster, let (cluster, cdir) = clusters[clusterName] else {
            throw KubeConfigError("context '\(name)' names cluster '\(ctx.cluster ?? "")', which kubeconfig \(where_) does not define")
        }
        guard let server = cluster.server, !server.isEmpty else {
            throw KubeConfigError("cluster '\(clusterName)' in kubeconfig \(where_) has no server URL")
        }
        var c = KubeAPIConfig(server: server, source: "kubeconfig context \(name)")
        c.namespace = ctx.namespace.flatMap { $0.isEmpty ? nil : $0 }
        c.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
        c.caPEM = try material(data: cluster.certificateAuthorityData, file: cluster.certificateAuthority, dir: cdir, what: "certificate-authority of cluster '\(clusterName)'")
        if let userName = ctx.user, !userName.isEmpty {
            guard let (user, udir) = users[userName] else {
                throw KubeConfigError("context '\(name)' names user '\(userName)', which kubeconfig \(where_) does not define")
            }
            if user.exec != nil || user.authProvider != nil {
                let what = user.exec != nil ? "an exec credential plugin (\(user.exec?.command ?? "?"))" : "an auth-provider (\(user.authProvider?.name ?? "?"))"
                throw KubeConfigError("user '\(userName)' authenticates with \(what), which grpctop does not support: run `kubectl proxy` and use --kube-api http://127.0.0.1:8001")
            }
            if user.username != nil, user.token == nil, user.tokenFile == nil, user.clientCertificate == nil, user.clientCertificateData == nil {
                throw KubeConfigError("user '\(userName)' uses basic auth, which grpctop does not support: run `kubectl proxy` and use --kube-api http://127.0.0.1:8001")
            }
            if let t = user.token, !t.isEmpty {
                c.token = .fixed(t)
            } else if let f = user.tokenFile, !f.isEmpty {
                let path = resolve(f, dir: udir)
                guard FileManager.default.isReadableFile(atPath: path) else { throw KubeConfigError("tokenFile \(path) of user '\(userName)' cannot be read") }
                c.token = .file(path)
            }
            c.clientCertPEM = try material(data: user.clientCertificateData, file: user.clientCertificate, dir: udir, what: "client-certificate of user '\(userName)'")
            c.clientKeyPEM = try material(data: user.clientKeyData, file: user.clientKey, dir: udir, what: "client-key of user '\(userName)'")
            if (c.clientCertPEM == nil) != (c.clientKeyPEM == nil) {
                throw KubeConfigError("user '\(userName)' has a client certificate without a key (or a key without a certificate): kubeconfig needs both")
            }
        }
        return c
    }

    private static func resolve(_ path: String, dir: String) -> String {
        if path.hasPrefix("/") { return path }
        if path.hasPrefix("~/") { return NSHomeDirectory() + path.dropFirst(1) }
        return dir.isEmpty ? path : dir + "/" + path
    }

    /// PEM from `*-data` (base64) or from a file.
    private static func material(data: String?, file: String?, dir: String, what: String) throws(KubeConfigError) -> [UInt8]? {
        if let data, !data.isEmpty {
            guard let d = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                throw KubeConfigError("\(what)-data is not base64")
            }
            return Array(d)
        }
        if let file, !file.isEmpty {
            let path = resolve(file, dir: dir)
            guard let d = FileManager.default.contents(atPath: path) else { throw KubeConfigError("\(what): \(path) cannot be read") }
            return Array(d)
        }
        return nil
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.keyNotFound(_, let c), DecodingError.dataCorrupted(let c):
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
        default:
            return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }
}

public struct KubeConfigError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}
