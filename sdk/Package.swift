// swift-tools-version:6.0
// The plugin SDK: the C ABI header (sdk/include/gateway_plugin.h) as the `PluginAPI` module, and the Swift
// helpers (GatewayPluginKit). A plugin package depends on this package alone, so it checks out none of the
// gateway's own dependencies; the gateway depends on it too, so both sides build from the one header.
import PackageDescription

let package = Package(
    name: "gateway-plugin-sdk",
    products: [
        .library(name: "PluginAPI", targets: ["PluginAPI"]),
        .library(name: "GatewayPluginKit", targets: ["GatewayPluginKit"]),
    ],
    targets: [
        // The one copy of the ABI header is include/gateway_plugin.h, which C plugins use with `-I sdk/include`.
        .target(name: "PluginAPI", path: ".", sources: ["PluginAPI/gateway_plugin.c"], publicHeadersPath: "include"),
        .target(
            name: "GatewayPluginKit",
            dependencies: ["PluginAPI"],
            path: "swift/GatewayPluginKit",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
