import Foundation

/// `grpctop-bench`: the benchmarks that need a test double, kept out of the `grpctop` users run.
/// `--kubernetes`: the kubernetes resolver against the stand-in API server (5,000 endpoints in
/// 50 EndpointSlices). `--runs N`, `--output table|json`.
@main
struct GRPCTopBench {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        func value(_ flag: String) -> String? {
            guard let i = args.firstIndex(of: flag), i + 1 < args.count else { return nil }
            defer { args.removeSubrange(i...(i + 1)) }
            return args[i + 1]
        }
        func usage(_ why: String) -> Never {
            FileHandle.standardError.write(Data("grpctop-bench: \(why)\nusage: grpctop-bench --kubernetes [--runs 1-100] [--output table|json]\n".utf8))
            exit(2)
        }
        let runsText = value("--runs") ?? "3"
        let output = value("--output") ?? "table"
        guard let runs = Int(runsText), (1...100).contains(runs) else { usage("--runs '\(runsText)' is out of range (1 to 100)") }
        guard output == "table" || output == "json" else { usage("--output '\(output)' is not known: use table or json") }
        guard args == ["--kubernetes"] else { usage(args.isEmpty ? "say which benchmark: --kubernetes" : "unknown arguments: \(args.joined(separator: " "))") }
        do {
            let r = try KubeBenchmark.run(runs: runs * 3)
            if output == "json" {
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys]
                print(String(decoding: try e.encode(r), as: UTF8.self))
            } else {
                print(KubeBenchmark.table(r), terminator: "")
            }
        } catch {
            FileHandle.standardError.write(Data("grpctop-bench: \(error)\n".utf8))
            exit(1)
        }
    }
}
