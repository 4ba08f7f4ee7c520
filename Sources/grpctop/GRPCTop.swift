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
        subcommands: [Watch.self, Attach.self, EnvoyCommand.self, Replay.self, Serve.self, Demo.self, Bench.self, KubeRBACCommand.self],
        defaultSubcommand: nil
    )

    /// `--health-check=SERVICE` is `--health-check --health-check-service SERVICE` (a flag with an
    /// optional value, which ArgumentParser has no form for).
    static func rewrittenArguments(_ args: [String]) -> [String] {
        var out: [String] = []
        var rest = false
        for a in args {
            if rest || a == "--" { rest = true; out.append(a); continue }
            if a.hasPrefix("--health-check=") {
                out += ["--health-check", "--health-check-service", String(a.dropFirst("--health-check=".count))]
            } else {
                out.append(a)
            }
        }
        return out
    }

    static func main() {
        // A parent may have left these blocked (a blocked mask is inherited across exec), and a
        // blocked signal never reaches its handler: drain on SIGTERM, restore the terminal…
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2] { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        do {
            var command = try parseAsRoot(Self.rewrittenArguments(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let failure as OutputFailure {
            // The reader went away (`| head -1`): end quietly, as a filter killed by SIGPIPE does.
            if failure.errno == EPIPE { Foundation.exit(128 + SIGPIPE) }
            FileHandle.standardError.write(Data("grpctop: \(failure.message)\n".utf8))
            Foundation.exit(1)
        } catch let failure as BenchFailure {
            FileHandle.standardError.write(Data("grpctop: \(failure.description)\n".utf8))
            Foundation.exit(1)
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

/// Writing the output failed: the reader closed the pipe (EPIPE) or the disk is full. Ends the
/// run: EPIPE quietly (status 141, as SIGPIPE would), anything else with one line and status 1.
struct OutputFailure: Error {
    var errno: Int32
    var what: String
    var message: String { "cannot write \(what): \(String(cString: strerror(errno)))" }
}

/// Text to stdout, written at once (after anything `print` buffered); a failed write throws
/// (SIGPIPE is ignored in this process, as NIO sets it, so a closed pipe shows up only as EPIPE).
func writeOut(_ text: String) throws {
    fflush(nil)
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(STDOUT_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 {
            if errno == EINTR { continue }
            throw OutputFailure(errno: errno, what: "to stdout")
        }
        offset += n
    }
}

/// One object as a line of JSON with sorted keys (`--output json`: JSON Lines).
func jsonLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

/// `--output json`: the object as one JSON line; otherwise the table text as it is.
func printReport<T: Encodable>(_ value: T, json: Bool, table: @autoclosure () -> String) throws {
    try writeOut(json ? try jsonLine(value) + "\n" : table())
}

func parseDuration(_ text: String, flag: String) throws -> Int64 {
    switch DurationText.parse(text) {
    case .success(let ms): return ms
    case .failure(.tooLong): throw UsageFailure("\(flag) '\(text)' is too long (at most 366 days, e.g. 24h)")
    case .failure(.notADuration): throw UsageFailure("\(flag) '\(text)' is not a duration (write 500ms, 2s, 1m)")
    }
}
