// swift-tools-version: 6.1
import Foundation
import PackageDescription

// scripts/build-static sets GRPCTOP_STATIC=1: the system libraries then come from the static
// archives it puts first on the link path (pkg-config's -L would pick the shared ones).
let staticBuild = ProcessInfo.processInfo.environment["GRPCTOP_STATIC"] == "1"
// scripts/fuzz sets GRPCTOP_FUZZ=1: the libFuzzer targets (Fuzz/) are built, with libFuzzer
// and AddressSanitizer, in their own scratch path. They exist only then, so
// no other build links an executable without a main, and the binary users run has none of it.
let fuzzBuild = ProcessInfo.processInfo.environment["GRPCTOP_FUZZ"] == "1"

// Module layout (../shared/DESIGN.md): a pure core (no NIO, no curses) that builds and tests
// in seconds; NIO only in the transport, the resolvers and the test server; the CLI on top.
let package = Package(
    name: "grpctop",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "grpctop", targets: ["grpctop"]),
        .executable(name: "grpctop-bench", targets: ["grpctop-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // Targets, endpoints, events, Model.apply, LB policies, backoff, statistics. Pure.
        .target(
            name: "TopologyCore",
            dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        // The instrumented HTTP/2 subchannel, gRPC framing, traffic driver, engine loop.
        .target(
            name: "GRPCWire",
            dependencies: [
                "TopologyCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "ChannelzAPI",
            dependencies: [
                "TopologyCore", "GRPCWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "TopologySources",
            dependencies: [
                "TopologyCore", "ChannelzAPI",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        .target(
            name: "TopologyTransport",
            dependencies: [
                "TopologyCore", "GRPCWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            // Everything here is confined to one event loop; the runtime exclusivity checks on
            // class properties cost ~4 % of the hot path (perf, `grpctop bench`).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        // c-ares (Debian libc-ares-dev), the DNS library gRPC C-core uses.
        .systemLibrary(name: "CAres", pkgConfig: staticBuild ? nil : "libcares", providers: [.apt(["libc-ares-dev"])]),
        // One file per resolver: static, file, dns (c-ares), the demo's controlled one, kubernetes (EndpointSlice watch over async-http-client, kubeconfig via Yams).
        // etcd's v3 gRPC API: messages generated from Protos/etcd.proto (scripts/generate-protos)
        // and a minimal gRPC client over NIO HTTP/2.
        .target(
            name: "EtcdAPI",
            dependencies: [
                "TopologyCore", "GRPCWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // xDS (gRFC A27/A28): messages generated from Protos/xds.proto, the bootstrap, the
        // resources' validation and the ADS stream's state (pure), for `xds:///` targets.
        .target(name: "XDSAPI", dependencies: ["TopologyCore", "GRPCWire"]),
        .target(
            name: "TopologyResolvers",
            dependencies: [
                "EtcdAPI", "XDSAPI", "GRPCWire",
                "TopologyCore", "CAres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // zlib (Debian zlib1g-dev) for FILE.gz recordings.
        .systemLibrary(name: "CZlib", pkgConfig: staticBuild ? nil : "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Recordings: the writer (durable, gzip), the reader (never crashes), the replayer.
        .target(name: "TopologyRecording", dependencies: ["TopologyCore", "CZlib"]),
        // The dashboard as a pure function: model + view state + size → a grid of cells.
        .target(name: "TopologyView", dependencies: ["TopologyCore"]),
        // The only code that knows ncurses: system ncursesw (Debian libncurses-dev).
        .systemLibrary(name: "CNcursesw", pkgConfig: staticBuild ? nil : "ncursesw", providers: [.apt(["libncurses-dev"])]),
        .target(name: "Terminal", dependencies: ["CNcursesw", "TopologyView"]),
        // `grpctop serve`: the test gRPC server (Greeter + Health) on swift-nio-http2.
        .target(
            name: "TopologyServer",
            dependencies: [
                "TopologyCore", "GRPCWire",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // A stand-in kube-apiserver (EndpointSlice list/watch, auth, faults) for tests and `bench --kubernetes`.
        .target(
            name: "KubeStandIn",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .target(
            name: "TopologyDemo",
            dependencies: [
                "TopologyCore", "TopologyTransport", "TopologyResolvers", "TopologyServer", "TopologyRecording", "TopologySources",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Dashboard",
            dependencies: [
                "Terminal", "TopologyView", "TopologyCore", "TopologyTransport", "TopologyRecording", "TopologySources",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "grpctop",
            dependencies: [
                "TopologyCore", "GRPCWire", "TopologyTransport", "TopologyResolvers", "TopologyServer", "TopologyView", "Terminal", "TopologyRecording", "EtcdAPI", "TopologyDemo", "Dashboard", "TopologySources", "ChannelzAPI", "XDSAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "grpctop-bench",
            dependencies: ["TopologyCore", "TopologyResolvers", "KubeStandIn"],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .testTarget(name: "TopologyCoreTests", dependencies: ["TopologyCore"]),
        .testTarget(
            name: "TransportTests",
            dependencies: [
                "TopologyTransport", "TopologyCore", "GRPCWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(
            name: "TopologyDemoTests",
            dependencies: ["TopologyDemo", "TopologyCore", .product(name: "NIOPosix", package: "swift-nio")]
        ),
        .testTarget(name: "TopologySourcesTests", dependencies: ["TopologySources", "ChannelzAPI", "TopologyCore"]),
        .testTarget(name: "ChannelzAPITests", dependencies: ["ChannelzAPI", "GRPCWire", "TopologyCore"]),
        .testTarget(name: "XDSAPITests", dependencies: ["XDSAPI", "GRPCWire", "TopologyCore"]),
        .testTarget(name: "GRPCWireTests", dependencies: ["GRPCWire", "TopologyCore"]),
        .testTarget(name: "RecordingTests", dependencies: ["TopologyRecording", "TopologyCore", "TopologyView"]),
        .testTarget(name: "ResolverTests", dependencies: ["TopologyResolvers", "TopologyCore", "EtcdAPI", "GRPCWire"]),
        .testTarget(name: "TopologyViewTests", dependencies: ["TopologyView", "TopologyCore"], exclude: ["Golden"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["TopologyCore", "grpctop", "KubeStandIn", "TopologyResolvers", "EtcdAPI", "ChannelzAPI", "GRPCWire"],
            exclude: ["Fixtures"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

if fuzzBuild {
    package.products.append(.executable(name: "grpctop-fuzz", targets: ["grpctop-fuzz"]))
    package.targets += [
        // The pure parsers that live in NIO-bound modules (symbolic links to their sources), so
        // the fuzz build instruments only what it fuzzes.
        // The pure parsers, compiled again from their sources (symlinks): no NIO in the fuzz build.
        .target(name: "FuzzParsers", dependencies: ["TopologyCore", "CAres"], path: "Fuzz/Parsers",
                swiftSettings: [.define("FUZZ_PARSERS")]),
        .executableTarget(
            name: "grpctop-fuzz",
            dependencies: ["TopologyCore", "TopologyRecording", "TopologyView", "FuzzParsers"],
            path: "Fuzz/Targets",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
}
