// swift-tools-version:6.0
import PackageDescription

// The request path's modules skip Swift's dynamic exclusivity checks (about a tenth of the instructions per
// proxied request under callgrind; static checks still apply). See bench/results/profile-*.md.
let hotPathSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "mtls-gateway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gateway", targets: ["Gateway"]),
        .executable(name: "gateway-fuzz", targets: ["GatewayFuzz"]),
        // The bundled plugins, built as shared libraries beside the gateway executable.
        .library(name: "ClientCertHeaders", type: .dynamic, targets: ["ClientCertHeaders"]),
        .library(name: "Audit", type: .dynamic, targets: ["Audit"]),
        // A plugin written in Swift against the raw ABI, loaded by the integration tests.
        .library(name: "TestSwiftPlugin", type: .dynamic, targets: ["TestSwiftPlugin"]),
    ],
    dependencies: [
        // The plugin SDK (the ABI header and GatewayPluginKit): its own package, so that plugin packages need
        // none of the dependencies below.
        .package(name: "gateway-plugin-sdk", path: "sdk"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Revocation: CRLs fetched from the certificates' distribution points and OCSP queries (HTTP only).
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        // The core: configuration, listeners and TLS, verification, routing, proxy, backends, plugin host,
        // runtime and reload, metrics, admin. Knows no plugin and no command line.
        .target(
            name: "GatewayCore",
            dependencies: [
                .product(name: "PluginAPI", package: "gateway-plugin-sdk"),
                // Only for JSONText, the one JSON string escaper shared with the plugins.
                .product(name: "GatewayPluginKit", package: "gateway-plugin-sdk"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Sources/GatewayCore",
            swiftSettings: hotPathSettings
        ),
        // What only the command line needs: the demo's PKI and echo backend, `plugin test` and `plugin bench`.
        .target(
            name: "GatewayTooling",
            dependencies: [
                "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Sources/GatewayTooling",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // `gateway`: argument parsing only.
        .executableTarget(
            name: "Gateway",
            dependencies: [
                "GatewayCore",
                "GatewayTooling",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Gateway",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // `gateway-fuzz`: the parsers of hostile input as fuzz targets. A normal build replays the corpus
        // (scripts/test); scripts/fuzz builds it with -sanitize=fuzzer -D FUZZING for libFuzzer.
        .executableTarget(
            name: "GatewayFuzz",
            dependencies: [
                "GatewayCore",
                "GatewayTooling",
                .product(name: "GatewayPluginKit", package: "gateway-plugin-sdk"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            path: "Sources/GatewayFuzz",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .target(
            name: "ClientCertHeaders",
            dependencies: [.product(name: "GatewayPluginKit", package: "gateway-plugin-sdk")],
            path: "Plugins/ClientCertHeaders",
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "Audit",
            dependencies: [.product(name: "GatewayPluginKit", package: "gateway-plugin-sdk")],
            path: "Plugins/Audit",
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "TestSwiftPlugin",
            dependencies: [.product(name: "PluginAPI", package: "gateway-plugin-sdk")],
            path: "Tests/PluginFixtures/SwiftHeaderPlugin",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // The tests reach the core through `package` access, not @testable: they run the very build that
        // ships (`swift build -c release`, then `swift test -c release` recompiles no module of it).
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "GatewayCore",
                "GatewayTooling",
                // Built for the tests to start as a process.
                "Gateway",
                .product(name: "GatewayPluginKit", package: "gateway-plugin-sdk"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                // deploy/kubernetes is parsed as the cluster would (KubernetesExampleTests).
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/GatewayTests",
            exclude: ["Support/python"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
