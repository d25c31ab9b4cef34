// swift-tools-version:6.0
// A rules-based authorization plugin in Swift, built outside the gateway's repository.
// `GATEWAY_SDK` points at a checkout of the gateway (the package that provides GatewayPluginKit); by default
// this example's place inside that checkout.
import Foundation
import PackageDescription

let gateway = ProcessInfo.processInfo.environment["GATEWAY_SDK"] ?? "../../.."

let package = Package(
    name: "authz-swift",
    products: [
        // A dynamic library: the gateway dlopens libAuthzSwift.so.
        .library(name: "AuthzSwift", type: .dynamic, targets: ["AuthzSwift"]),
    ],
    dependencies: [
        .package(name: "mtls-gateway", path: gateway),
    ],
    targets: [
        .target(
            name: "AuthzSwift",
            dependencies: [.product(name: "GatewayPluginKit", package: "mtls-gateway")],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
