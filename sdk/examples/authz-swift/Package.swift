// swift-tools-version:6.0
// A rules-based authorization plugin in Swift, built outside the gateway's repository.
// `GATEWAY_SDK` points at the plugin SDK package (the `sdk` folder of a gateway checkout); by default this
// example's place inside it. The SDK has no dependencies of its own: building this checks out nothing else.
import Foundation
import PackageDescription

let sdk = ProcessInfo.processInfo.environment["GATEWAY_SDK"] ?? "../.."

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
