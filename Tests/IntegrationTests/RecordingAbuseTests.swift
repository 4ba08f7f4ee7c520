import Foundation
import Testing

/// Recordings people send each other: files that inflate to gigabytes, whose bytes moved, whose
/// counters lie, paths that are links — and the secrets a recording must never hold (issue 15).
@Suite(.serialized) struct RecordingAbuseTests {
    /// Runs grpctop with `args`, sampling its resident memory; (status, stderr, max RSS kB).
    func grpctop(_ args: [String]) throws -> (Int32, [String], Int, WatchRun) {
        let run = try WatchRun(Array(args.dropFirst()), subcommand: args[0])
        var maxRSS = 0
        let end = Date().addingTimeInterval(60)
        while run.process.isRunning && Date() < end {
            maxRSS = max(maxRSS, residentKB(run.process.processIdentifier))
            usleep(20_000)
        }
        let status = run.wait()
        return (status, run.err.all, maxRSS, run)
    }

    func shell(_ command: String) throws {
        #expect(try runTool("/bin/sh", ["-c", command]) == 0, "\(command)")
    }

    /// A short real recording of one backend.
    func record(_ path: String, extra: [String] = []) throws {
        let b = try Backend(name: "pod-a")
        defer { b.stop() }
        let run = try WatchRun(["ipv4:" + b.address, "--rps", "50", "--duration", "2s", "--batch", "--record", path] + extra)
        #expect(run.wait() == 0, "\(run.err.all)")
    }

    /// 9 MB of gzip that inflate to 2 GB (zeros, newlines), raw or behind a real header: each is
    /// refused or stops with a line that says why, in well under a second's worth of memory.
    @Test func gzipBombsAreBounded() throws {
        let dir = tempDir()
        let real = dir + "/real.jsonl"
        try record(real)
        // 1 GB each once inflated, made as 100 gzip members of 10 MB (a multi-member gzip file is
        // one stream to every reader, grpctop's included — its own .gz files are written so):
        // the same bombs as gzipping a gigabyte, without spending seconds of CPU on it.
        try shell("head -c 10000000 /dev/zero | gzip -1 > \(dir)/z.member && yes '' | head -c 10000000 | gzip -1 > \(dir)/n.member")
        try shell("head -2 \(real) | gzip -1 > \(dir)/h.member")
        let hundred = { (m: String) in Array(repeating: "\(dir)/\(m).member", count: 100).joined(separator: " ") }
        try shell("cat \(hundred("z")) > \(dir)/zeros.gz && cat \(hundred("n")) > \(dir)/newlines.gz")
        try shell("cat \(dir)/h.member \(hundred("n")) > \(dir)/header-newlines.gz && cat \(dir)/h.member \(hundred("z")) > \(dir)/header-zeros.gz")
        let cases: [(String, Int32, String)] = [
            ("zeros.gz", 2, "is not a grpctop recording (its first line is longer than a header can be)"),
            ("newlines.gz", 2, "is not a grpctop recording (its first line is not a grpctop-recording header)"),
            ("header-newlines.gz", 1, "1000 lines in a row without an event: not a recording"),
            ("header-zeros.gz", 1, "a line longer than 64 MiB: not a recording line"),
        ]
        for (file, status, words) in cases {
            for args in [["replay", "--info", dir + "/" + file], ["replay", "--batch", dir + "/" + file]] {
                let (s, err, rss, run) = try grpctop(args)
                #expect(s == status, "\(args): exit \(s) \(err)")
                // --info says where replay stops in its table; the others on stderr.
                #expect((err + run.out.all).contains { $0.contains(words) }, "\(args): \(err)")
                #expect(rss < 400_000, "\(args): \(rss) kB resident")
            }
        }
    }

    /// A .gz recording gunzipped keeps its index line, whose offsets are the compressed ones:
    /// the index is checked against the file and rebuilt, and the whole session replays.
    @Test func aGunzippedRecordingReplaysWhole() throws {
        let dir = tempDir()
        let gz = dir + "/s.jsonl.gz"
        let b = try Backend(name: "pod-a")
        let live = try WatchRun(["ipv4:" + b.address, "--rps", "50", "--duration", "13s", "--interval", "1s", "--batch",
                                 "--output", "json", "--record", gz, "--keyframe-every", "2s"])
        #expect(live.wait(timeout: 60) == 0, "\(live.err.all)")
        b.stop()
        try shell("gunzip -c \(gz) > \(dir)/s.jsonl")
        let original = try WatchRun([gz, "--batch", "--output", "json"], subcommand: "replay")
        let plain = try WatchRun([dir + "/s.jsonl", "--batch", "--output", "json"], subcommand: "replay")
        #expect(original.wait() == 0 && plain.wait() == 0, "\(plain.err.all)")
        #expect(plain.out.all == original.out.all && original.out.all.count >= 5)
        let info = try WatchRun([dir + "/s.jsonl", "--info", "--output", "json"], subcommand: "replay")
        let infoGz = try WatchRun([gz, "--info", "--output", "json"], subcommand: "replay")
        #expect(info.wait() == 0 && infoGz.wait() == 0)
        let i = try #require(info.objects.first), j = try #require(infoGz.objects.first)
        #expect(i["indexed"] as? Bool == false && j["indexed"] as? Bool == true, "a moved index is not trusted: \(i)")
        #expect(i.int("durationMs") == j.int("durationMs") && i.int("durationMs") >= 12_000, "\(i) \(j)")
        // Keyframes every 2 s; one is a restart point once 10 s of ticks follow it: 2 s and 3 s here.
        #expect(i.int("keyframes") == j.int("keyframes") && j.int("keyframes") >= 1, "\(i)")
    }

    /// Counters of -1 or Int.max are valid JSON but not a recording's: the replay stops there,
    /// says which counter, and never traps adding them.
    @Test func outOfRangeCountersAreNamed() throws {
        let dir = tempDir()
        let path = dir + "/r.jsonl"
        try record(path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let i = try #require(lines.firstIndex { $0.hasPrefix(#"{"e":{"stats":"#) && $0.contains(#"",["#) })
        for (value, shown) in [("-1", "started is -1"), ("9223372036854775807", "started is 9223372036854775807")] {
            var edited = lines
            // The first backend's delta: [started, …
            let line = edited[i]
            let r = try #require(line.range(of: #"",["#))
            let rest = line[r.upperBound...]
            let comma = try #require(rest.firstIndex(of: ","))
            edited[i] = String(line[..<r.upperBound]) + value + String(rest[comma...])
            let bad = dir + "/bad.jsonl"
            try edited.filter { !$0.hasPrefix(#"{"index""#) }.joined(separator: "\n").write(toFile: bad, atomically: true, encoding: .utf8)
            let (s, err, _, _) = try grpctop(["replay", "--batch", bad])
            #expect(s == 1, "exit \(s)")
            #expect(err.contains { $0.contains(":\(i + 1): not a recording line (a stats counter is out of range: \(shown)") }, "\(err)")
        }
    }

    /// Every -H value is redacted unless harmless or kept, in every spelling, in the file and in
    /// `replay --info`; the file is private (0600) and never written through a link.
    @Test(arguments: ["r.jsonl", "r.jsonl.gz"]) func secretsAndPermissions(name: String) throws {
        let dir = tempDir()
        let path = dir + "/" + name
        try record(path, extra: ["-H=authorization: Bearer S3CRET-A", "-H", "x-auth: S3CRET-B", "--header=x-tenant: S3CRET-C",
                                 "-H", "x-request-id: visible-1", "-H", "x-zone: visible-2", "--keep-header", "x-zone"])
        // Decompressed first: grepping gzip bytes could never find the secret.
        try shell("gzip -dcf \(path) > \(dir)/plain.txt")
        let text = try String(contentsOfFile: dir + "/plain.txt", encoding: .utf8)
        #expect(text.contains("grpctop-recording"))
        for secret in ["S3CRET-A", "S3CRET-B", "S3CRET-C"] { #expect(!text.contains(secret), "\(secret) in \(name)") }
        #expect(text.contains("visible-1") && text.contains("visible-2"))
        let info = try WatchRun([path, "--info"], subcommand: "replay")
        #expect(info.wait() == 0)
        #expect(!info.out.all.joined().contains("S3CRET") && info.out.all.joined().contains("authorization: [redacted]"), "\(info.out.all)")
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
        // A link at the path: refused with one line, and its target untouched.
        let target = dir + "/target.txt", link = dir + "/link.jsonl"
        try "keep me\n".write(toFile: target, atomically: true, encoding: .utf8)
        #expect(symlink(target, link) == 0)
        let run = try WatchRun(["127.0.0.1:1", "--batch", "--duration", "1s", "--record", link])
        #expect(run.wait() == 2)
        #expect(run.err.all.first?.contains("is a symbolic link") == true, "\(run.err.all)")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep me\n")
    }
}
