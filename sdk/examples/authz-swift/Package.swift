// swift-tools-version:6.0
// A rules-based authorization plugin in Swift, built outside the gateway's repository.
// `GATEWAY_SDK` points at the plugin SDK package (the `sdk` folder of a gateway checkout); by default this
// example's place inside it. The SDK has no dependencies of its own: building this checks out nothing else.
// Copied elsewhere without GATEWAY_SDK, the build stops with a message that says so.
import Foundation
import PackageDescription

let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let sdk = ProcessInfo.processInfo.environment["GATEWAY_SDK"] ?? here.appendingPathComponent("../..").standardized.path
guard FileManager.default.fileExists(atPath: sdk + "/include/gateway_plugin.h") else {
    fatalError("""
        \(sdk) is not the gateway's plugin SDK (no include/gateway_plugin.h there). Set GATEWAY_SDK to the sdk \
        folder of a gateway checkout, e.g. GATEWAY_SDK=$HOME/mtls-gateway/sdk swift build -c release
        """)
}

let package = Package(
    name: "authz-swift",
    products: [
        // A dynamic library: the gateway dlopens libAuthzSwift.so.
        .library(name: "AuthzSwift", type: .dynamic, targets: ["AuthzSwift"]),
    ],
    dependencies: [
        .package(name: "gateway-plugin-sdk", path: sdk),
    ],
    targets: [
        .target(
            name: "AuthzSwift",
            dependencies: [.product(name: "GatewayPluginKit", package: "gateway-plugin-sdk")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
