import ArgumentParser
import Foundation
import TopologyCore

/// `grpctop`: the root command. Errors in what the user typed print one line naming the problem
/// (and how to fix it) and exit with status 2; `--help` works as usual.
@main
struct GRPCTop: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "grpctop",
        abstract: "A terminal dashboard of a gRPC client's connection topology: endpoints, subchannels, streams and per-pod rates.",
        version: version,
        subcommands: [Watch.self, Replay.self, Serve.self, Demo.self, Bench.self, KubeRBACCommand.self],
        defaultSubcommand: nil
    )

    static func main() {
        // A parent may have left these blocked (a blocked mask is inherited across exec), and a
        // blocked signal never reaches its handler: drain on SIGTERM, restore the terminal…
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let failure as UsageFailure {
            FileHandle.standardError.write(Data("grpctop: \(failure.message)\n".utf8))
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            var msg = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            if msg.hasPrefix("Error: ") { msg.removeFirst(7) }
            FileHandle.standardError.write(Data("grpctop: \(msg) (see 'grpctop help')\n".utf8))
            Foundation.exit(2)
        }
    }
}

/// A mistake in what the user typed: printed as one line, exit status 2.
struct UsageFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// A runtime failure (cannot bind, cannot read a certificate…): one line, exit status 1.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("grpctop: \(message)\n".utf8))
    exit(1)
}

/// One object as a line of JSON with sorted keys (`--output json`: JSON Lines).
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// `--output json`: the object as one JSON line; otherwise the table text as it is.
func printReport<T: Encodable>(_ value: T, json: Bool, table: @autoclosure () -> String) throws {
    if json { print(try jsonLine(value)) } else { print(table(), terminator: "") }
}

func parseDuration(_ text: String, flag: String) throws -> Int64 {
    guard let ms = DurationText.parseMillis(text) else {
        throw UsageFailure("\(flag) '\(text)' is not a duration (write 500ms, 2s, 1m)")
    }
    return ms
}
