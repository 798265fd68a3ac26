// swift-tools-version:5.10
// SFLLaVAKit: the app logic that must match the Python toolkit bit for bit (Foundation only; builds
// on macOS, iOS and Linux). SFLLaVAEngines: the ExecuTorch and Core ML engines (Apple platforms only).
import PackageDescription

var products: [Product] = [.library(name: "SFLLaVAKit", targets: ["SFLLaVAKit"])]
var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
]
var targets: [Target] = [
    .target(name: "SFLLaVAKit"),
    .testTarget(
        name: "SFLLaVAKitTests",
        dependencies: ["SFLLaVAKit", .product(name: "Crypto", package: "swift-crypto")]
    ),
]

#if !os(Linux)
// ExecuTorch ships binary frameworks for Apple platforms only. The branch is the runtime matching
// the exporter (executorch==1.5.1 in pyproject.toml): .pte files are not forward compatible.
products.append(.library(name: "SFLLaVAEngines", targets: ["SFLLaVAEngines"]))
dependencies += [
    .package(url: "https://github.com/pytorch/executorch", branch: "swiftpm-1.5.1"),
    .package(url: "https://github.com/huggingface/swift-transformers", from: "1.3.0"),
]
targets.append(
    .target(
        name: "SFLLaVAEngines",
        dependencies: [
            "SFLLaVAKit",
            .product(name: "executorch", package: "executorch"),
            .product(name: "executorch_llm", package: "executorch"),
            .product(name: "backend_xnnpack", package: "executorch"),
            .product(name: "kernels_llm", package: "executorch"),
            .product(name: "kernels_optimized", package: "executorch"),
            .product(name: "kernels_quantized", package: "executorch"),
            .product(name: "Tokenizers", package: "swift-transformers"),
        ]
    )
)
#endif

let package = Package(
    name: "SFLLaVAKit",
    platforms: [.iOS(.v18), .macOS(.v15)],
    products: products,
    dependencies: dependencies,
    targets: targets
)
