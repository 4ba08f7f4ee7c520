import ArgumentParser
import EtcdAPI
import Foundation
import TopologyCore

/// The etcd flags `watch etcd://…` and `serve --register etcd://…` share: where etcd is, the
/// login, and the TLS files.
struct EtcdOptions: ParsableArguments {
    @Option(help: "etcd endpoints for etcd:///PREFIX, comma-separated (default http://127.0.0.1:2379).") var etcd: String?
    @Option(name: .customLong("etcd-user"), help: "etcd user (etcd auth).") var etcdUser: String?
    @Option(name: .customLong("etcd-password"), help: "etcd password (never shown or recorded; also --etcd-password-file or $GRPCTOP_ETCD_PASSWORD).")
    var etcdPassword: String?
    @Option(name: .customLong("etcd-password-file"), help: "Read the etcd password from this file.") var etcdPasswordFile: String?
    @Option(name: .customLong("etcd-cacert"), help: "PEM CA certificate for https:// etcd endpoints.") var etcdCACert: String?
    @Option(name: .customLong("etcd-cert"), help: "PEM client certificate for etcd.") var etcdCert: String?
    @Option(name: .customLong("etcd-key"), help: "PEM client key for etcd.") var etcdKey: String?

    /// Whether any of the flags was given.
    var given: Bool {
        [etcd, etcdUser, etcdPassword, etcdPasswordFile, etcdCACert, etcdCert, etcdKey].contains { $0 != nil }
    }

    /// The client configuration for an `etcd://[host:port]/PREFIX` URL: its host:port, or
    /// `--etcd`. `what` names the URL in errors (`target 'etcd://…'`, `--register 'etcd://…'`).
    func config(endpoint: HostPort?, what: String) throws -> EtcdConfig {
        var config: EtcdConfig
        do {
            if let ep = endpoint {
                if etcd != nil { throw UsageFailure("\(what) names etcd at \(ep); drop --etcd, or write etcd:///PREFIX") }
                config = EtcdConfig(endpoints: [EtcdConfig.Endpoint(tls: etcdCACert != nil, host: ep.host, port: ep.port)])
            } else {
                config = EtcdConfig(endpoints: try EtcdConfig.parseEndpoints(etcd ?? "http://127.0.0.1:2379"))
            }
        } catch let e as TargetError { throw UsageFailure(e.description) }
        for (flag, path) in [("--etcd-cacert", etcdCACert), ("--etcd-cert", etcdCert), ("--etcd-key", etcdKey), ("--etcd-password-file", etcdPasswordFile)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) { throw UsageFailure("\(flag) \(path): no such file (or not readable)") }
        }
        guard (etcdCert == nil) == (etcdKey == nil) else { throw UsageFailure("--etcd-cert and --etcd-key go together") }
        config.caFile = etcdCACert
        config.certFile = etcdCert
        config.keyFile = etcdKey
        var password = etcdPassword ?? ProcessInfo.processInfo.environment["GRPCTOP_ETCD_PASSWORD"]
        if let file = etcdPasswordFile {
            password = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .newlines)
        }
        if password != nil && etcdUser == nil { throw UsageFailure("an etcd password needs --etcd-user") }
        config.user = etcdUser
        config.password = password
        return config
    }
}
