// swift-tools-version:6.2
import PackageDescription

/// One system-library target per C dependency; the Swift modules above them each own one concern.
func system(_ name: String, _ pkgConfig: String, _ apt: String) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "emotion-monitor",
    products: [
        .executable(name: "emotion-monitor", targets: ["CLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        system("CALSA", "alsa", "libasound2-dev"),
        system("CFFTW", "fftw3f", "libfftw3-dev"),
        system("CSndFile", "sndfile", "libsndfile1-dev"),
        system("CSoxr", "soxr", "libsoxr-dev"),
        system("COpenBLAS", "openblas", "libopenblas-dev"),
        system("CMosquitto", "libmosquitto", "libmosquitto-dev"),
        // Installed from the sherpa-onnx-core wheel by setup.sh (with a .pc file): not an apt package.
        .systemLibrary(name: "CSherpaOnnx", pkgConfig: "sherpa-onnx-c-api"),
        .target(name: "CALSAErrors", dependencies: ["CALSA"]),
        .target(name: "CFMAPeak"),

        .target(name: "RingBuffer", dependencies: [.product(name: "Atomics", package: "swift-atomics")]),
        .target(name: "Capture", dependencies: [
            "CALSA", "CALSAErrors", "RingBuffer", .product(name: "Atomics", package: "swift-atomics"),
        ]),
        .target(name: "Features", dependencies: ["CFFTW", "CSndFile", "CSoxr", "CSherpaOnnx"]),
        // Optimised in debug builds too: the tests run the encoder, 10x slower unoptimised.
        .target(name: "Model", dependencies: ["COpenBLAS", "Features"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "Streaming", dependencies: ["Features", "Model", "RingBuffer"]),
        .target(name: "Output", dependencies: ["Streaming", "Features", "Model"]),
        .target(name: "Web", dependencies: [
            "Streaming", "Output", "Model",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Labelled clips (corpus names, clips.csv manifests) and the figures evaluate reports.
        .target(name: "Evaluation", dependencies: ["Output"]),
        // Publishes events to an MQTT broker; beside Web, both only consuming events.
        .target(name: "Broker", dependencies: [
            "Streaming", "Output", "CMosquitto",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "CLI", dependencies: [
            "Streaming", "Output", "Capture", "Features", "Model", "CFMAPeak", "Web", "Broker", "Evaluation",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),

        // libFuzzer target; Tests/fuzz.sh builds it with -sanitize=fuzzer (libFuzzer's main), plain
        // builds get a main that replays the inputs named on the command line.
        .executableTarget(name: "Fuzz", dependencies: ["Features", "Model", "Streaming"]),

        .testTarget(name: "FeaturesTests", dependencies: ["Features", "Model"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ModelTests", dependencies: ["Model"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "RingBuffer"]),
        .testTarget(name: "StreamingTests", dependencies: ["Streaming"]),
        .testTarget(name: "CLITests", dependencies: ["CLI"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"]),
        .testTarget(name: "WebTests", dependencies: [
            "Web", "Model", "Streaming", .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
